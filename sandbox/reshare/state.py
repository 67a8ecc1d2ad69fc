"""The simulated mod-rs: tenants, logins, patron requests, the state machine and the partner messages.

A *pair* is a borrower request (`isRequester: true`) in the borrowing tenant and a lender request
(`isRequester: false`) in the supplying tenant with the same `hrid` (`<BORROWER TENANT>-<n>`). Staff actions
(`performAction`) move one side; the ISO 18626 message the real system would send is then played to the
other side at once (synchronously), moving it as the table below says. Every change to a request ticks its
tenant's clock (`lastUpdated`, epoch ms, strictly increasing per tenant); a message that does not change the
partner's state still ticks it (mod-rs records a notification), so a poller sees `lastUpdated` move
without a state change - as it must also handle for `localNote` (lender), `message` and `/_sim/touch`.

Creating a pair (`/_sim/requests`, or `POST /rs/patronrequests`): the borrower walks `REQ_IDLE ->
REQ_VALIDATED -> REQ_SOURCING_ITEM -> REQ_SUPPLIER_IDENTIFIED -> REQ_REQUEST_SENT_TO_SUPPLIER`; the lender
copy is created `RES_IDLE -> RES_NEW_AWAIT_PULL_SLIP` (the item was located), or stays at `RES_IDLE` when
asked. Both audits list every state passed through. A `lender_state` further along is reached by replaying
the lender's own actions (print pull slip, fill, ship), so audits stay truthful.

Actions: the registry `RULES` below declares each one once (model, trigger, allowed-from states, target,
the ISO 18626 message it sends, source). Staff (manual) actions are performed through `performAction`; the
message an action sends is then played to the partner at once, and the partner's *protocol* rule for that
message (`ISO18626<Message>` in the same registry, as mod-rs AvailableActionData's TRIGGER_TYPE_PROTOCOL rows)
moves it; a partner in any other state only gets a notification and a `lastUpdated` tick. What is not in the
registry's fields:

- requesterCancel: REQ_CANCEL_PENDING (state saved) when a lender copy exists, else straight to REQ_CANCELLED;
  it sets requestToContinue false, requesterRejectConditions sets it true (ActionPatronRequestCancelService).
  The lender (not yet shipped) goes to RES_CANCEL_REQUEST_RECEIVED; with the lender tenant's
  `auto_responder_cancel` on (mod-rs's default, SettingsData) it answers yes itself
  (EventStatusResCancelRequestReceivedIndService). A yes moves the borrower to REQ_CANCELLED_WITH_SUPPLIER,
  whose status event (EventStatusReqCancelledWithSupplierIndService) moves on to REQ_CANCELLED, or, when the
  request is to continue, to REQ_UNFILLED and the next lender of its rota (REQ_REQUEST_SENT_TO_SUPPLIER) or
  REQ_END_OF_ROTA. A no restores both saved states.
- requesterBypassValidation / requesterRetryValidation / localSupplierCannotSupply walk on to
  REQ_REQUEST_SENT_TO_SUPPLIER and create the lender copy (the retry always succeeds).
- supplierCannotSupply: the borrower goes to REQ_UNFILLED, then to the next lender of its rota
  (`next_lenders` of `/_sim/requests`: REQ_REQUEST_SENT_TO_SUPPLIER, a lender copy in that tenant), or
  REQ_END_OF_ROTA when none is left (EventStatusReqUnfilledIndService).
- rerequest (REQ_CANCELLED, REQ_END_OF_ROTA; once): a new linked pair from this request's fields overlaid
  with actionParams; REQ_END_OF_ROTA moves to REQ_END_OF_ROTA_REVIEWED (requesterRerequestEndOfRotaOK),
  REQ_CANCELLED stays (requesterRerequestCancelledOK has no status).
- supplierCheckInToReshare (undoable): itemBarcodes [{itemId, name?}] replace the volumes' itemIds in order;
  when no due date is set yet, `dueDateRS` is set here (AbstractResponderSupplierCheckInToReshare):
  `loanDateOverride` read as an ISO instant and kept as given, else now + the default loan period (56 days),
  to the second (`2027-01-25T13:45:07Z`); `parsedDueDateRS` is the exact instant. The simulator's own
  `due_date` of `/_sim/requests` (a date) stands for a staff override of that day's start, UTC.
- supplierMarkShipped: the borrower gets REQ_SHIPPED with dueDateRS/parsedDueDateRS and one volume per lender
  volume. The will-supply answer (ExpectToSupply) reaches the borrower once: with the first of respondYes /
  supplierPrintPullSlip.
- supplierAddCondition with holdingState "no": no state change, a notification.
- manualClose: any non-terminal state -> actionParams.terminalState; message (once a lender copy exists),
  localNote (the responder's only), undo (right after supplierCheckInToReshare, ActionEventData UndoStatus.YES).

Timer (`run_overdue`, mod-rs TimerCheckForOverdueSupplierRequestsService): only the lender has one. A lender
request in RES_ITEM_SHIPPED (the only responder state with canTriggerOverdueRequest, StateModelData) whose
`parsedDueDateRS` is before the start of today UTC -> RES_OVERDUE; its Overdue message moves the borrower
from REQ_SHIPPED, REQ_CHECKED_IN, REQ_AWAITING_RETURN_SHIPPING, REQ_SHIPPED_TO_SUPPLIER or REQ_RECALLED to
REQ_OVERDUE (ActionEventResultData requesterISO18626Overdue). The borrower has no timer of its own.

Not modelled, as they are not in mod-rs's default requester/responder models (AvailableActionData):
`itemReturned` (no AvailableAction offers it), `supplierFillDigitalLoan` (MODEL_CDL_RESPONDER),
`manuallyMarkAvailable` / `manuallyMarkSupplied` (SLNP non-returnable requester), `localNote` on the
requester. mod-rs refuses them there, and so does the simulator.

Notes.
1. The borrower's "Received": mod-rs's reference data moves the lender from RES_ITEM_SHIPPED to
   RES_AWAITING_RETURN_SHIPPING (AvailableActionData RES_ITEM_SHIPPED ISO18626Received ->
   responderISO18626Received), and that is the default. The same reference data offers nothing from
   RES_AWAITING_RETURN_SHIPPING (no ShippedReturn, no supplierCheckOutOfReshare), so StatusService.lookupStatus
   would leave the lender there for good, while RSLifecycleSpec (mod-rs's own end-to-end table) shows the
   lender still RES_ITEM_SHIPPED after requesterReceived and RES_ITEM_RETURNED after shippedReturn. The sources
   disagree, so `POST /_sim/options {"lender_on_received": "RES_ITEM_SHIPPED"}` switches to the spec's reading,
   and in both the borrower's ShippedReturn moves the lender on to RES_ITEM_RETURNED (the spec's row). The
   bridge treats RES_ITEM_SHIPPED, RES_AWAITING_RETURN_SHIPPING and RES_OVERDUE alike as "on loan" and is
   tested under both values.
"""

from __future__ import annotations

import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import records as r
from .records import ItemSpec, PatronRequest, PickupLocation, Tenant, Volume
from .timefmt import (
    DEFAULT_LOAN_PERIOD_DAYS,
    instant_ms,
    instant_of_day,
    iso_seconds,
    ms_from_text,
    now_ms,
    parse_due_date,
)

log = logging.getLogger(__name__)

B, L, EITHER = "requester", "responder", "either"


class SimError(Exception):
    """A refusal the HTTP layer answers as `{"status": false, "message": ...}` with this status."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


def bad(message: str) -> SimError:
    return SimError(400, message)


# ---------------------------------------------------------------- the action table


MANUAL, PROTOCOL = "manual", "protocol"


@dataclass(frozen=True)
class Rule:
    """One action of the registry, declared once: the model it belongs to (`side`), how it is triggered
    (`trigger`: `manual`, a staff action through performAction, or `protocol`, an incoming ISO 18626
    message, as mod-rs AvailableActionData's TRIGGER_TYPE_MANUAL / TRIGGER_TYPE_PROTOCOL), the states it is
    allowed from (None: decided by a check of its own, see `Store.is_available`), the state it leads to
    (`to_state`; or `moves`, per allowed state, when the result depends on it; None: no change, or one that
    depends on its parameters or a saved state), the ISO 18626 message it sends the partner (`message`: the
    partner's `protocol` rule for it says what that does there), and the mod-rs source it follows. A manual
    rule's effect is the `Store._do_<name>` handler; a protocol rule's is `Store._deliver`. The generated
    tests (`tests/integration/sandbox/test_reshare_state_model.py`) hold both to the registry."""

    side: str
    valid_from: frozenset[str] | None
    to_state: str | None = None
    message: str | None = None
    source: str = ""
    moves: Mapping[str, str] | None = None
    trigger: str = MANUAL
    receives: str | None = None  # protocol rules: the ISO 18626 message they answer

    def target(self, state: str) -> str | None:
        """Where this rule leads from ``state`` (None: no state change, or decided by its effect)."""
        if self.moves is not None:
            return self.moves.get(state)
        return self.to_state


_AAD = "referenceData/AvailableActionData.groovy"
_AERD = "referenceData/ActionEventResultData.groovy"


def _rule(
    side: str,
    *states: str,
    to: str | None = None,
    message: str | None = None,
    source: str = "",
    moves: Mapping[str, str] | None = None,
) -> Rule:
    return Rule(side, frozenset(states), to, message, source or f"{_AAD}; {_AERD}", moves)


#: Targets a protocol rule resolves when the message arrives.
_RESTORE = "<restore saved state>"
_LENDER_ON_RECEIVED = "<option lender_on_received>"


def _on_message(side: str, message: str, moves: Mapping[str, str], source: str) -> Rule:
    """A protocol rule: the partner's ISO 18626 ``message`` moves a request of ``side`` from each state of
    ``moves`` to its value; in any other state it is a notification only (mod-rs StatusService.lookupStatus:
    "No actionEventResult found, so status is staying the same")."""
    return Rule(
        side,
        frozenset(moves),
        None,
        None,
        f"{_AAD} (TRIGGER_TYPE_PROTOCOL); {_AERD} ({source})",
        dict(moves),
        PROTOCOL,
        message,
    )


_REQUESTER_CANCELLABLE = (
    r.REQ_IDLE,
    r.REQ_VALIDATED,
    r.REQ_INVALID_PATRON,
    r.REQ_DUPLICATE,
    r.REQ_SOURCING_ITEM,
    r.REQ_SUPPLIER_IDENTIFIED,
    r.REQ_REQUEST_SENT_TO_SUPPLIER,
    r.REQ_EXPECTS_TO_SUPPLY,
    r.REQ_CONDITIONAL_ANSWER_RECEIVED,
)
_SENT = r.REQ_REQUEST_SENT_TO_SUPPLIER

RULES: dict[str, Rule] = {
    # borrower (requester) side
    "requesterReceived": _rule(B, r.REQ_SHIPPED, r.REQ_OVERDUE, to=r.REQ_CHECKED_IN, message="Received"),
    "patronReturnedItem": _rule(B, r.REQ_CHECKED_IN, r.REQ_OVERDUE, to=r.REQ_AWAITING_RETURN_SHIPPING),
    "shippedReturn": _rule(
        B,
        r.REQ_AWAITING_RETURN_SHIPPING,
        r.REQ_OVERDUE,
        to=r.REQ_SHIPPED_TO_SUPPLIER,
        message="ShippedReturn",
    ),
    "patronReturnedItemAndShippedReturn": _rule(
        B, r.REQ_CHECKED_IN, r.REQ_OVERDUE, to=r.REQ_SHIPPED_TO_SUPPLIER, message="ShippedReturn"
    ),
    # REQ_CANCEL_PENDING with a lender copy (requesterCancelOK), else REQ_CANCELLED (requesterCancelOKNoSupplier)
    "requesterCancel": _rule(B, *_REQUESTER_CANCELLABLE, message="Cancel"),
    "requesterAgreeConditions": _rule(
        B, r.REQ_CONDITIONAL_ANSWER_RECEIVED, to=r.REQ_EXPECTS_TO_SUPPLY, message="ConditionsAgreed"
    ),
    "requesterRejectConditions": _rule(
        B, r.REQ_CONDITIONAL_ANSWER_RECEIVED, to=r.REQ_CANCEL_PENDING, message="Cancel"
    ),
    "requesterBypassValidation": _rule(B, r.REQ_INVALID_PATRON, r.REQ_DUPLICATE, to=_SENT, message="Request"),
    "requesterRetryValidation": _rule(B, r.REQ_INVALID_PATRON, to=_SENT, message="Request"),
    "localSupplierCannotSupply": _rule(B, r.REQ_LOCAL_REVIEW, to=_SENT, message="Request"),
    "fillLocally": _rule(B, r.REQ_LOCAL_REVIEW, to=r.REQ_FILLED_LOCALLY),
    "cancelLocal": _rule(B, r.REQ_LOCAL_REVIEW, to=r.REQ_CANCELLED),
    "markEndOfRotaReviewed": _rule(B, r.REQ_END_OF_ROTA, to=r.REQ_END_OF_ROTA_REVIEWED),
    # a new linked request either way; requesterRerequestCancelledOK keeps REQ_CANCELLED (status null),
    # requesterRerequestEndOfRotaOK moves REQ_END_OF_ROTA to REQ_END_OF_ROTA_REVIEWED (terminal)
    "rerequest": _rule(
        B,
        r.REQ_CANCELLED,
        r.REQ_END_OF_ROTA,
        moves={r.REQ_END_OF_ROTA: r.REQ_END_OF_ROTA_REVIEWED},
        source=f"{_AAD}; {_AERD} (requesterRerequestCancelledOK, requesterRerequestEndOfRotaOK); "
        "statemodel/actions/ActionPatronRequestRerequestService.groovy",
    ),
    # lender (responder) side
    "respondYes": _rule(L, r.RES_IDLE, to=r.RES_NEW_AWAIT_PULL_SLIP, message="ExpectToSupply"),
    "supplierPrintPullSlip": _rule(
        L, r.RES_NEW_AWAIT_PULL_SLIP, to=r.RES_AWAIT_PICKING, message="ExpectToSupply"
    ),
    "supplierConditionalSupply": _rule(
        L, r.RES_IDLE, r.RES_NEW_AWAIT_PULL_SLIP, to=r.RES_PENDING_CONDITIONAL_ANSWER, message="Conditional"
    ),
    "supplierAddCondition": _rule(L, r.RES_NEW_AWAIT_PULL_SLIP, r.RES_AWAIT_PICKING, r.RES_AWAIT_SHIP),
    "supplierMarkConditionsAgreed": _rule(L, r.RES_PENDING_CONDITIONAL_ANSWER, message="ExpectToSupply"),
    "supplierCannotSupply": _rule(
        L,
        r.RES_IDLE,
        r.RES_NEW_AWAIT_PULL_SLIP,
        r.RES_AWAIT_PICKING,
        r.RES_PENDING_CONDITIONAL_ANSWER,
        to=r.RES_UNFILLED,
        message="Unfilled",
    ),
    "supplierCheckInToReshare": _rule(L, r.RES_AWAIT_PICKING, to=r.RES_AWAIT_SHIP),
    "supplierMarkShipped": _rule(L, r.RES_AWAIT_SHIP, to=r.RES_ITEM_SHIPPED, message="Loaned"),
    "supplierCheckInToReshareAndSupplierMarkShipped": _rule(
        L, r.RES_AWAIT_PICKING, to=r.RES_ITEM_SHIPPED, message="Loaned"
    ),
    "supplierCheckOutOfReshare": _rule(
        L, r.RES_ITEM_RETURNED, r.RES_OVERDUE, to=r.RES_COMPLETE, message="LoanCompleted"
    ),
    "supplierRespondToCancel": _rule(L, r.RES_CANCEL_REQUEST_RECEIVED),  # yes: RES_CANCELLED; no: saved state
    # both sides
    "manualClose": Rule(
        EITHER, None, source="statemodel/actions/ActionPatronRequestManualCloseService.groovy"
    ),
    "message": Rule(EITHER, None, message="Notification", source=_AAD),
    # AvailableActionData assignToAllStates(MODEL_RESPONDER, localNote): the responder's only; the requester
    # has no localNote in the default model (its notes go through "edit", not in the default model either)
    "localNote": Rule(L, None, source=f"{_AAD} assignToAllStates; actions/ActionLocalNoteService.groovy"),
    "undo": Rule(EITHER, None, source="statemodel/ActionService.isUndoValid"),
}

# mod-rs ActionEventData: only supplierCheckInToReshare has UndoStatus.YES (message and undo itself SKIP)
UNDOABLE = frozenset({"supplierCheckInToReshare"})

# ---------------------------------------------------------------- partner messages
# What an incoming ISO 18626 message does, per receiving model, as protocol rules of the same registry (mod-rs
# AvailableActionData's TRIGGER_TYPE_PROTOCOL rows with their ActionEventResultData result lists). The sending
# action names the message (`Rule.message`); `PROTOCOL_RULES` finds the receiver's rule for it.

_LENDER_CANCELLABLE = (
    r.RES_IDLE,
    r.RES_NEW_AWAIT_PULL_SLIP,
    r.RES_AWAIT_PICKING,
    r.RES_AWAIT_SHIP,
    r.RES_PENDING_CONDITIONAL_ANSWER,
)

RULES.update(
    {
        # a lender's message, as the borrower (requester) takes it
        "ISO18626ExpectToSupply": _on_message(
            B,
            "ExpectToSupply",
            {
                r.REQ_REQUEST_SENT_TO_SUPPLIER: r.REQ_EXPECTS_TO_SUPPLY,
                r.REQ_CONDITIONAL_ANSWER_RECEIVED: r.REQ_EXPECTS_TO_SUPPLY,
            },
            "requesterISO18626ExpectToSupply",
        ),
        "ISO18626Conditional": _on_message(
            B,
            "Conditional",
            {
                r.REQ_REQUEST_SENT_TO_SUPPLIER: r.REQ_CONDITIONAL_ANSWER_RECEIVED,
                r.REQ_EXPECTS_TO_SUPPLY: r.REQ_CONDITIONAL_ANSWER_RECEIVED,
            },
            "requesterISO18626Conditional",
        ),
        "ISO18626Loaned": _on_message(
            B,
            "Loaned",
            dict.fromkeys(
                (
                    r.REQ_REQUEST_SENT_TO_SUPPLIER,
                    r.REQ_EXPECTS_TO_SUPPLY,
                    r.REQ_CONDITIONAL_ANSWER_RECEIVED,
                    r.REQ_CANCEL_PENDING,
                ),
                r.REQ_SHIPPED,
            ),
            "requesterISO18626Loaned",
        ),
        # then the next lender of the rota, or REQ_END_OF_ROTA (EventStatusReqUnfilledIndService)
        "ISO18626Unfilled": _on_message(
            B,
            "Unfilled",
            dict.fromkeys(
                (
                    r.REQ_REQUEST_SENT_TO_SUPPLIER,
                    r.REQ_EXPECTS_TO_SUPPLY,
                    r.REQ_CONDITIONAL_ANSWER_RECEIVED,
                ),
                r.REQ_UNFILLED,
            ),
            "requesterISO18626Unfilled",
        ),
        # REQ_CANCELLED_WITH_SUPPLIER; its status event then moves on to REQ_CANCELLED, or to REQ_UNFILLED and
        # the next lender when the request is to continue (requesterCancelledWithSupplierIndOK / ...OKcontinue,
        # EventStatusReqCancelledWithSupplierIndService)
        "ISO18626Cancelled": _on_message(
            B,
            "Cancelled",
            {r.REQ_CANCEL_PENDING: r.REQ_CANCELLED_WITH_SUPPLIER},
            "requesterISO18626Cancelled",
        ),
        "ISO18626CancelNo": _on_message(
            B, "CancelNo", {r.REQ_CANCEL_PENDING: _RESTORE}, "requesterISO18626CancelNo"
        ),
        # as in mod-rs, "LoanCompleted" moves the borrower only from these states; elsewhere a notification
        "ISO18626LoanCompleted": _on_message(
            B,
            "LoanCompleted",
            dict.fromkeys(
                (
                    r.REQ_AWAITING_RETURN_SHIPPING,
                    r.REQ_SHIPPED_TO_SUPPLIER,
                    r.REQ_OVERDUE,
                    r.REQ_RECALLED,
                ),
                r.REQ_REQUEST_COMPLETE,
            ),
            "requesterISO18626LoanCompleted",
        ),
        # requesterISO18626Overdue is in the result lists of these states only
        "ISO18626Overdue": _on_message(
            B,
            "Overdue",
            dict.fromkeys(
                (
                    r.REQ_SHIPPED,
                    r.REQ_CHECKED_IN,
                    r.REQ_AWAITING_RETURN_SHIPPING,
                    r.REQ_SHIPPED_TO_SUPPLIER,
                    r.REQ_RECALLED,
                ),
                r.REQ_OVERDUE,
            ),
            "requesterISO18626Overdue",
        ),
        # a borrower's message, as the lender (responder) takes it
        # responderISO18626Received: RES_AWAITING_RETURN_SHIPPING (option lender_on_received, note 1)
        "ISO18626Received": _on_message(
            L, "Received", {r.RES_ITEM_SHIPPED: _LENDER_ON_RECEIVED}, "responderISO18626Received"
        ),
        # RES_AWAITING_RETURN_SHIPPING is not in mod-rs's rows for ShippedReturn (note 1)
        "ISO18626ShippedReturn": _on_message(
            L,
            "ShippedReturn",
            dict.fromkeys(
                (r.RES_ITEM_SHIPPED, r.RES_AWAITING_RETURN_SHIPPING, r.RES_OVERDUE), r.RES_ITEM_RETURNED
            ),
            "responderISO18626DhippedReturn",
        ),
        "ISO18626Cancel": _on_message(
            L,
            "Cancel",
            dict.fromkeys(_LENDER_CANCELLABLE, r.RES_CANCEL_REQUEST_RECEIVED),
            "responderISO18626Cancel, saveRestoreState SAVE",
        ),
        "ISO18626ConditionsAgreed": _on_message(
            L,
            "ConditionsAgreed",
            {r.RES_PENDING_CONDITIONAL_ANSWER: _RESTORE},
            "responderISO18626AgreeConditions, saveRestoreState RESTORE",
        ),
    }
)

#: (receiving model, ISO 18626 message) -> its protocol rule; a message without one is a notification there.
PROTOCOL_RULES: dict[tuple[str, str], Rule] = {
    (rule.side, rule.receives): rule
    for rule in RULES.values()
    if rule.trigger == PROTOCOL and rule.receives is not None
}

LENDER_START_STATES = (
    r.RES_IDLE,
    r.RES_NEW_AWAIT_PULL_SLIP,
    r.RES_AWAIT_PICKING,
    r.RES_AWAIT_SHIP,
    r.RES_ITEM_SHIPPED,
)
BORROWER_START_STATES = (r.REQ_INVALID_PATRON, r.REQ_DUPLICATE, r.REQ_LOCAL_REVIEW)

# ---------------------------------------------------------------- logins


@dataclass
class Token:
    value: str
    tenant: str
    username: str
    expires_ms: int


LOGIN_MODES = ("both", "legacy-only", "expiry-only")


# ---------------------------------------------------------------- the store


class Store:
    """All simulator state behind one re-entrant lock. Public methods take the lock; `_` helpers assume it."""

    def __init__(self, token_ttl: float = 600) -> None:
        self.lock = threading.RLock()
        self.token_ttl = token_ttl
        # called, under the lock, for what mod-rs AppListenerService publishes: (tenant, id, title, state or
        # None for a new request, dueDate, is_requester); the relay
        self.state_listeners: list[Callable[[str, str, str | None, str | None, str | None, bool], None]] = []
        self.reset()

    # -- housekeeping -------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.tenants: dict[str, Tenant] = {}
            self.tokens: dict[str, Token] = {}
            self.login_mode = "both"
            # lender_on_received: mod-rs responderISO18626Received (note 1)
            self.options: dict[str, Any] = {
                "lender_on_received": r.RES_AWAITING_RETURN_SHIPPING,
                "network_busy_ms": 0,
            }
            self.pinned_ms: int | None = None
            self.pinned_step_ms = 0

    def now(self) -> int:
        """The simulator's clock in epoch ms: the wall clock, or the pinned clock (see `set_clock`)."""
        if self.pinned_ms is None:
            return now_ms()
        at = self.pinned_ms
        self.pinned_ms += self.pinned_step_ms
        return at

    def set_clock(self, at: Any, step_ms: Any = 0) -> int | None:
        """Pin the clock at an ISO-8601 instant, or `None` to follow the wall clock again. With `step_ms` 0
        every change shares the instant (a burst inside one second); otherwise each reading of the clock
        moves it on by `step_ms` (1000: one change per second). Tenants' clocks never go back."""
        with self.lock:
            if isinstance(step_ms, bool) or not isinstance(step_ms, int) or step_ms < 0:
                raise bad(f"step_ms must be a whole number of milliseconds >= 0, not {step_ms!r}")
            if at is None:
                self.pinned_ms = None
            else:
                try:
                    self.pinned_ms = ms_from_text(str(at))
                except ValueError:
                    raise bad(f"at must be an ISO 8601 date-time or null, not {at!r}") from None
            self.pinned_step_ms = step_ms
            return self.pinned_ms

    def set_options(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            for key, value in body.items():
                if key == "network_busy_ms":
                    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 600_000:
                        raise bad("network_busy_ms must be a whole number of milliseconds from 0 to 600000")
                elif key == "lender_on_received":
                    if value not in (r.RES_ITEM_SHIPPED, r.RES_AWAITING_RETURN_SHIPPING):
                        raise bad(
                            "lender_on_received must be RES_ITEM_SHIPPED or RES_AWAITING_RETURN_SHIPPING"
                        )
                else:
                    raise bad(f"unknown option '{key}' (known: lender_on_received, network_busy_ms)")
                self.options[key] = value
            return dict(self.options)

    def upsert_tenant(
        self,
        name: str,
        symbol: str,
        users: Mapping[str, str],
        settings: Mapping[str, Any] | None = None,
        pickup_locations: list[PickupLocation] | None = None,
    ) -> Tenant:
        with self.lock:
            for other in self.tenants.values():
                if other.name != name and other.symbol == symbol:
                    raise bad(f"symbol {symbol} already belongs to tenant {other.name}")
            wanted_settings = {**r.MOD_RS_SETTINGS, **(r.DEFAULT_SETTINGS if settings is None else settings)}
            setting_records = {key: r.make_setting(key, value) for key, value in wanted_settings.items()}
            locations = {location.slug: location for location in pickup_locations or []}
            tenant = self.tenants.get(name)
            if tenant is None:
                tenant = Tenant(name, symbol, dict(users), setting_records, locations, clock=self.now)
                self.tenants[name] = tenant
            else:
                tenant.symbol = symbol
                tenant.users = dict(users)
                tenant.settings = setting_records
                tenant.pickup_locations = locations
            return tenant

    def seed_demo(self) -> None:
        with self.lock:
            self.upsert_tenant(
                "east",
                "RESHARE:EAST",
                {"bridge": "east-password"},
                {"host_lms_integration": "manual", "request_id_prefix": "EAST-"},
                [
                    PickupLocation("east-main", "East Main Library", "128807"),
                    PickupLocation("east-science", "Science Library", "262630"),
                    PickupLocation("east-annex", "Annex", None),
                ],
            )
            self.upsert_tenant(
                "west",
                "RESHARE:WEST",
                {"bridge": "west-password"},
                {"host_lms_integration": "manual", "request_id_prefix": "WEST-"},
                [PickupLocation("west-main", "West Library", "262626")],
            )

    def tenant(self, name: str | None) -> Tenant:
        with self.lock:
            if not name:
                raise bad("missing X-Okapi-Tenant header")
            tenant = self.tenants.get(name)
            if tenant is None:
                raise bad(f"no such tenant: {name}")
            return tenant

    # -- logins (Okapi / mod-login) ------------------------------------

    def login(self, tenant_name: str | None, username: Any, password: Any) -> Token:
        with self.lock:
            tenant = self.tenant(tenant_name)
            if not isinstance(username, str) or not isinstance(password, str) or not username:
                raise SimError(
                    422,
                    "username and password are required strings",
                    {
                        "errors": [
                            {
                                "message": "username and password are required",
                                "type": "error",
                                "code": "credentials.missing",
                            }
                        ]
                    },
                )
            known = tenant.users.get(username)
            if known is None or not secrets.compare_digest(known.encode(), password.encode()):
                raise SimError(
                    422,
                    "Password does not match",
                    {
                        "errors": [
                            {
                                "message": "Password does not match",
                                "type": "error",
                                "code": "password.incorrect",
                                "parameters": [{"key": "username", "value": username}],
                            }
                        ]
                    },
                )
            token = Token(
                value=secrets.token_urlsafe(24),
                tenant=tenant.name,
                username=username,
                expires_ms=now_ms() + int(self.token_ttl * 1000),
            )
            self.tokens[token.value] = token
            return token

    def authenticate(self, tenant_name: str, token_value: str | None) -> Token:
        with self.lock:
            if not token_value:
                raise SimError(401, "missing X-Okapi-Token")
            token = self.tokens.get(token_value)
            if token is None:
                raise SimError(401, "invalid token")
            if token.tenant != tenant_name:  # Okapi: a token of another tenant
                raise SimError(403, "Tenant mismatch", {"message": "Tenant mismatch"})
            if token.expires_ms <= now_ms():
                raise SimError(401, "token expired")
            return token

    def expire_tokens(self, token_value: str | None = None) -> int:
        with self.lock:
            targets = [self.tokens[token_value]] if token_value in self.tokens else []
            if token_value is None:
                targets = list(self.tokens.values())
            for token in targets:
                token.expires_ms = 0
            return len(targets)

    def set_login_mode(self, mode: Any) -> str:
        with self.lock:
            if mode not in LOGIN_MODES:
                raise bad(f"mode must be one of {', '.join(LOGIN_MODES)}")
            self.login_mode = mode
            return mode

    # -- reading --------------------------------------------------------

    def request(self, tenant_name: str, request_id: str) -> PatronRequest:
        with self.lock:
            req = self.tenant(tenant_name).requests.get(request_id)
            if req is None:
                raise SimError(404, f"no patron request {request_id} in tenant {tenant_name}")
            return req

    def all_full_records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"tenant": tenant.name, **req.full()}
                for tenant in self.tenants.values()
                for req in sorted(tenant.requests.values(), key=lambda q: (q.date_created_ms, q.id))
            ]

    def settings(self, tenant_name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(record) for record in self.tenant(tenant_name).settings.values()]

    # -- creating pairs -----------------------------------------------

    def create_pair(
        self,
        borrower_tenant: str,
        lender_tenant: str | None,
        fields: Mapping[str, Any],
        item_specs: list[ItemSpec],
        due_date: str | None = None,
        lender_state: str = r.RES_NEW_AWAIT_PULL_SLIP,
        borrower_state: str | None = None,
        request_id: str | None = None,
        next_lenders: list[str] | None = None,
    ) -> PatronRequest:
        """Create a borrower request and (unless stopped at an earlier borrower state) its lender copy."""
        with self.lock:
            tenant = self.tenant(borrower_tenant)
            if lender_tenant is not None:
                self.tenant(lender_tenant)
            if lender_state not in LENDER_START_STATES:
                raise bad(f"lender_state must be one of {', '.join(LENDER_START_STATES)}")
            if borrower_state is not None and borrower_state not in BORROWER_START_STATES:
                raise bad(f"borrower_state must be one of {', '.join(BORROWER_START_STATES)}")
            if due_date is not None and instant_ms(due_date) is None:  # a date: the start of that day, UTC
                try:
                    due_date = instant_of_day(parse_due_date(due_date))
                except (ValueError, TypeError):
                    raise bad(f"due_date must be YYYY-MM-DD or an instant, not {due_date!r}") from None
            if request_id is not None and request_id in tenant.requests:
                raise SimError(422, f"a patron request with id {request_id} already exists")
            slug = fields.get("pickup_location_slug")
            borrower = PatronRequest(
                id=request_id or str(uuid.uuid4()),
                tenant=tenant.name,
                hrid=tenant.next_hrid(),
                is_requester=True,
                title=fields["title"],
                author=fields.get("author"),
                isbn=fields.get("isbn"),
                publisher=fields.get("publisher"),
                publication_date=fields.get("publication_date"),
                patron_identifier=fields.get("patron_identifier"),
                patron_note=fields.get("patron_note"),
                pickup_location_slug=slug,
                pickup=tenant.pickup_locations.get(slug) if slug else None,
                requesting_symbol=tenant.symbol,
                lender_tenant=lender_tenant,
                next_lenders=list(next_lenders or []),
                item_specs=list(item_specs),
                wanted_due_date=due_date,
            )
            borrower.date_created_ms = tenant.tick()
            tenant.requests[borrower.id] = borrower
            self._move(borrower, r.REQ_IDLE, "newRequest", "new patron request")
            if borrower_state in (r.REQ_INVALID_PATRON, r.REQ_DUPLICATE):
                self._move(borrower, borrower_state, "validate", "patron validation stopped the request")
                return borrower
            self._move(borrower, r.REQ_VALIDATED, "validate", "patron validated")
            self._source_and_send(borrower, lender_state, local_review=borrower_state == r.REQ_LOCAL_REVIEW)
            return borrower

    def _source_and_send(
        self,
        borrower: PatronRequest,
        lender_state: str = r.RES_NEW_AWAIT_PULL_SLIP,
        local_review: bool = False,
    ) -> None:
        self._move(borrower, r.REQ_SOURCING_ITEM, "sourceItem", "looking for a supplier")
        lender_tenant = self.tenants.get(borrower.lender_tenant or "")
        if lender_tenant is None:
            self._move(borrower, r.REQ_END_OF_ROTA, "sourceItem", "no supplier found")
            return
        borrower.supplying_symbol = lender_tenant.symbol
        self._move(borrower, r.REQ_SUPPLIER_IDENTIFIED, "sourceItem", f"supplier {lender_tenant.symbol}")
        if local_review:
            self._move(borrower, r.REQ_LOCAL_REVIEW, "sourceItem", "a local copy may be available")
            return
        self._send_to_supplier(borrower, lender_state)

    def _send_to_supplier(
        self, borrower: PatronRequest, lender_state: str = r.RES_NEW_AWAIT_PULL_SLIP
    ) -> None:
        """Play the ISO 18626 Request to the lender tenant: the lender copy appears there."""
        if borrower.partner is not None:  # the current lender could not supply: the next one in the rota
            if not borrower.next_lenders:
                self._move(
                    borrower, r.REQ_END_OF_ROTA, "sendToNextLocation", "no further supplier in the rota"
                )
                return
            borrower.lender_tenant = borrower.next_lenders.pop(0)
            borrower.partner = None
        lender_tenant = self.tenants.get(borrower.lender_tenant or "")
        if lender_tenant is None:
            self._move(borrower, r.REQ_END_OF_ROTA, "sendToNextLocation", "no further supplier in the rota")
            return
        borrower.supplying_symbol = lender_tenant.symbol
        self._move(borrower, r.REQ_REQUEST_SENT_TO_SUPPLIER, "sendToNextLocation", "request sent")
        specs = borrower.item_specs or [ItemSpec(f"{lender_tenant.name.upper()}-ITEM-0001")]
        lender = PatronRequest(
            id=str(uuid.uuid4()),
            tenant=lender_tenant.name,
            hrid=borrower.hrid,
            is_requester=False,
            title=borrower.title,
            author=borrower.author,
            isbn=borrower.isbn,
            publisher=borrower.publisher,
            publication_date=borrower.publication_date,
            patron_identifier=borrower.patron_identifier,
            patron_note=borrower.patron_note,
            requesting_symbol=borrower.requesting_symbol,
            supplying_symbol=lender_tenant.symbol,
            local_call_number=specs[0].call_number,
            wanted_due_date=borrower.wanted_due_date,
            volumes=[
                Volume(
                    name=spec.name,
                    item_id=spec.item_barcode,
                    call_number=spec.call_number,
                    status=r.VOL_AWAITING_LMS_CHECK_OUT,
                )
                for spec in specs
            ],
        )
        lender.date_created_ms = lender_tenant.tick()
        lender_tenant.requests[lender.id] = lender
        lender.partner = (borrower.tenant, borrower.id)
        borrower.partner = (lender.tenant, lender.id)
        self._move(lender, r.RES_IDLE, "incomingRequest", f"request from {borrower.requesting_symbol}")
        if lender_state == r.RES_IDLE:
            return
        self._move(lender, r.RES_NEW_AWAIT_PULL_SLIP, "incomingRequest", "item located")
        replay = [
            (r.RES_AWAIT_PICKING, "supplierPrintPullSlip"),
            (r.RES_AWAIT_SHIP, "supplierCheckInToReshare"),
            (r.RES_ITEM_SHIPPED, "supplierMarkShipped"),
        ]
        for reached, action in replay:
            if LENDER_START_STATES.index(lender_state) < LENDER_START_STATES.index(reached):
                break
            self._dispatch(lender, action, {})

    # -- actions ----------------------------------------------------------

    def valid_actions(self, tenant_name: str, request_id: str) -> dict[str, Any]:
        """mod-rs PatronRequestController.validActions: ``{actions}``; none while network activity is not
        idle (ActionService.getValidActions); an unknown id is 200 ``{actions: [], message}``."""
        with self.lock:
            req = self.tenant(tenant_name).requests.get(request_id)
            if req is None:
                return {"actions": [], "message": "Unable to locate request"}
            if req.network_status != "Idle":
                return {"actions": []}
            return {"actions": [action for action in RULES if self.is_available(req, action)]}

    def set_network(self, tenant_name: str, request_id: str, status: Any, for_ms: Any) -> dict[str, Any]:
        """Fault switch: keep a request's network activity busy (Waiting or Retry) for ``for_ms`` more ms."""
        with self.lock:
            req = self.request(tenant_name, request_id)
            if status not in ("Waiting", "Retry"):
                raise bad("status must be Waiting or Retry")
            if isinstance(for_ms, bool) or not isinstance(for_ms, int) or not 0 <= for_ms <= 600_000:
                raise bad("for_ms must be a whole number of milliseconds from 0 to 600000")
            req.busy_status = status
            req.busy_until_ms = now_ms() + for_ms
            return {"id": req.id, "networkStatus": req.network_status, "busy_until_ms": req.busy_until_ms}

    def is_available(self, req: PatronRequest, action: str) -> bool:
        """Whether staff may perform ``action`` now (a protocol rule is never a staff action)."""
        rule = RULES[action]
        if rule.trigger != MANUAL:
            return False
        if (rule.side == B and not req.is_requester) or (rule.side == L and req.is_requester):
            return False
        if action == "localNote":
            return True
        if action == "message":
            return req.partner is not None
        if action == "manualClose":
            return not req.terminal
        if action == "undo":
            return req.undo is not None and req.undo["to"] == req.state
        if action == "rerequest" and req.succeeded_by:
            return False
        return rule.valid_from is not None and req.state in rule.valid_from

    def perform_action(self, tenant_name: str, request_id: str, body: Any) -> dict[str, Any]:
        """mod-rs ActionService.executeAction as PatronRequestController.performAction answers it: 200 ``{}``
        on success; 400 ``{message}`` for an unknown id, while network activity is not idle ("Unable to
        perform action as we are waiting for existing network activity to complete"), and for an action not
        valid now ("A valid action was not supplied, ..."). The two refusals write an audit entry and save
        the request (its lastUpdated moves, its state does not)."""
        with self.lock:
            req = self.tenant(tenant_name).requests.get(request_id)
            if req is None:
                raise SimError(
                    400,
                    f"Unable to find request with id: {request_id}",
                    {"message": f"Unable to find request with id: {request_id}"},
                )
            if not isinstance(body, dict):
                raise bad('the body must be a JSON object {"action": ..., "actionParams": {...}}')
            action = body.get("action")
            if action is None or action == "":
                raise bad("missing action")
            if not isinstance(action, str):
                raise bad("action must be a string")
            params = body.get("actionParams")
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise bad("actionParams must be a JSON object")
            if req.network_status != "Idle":
                message = (
                    "Unable to perform action as we are waiting for existing network activity to complete"
                    f", network status: {req.network_status}, Action being performed: {action}"
                )
                self._refuse(req, message)
            if action not in RULES or not self.is_available(req, action):
                message = (
                    f"A valid action was not supplied, isRequester: {str(req.is_requester).lower()}"
                    f" Current state: {req.state}, network status: {req.network_status}"
                    f" Action being performed: {action}"
                )
                self._refuse(req, message)
            self._dispatch(req, action, params)
            return {}

    def _refuse(self, req: PatronRequest, message: str) -> None:
        """A refused action: an audit entry (state unchanged), the request saved, 400 ``{message}``."""
        stamp = self.tenants[req.tenant].tick()
        req.audit.append(
            {
                "id": str(uuid.uuid4()),
                "dateCreated": iso_seconds(stamp),
                "fromStatus": {"code": req.state},
                "toStatus": {"code": req.state},
                "action": None,
                "message": message,
            }
        )
        req.last_updated_ms = stamp
        raise SimError(400, message, {"message": message})

    def _dispatch(self, req: PatronRequest, action: str, params: dict[str, Any]) -> None:
        handler: Callable[[PatronRequest, dict[str, Any]], None] = getattr(self, f"_do_{action}")
        handler(req, params)

    # borrower actions

    def _do_requesterReceived(self, req: PatronRequest, params: dict[str, Any]) -> None:
        note = _opt_str(params, "note")
        self._move(req, r.REQ_CHECKED_IN, "requesterReceived", note)
        for volume in req.volumes:
            volume.status = r.VOL_TEMP_ITEM_NO_INTEGRATION
        self._send(req, "Received", note)

    def _do_patronReturnedItem(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, r.REQ_AWAITING_RETURN_SHIPPING, "patronReturnedItem", _opt_str(params, "note"))
        for volume in req.volumes:
            volume.status = r.VOL_LMS_CHECK_IN_NO_INTEGRATION

    def _do_shippedReturn(self, req: PatronRequest, params: dict[str, Any]) -> None:
        note = _opt_str(params, "note")
        self._move(req, r.REQ_SHIPPED_TO_SUPPLIER, "shippedReturn", note)
        self._send(req, "ShippedReturn", note)

    def _do_patronReturnedItemAndShippedReturn(self, req: PatronRequest, params: dict[str, Any]) -> None:
        _item_barcodes(params)  # validated; the borrower's volumes are already known
        note = _opt_str(params, "note")
        self._move(req, r.REQ_SHIPPED_TO_SUPPLIER, "patronReturnedItemAndShippedReturn", note)
        for volume in req.volumes:
            volume.status = r.VOL_LMS_CHECK_IN_NO_INTEGRATION
        self._send(req, "ShippedReturn", note)

    def _do_requesterCancel(self, req: PatronRequest, params: dict[str, Any]) -> None:
        reason, note = _opt_str(params, "reason"), _opt_str(params, "note")
        message = ": ".join(part for part in (reason, note) if part) or None
        if req.partner is None or self._partner(req) is None:
            self._move(req, r.REQ_CANCELLED, "requesterCancel", message)
            return
        req.saved_states.append(req.state or r.REQ_IDLE)
        req.request_to_continue = False  # ActionPatronRequestCancelService.sendCancel
        self._move(req, r.REQ_CANCEL_PENDING, "requesterCancel", message)
        self._send(req, "Cancel", message)

    def _do_requesterAgreeConditions(self, req: PatronRequest, params: dict[str, Any]) -> None:
        note = _opt_str(params, "note")
        self._move(req, r.REQ_EXPECTS_TO_SUPPLY, "requesterAgreeConditions", note)
        for condition in req.conditions:
            condition["accepted"] = True
        self._send(req, "ConditionsAgreed", note)

    def _do_requesterRejectConditions(self, req: PatronRequest, params: dict[str, Any]) -> None:
        note = _opt_str(params, "note")
        req.saved_states.append(req.state or r.REQ_IDLE)
        req.request_to_continue = True  # ActionPatronRequestCancelService.sendCancel: on to the next lender
        self._move(req, r.REQ_CANCEL_PENDING, "requesterRejectConditions", note)
        self._send(req, "Cancel", note or "conditions rejected")

    def _do_requesterBypassValidation(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, r.REQ_VALIDATED, "requesterBypassValidation", _opt_str(params, "reason"))
        self._source_and_send(req)

    def _do_requesterRetryValidation(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, r.REQ_VALIDATED, "requesterRetryValidation", "patron validated on retry")
        self._source_and_send(req)

    def _do_localSupplierCannotSupply(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, r.REQ_UNFILLED, "localSupplierCannotSupply", _opt_str(params, "note"))
        self._send_to_supplier(req)

    def _do_fillLocally(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, r.REQ_FILLED_LOCALLY, "fillLocally", _opt_str(params, "note"))

    def _do_cancelLocal(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, r.REQ_CANCELLED, "cancelLocal", _opt_str(params, "note"))

    def _do_markEndOfRotaReviewed(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, r.REQ_END_OF_ROTA_REVIEWED, "markEndOfRotaReviewed", _opt_str(params, "note"))

    def _do_rerequest(self, req: PatronRequest, params: dict[str, Any]) -> None:
        overlay = {}
        for param, field_name in (
            ("title", "title"),
            ("author", "author"),
            ("isbn", "isbn"),
            ("publisher", "publisher"),
            ("publicationDate", "publication_date"),
            ("patronIdentifier", "patron_identifier"),
            ("patronNote", "patron_note"),
            ("pickupLocationSlug", "pickup_location_slug"),
        ):
            value = _opt_str(params, param)
            if value:
                overlay[field_name] = value
        if "isRequester" in params and str(params["isRequester"]).lower() != "true":
            raise bad("rerequest creates a borrower request: isRequester must be true")
        fields = {
            "title": req.title,
            "author": req.author,
            "isbn": req.isbn,
            "publisher": req.publisher,
            "publication_date": req.publication_date,
            "patron_identifier": req.patron_identifier,
            "patron_note": req.patron_note,
            "pickup_location_slug": req.pickup_location_slug,
            **overlay,
        }
        successor = self.create_pair(
            req.tenant, req.lender_tenant, fields, req.item_specs, due_date=req.wanted_due_date
        )
        successor.preceded_by = req.id
        req.succeeded_by = successor.id
        target = RULES["rerequest"].target(req.state or "")
        if target is None:
            self._touch(req)  # requesterRerequestCancelledOK: status null, REQ_CANCELLED stays
        else:
            self._move(req, target, "rerequest", "Re-requested with changes")

    # lender actions

    def _do_respondYes(self, req: PatronRequest, params: dict[str, Any]) -> None:
        note = _opt_str(params, "note")
        self._apply_pick_params(req, params)
        self._move(req, r.RES_NEW_AWAIT_PULL_SLIP, "respondYes", note)  # responderAnswerYesOK
        self._answer_will_supply(req, note)

    def _do_supplierPrintPullSlip(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, r.RES_AWAIT_PICKING, "supplierPrintPullSlip", _opt_str(params, "note"))
        self._answer_will_supply(req, None)

    def _do_supplierConditionalSupply(self, req: PatronRequest, params: dict[str, Any]) -> None:
        condition = self._condition(params)
        self._apply_pick_params(req, params)
        req.saved_states.append(r.RES_NEW_AWAIT_PULL_SLIP)
        self._move(req, r.RES_PENDING_CONDITIONAL_ANSWER, "supplierConditionalSupply", condition["note"])
        req.answered = True
        self._send(req, "Conditional", condition["note"], condition=condition)

    def _do_supplierAddCondition(self, req: PatronRequest, params: dict[str, Any]) -> None:
        condition = self._condition(params)
        holding = _opt_str(params, "holdingState") or "no"
        if holding not in ("yes", "no"):
            raise bad("holdingState must be yes or no")
        if holding == "no":
            req.conditions.append(condition)
            self._touch(req)
            self._send(req, "Notification", condition["note"], condition=condition)
            return
        req.saved_states.append(req.state or r.RES_NEW_AWAIT_PULL_SLIP)
        self._move(req, r.RES_PENDING_CONDITIONAL_ANSWER, "supplierAddCondition", condition["note"])
        self._send(req, "Conditional", condition["note"], condition=condition)

    def _do_supplierMarkConditionsAgreed(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._move(req, self._pop_saved(req, r.RES_NEW_AWAIT_PULL_SLIP), "supplierMarkConditionsAgreed", None)
        for condition in req.conditions:
            condition["accepted"] = True
        self._send(req, "ExpectToSupply", "conditions agreed")

    def _do_supplierCannotSupply(self, req: PatronRequest, params: dict[str, Any]) -> None:
        reason, note = _opt_str(params, "reason"), _opt_str(params, "note")
        message = ": ".join(part for part in (reason, note) if part) or None
        self._move(req, r.RES_UNFILLED, "supplierCannotSupply", message)
        req.answered = True
        self._send(req, "Unfilled", message)

    def _do_supplierCheckInToReshare(self, req: PatronRequest, params: dict[str, Any]) -> None:
        before = req.state
        self._fill(req, params)
        self._move(req, r.RES_AWAIT_SHIP, "supplierCheckInToReshare", _opt_str(params, "note"))
        req.undo = {"action": "supplierCheckInToReshare", "from": before, "to": req.state}

    def _do_supplierMarkShipped(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._ship(req, "supplierMarkShipped", _opt_str(params, "note"))

    def _do_supplierCheckInToReshareAndSupplierMarkShipped(
        self, req: PatronRequest, params: dict[str, Any]
    ) -> None:
        self._fill(req, params)
        self._ship(req, "supplierCheckInToReshareAndSupplierMarkShipped", _opt_str(params, "note"))

    def _do_supplierCheckOutOfReshare(self, req: PatronRequest, params: dict[str, Any]) -> None:
        self._complete(req, "supplierCheckOutOfReshare", _opt_str(params, "note"))

    def _do_supplierRespondToCancel(self, req: PatronRequest, params: dict[str, Any]) -> None:
        answer = params.get("cancelResponse")
        if not isinstance(answer, str) or answer.lower() not in ("yes", "no"):
            raise bad("supplierRespondToCancel needs actionParams.cancelResponse yes or no")
        note = _opt_str(params, "note")
        if answer.lower() == "yes":
            req.saved_states.clear()
            self._move(req, r.RES_CANCELLED, "supplierRespondToCancel", note)
            self._send(req, "Cancelled", note)
        else:
            self._move(req, self._pop_saved(req, r.RES_NEW_AWAIT_PULL_SLIP), "supplierRespondToCancel", note)
            self._send(req, "CancelNo", note)

    # either side

    def _do_manualClose(self, req: PatronRequest, params: dict[str, Any]) -> None:
        allowed = r.REQUESTER_TERMINAL if req.is_requester else r.RESPONDER_TERMINAL
        target = params.get("terminalState")
        if target not in allowed:
            raise bad(f"manualClose needs actionParams.terminalState, one of {', '.join(sorted(allowed))}")
        req.saved_states.clear()
        req.manually_closed = True  # mod-rs ActionPatronRequestManualCloseService; the relay stays silent
        self._move(req, target, "manualClose", _opt_str(params, "note"))

    def _do_message(self, req: PatronRequest, params: dict[str, Any]) -> None:
        note = _opt_str(params, "note") or ""
        self._touch(req)
        self._send(req, "Notification", note, record_sender=True)

    def _do_localNote(self, req: PatronRequest, params: dict[str, Any]) -> None:
        if (
            "localNote" in params
            and params["localNote"] is not None
            and not isinstance(params["localNote"], str)
        ):
            raise bad("localNote must be a string")
        req.local_note = params.get("localNote")
        self._touch(req)

    def _do_undo(self, req: PatronRequest, params: dict[str, Any]) -> None:
        assert req.undo is not None
        undone = req.undo
        self._move(req, undone["from"], "undo", f"undo {undone['action']}")
        if undone["action"] == "supplierCheckInToReshare":
            for volume in req.volumes:
                volume.status = r.VOL_AWAITING_LMS_CHECK_OUT
        elif undone["action"] == "patronReturnedItem":
            for volume in req.volumes:
                volume.status = r.VOL_TEMP_ITEM_NO_INTEGRATION

    # -- lender helpers ------------------------------------------------

    def _apply_pick_params(self, req: PatronRequest, params: dict[str, Any]) -> None:
        call_number = _opt_str(params, "callnumber")
        if call_number:
            req.local_call_number = call_number
        req.pick_location = _opt_str(params, "pickLocation") or req.pick_location
        req.pick_shelving_location = _opt_str(params, "pickShelvingLocation") or req.pick_shelving_location

    def _condition(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "code": _opt_str(params, "loanCondition"),
            "note": _opt_str(params, "note"),
            "cost": _opt_str(params, "cost"),
            "costCurrency": _opt_str(params, "costCurrency"),
            "accepted": False,
        }

    def _answer_will_supply(self, req: PatronRequest, note: str | None) -> None:
        if not req.answered:
            req.answered = True
            self._send(req, "ExpectToSupply", note)

    def _fill(self, req: PatronRequest, params: dict[str, Any]) -> None:
        """supplierCheckInToReshare: record the item barcodes (and an optional due-date override)."""
        barcodes = _item_barcodes(params)
        override = params.get("loanDateOverride")
        if barcodes:
            fallback_call_number = req.volumes[0].call_number if req.volumes else req.local_call_number
            volumes = []
            for index, entry in enumerate(barcodes):
                volume = (
                    req.volumes[index]
                    if index < len(req.volumes)
                    else Volume(
                        name=None,
                        item_id=None,
                        call_number=fallback_call_number,
                        status=r.VOL_AWAITING_LMS_CHECK_OUT,
                    )
                )
                volume.item_id = entry["itemId"]
                if entry.get("name"):
                    volume.name = entry["name"]
                volumes.append(volume)
            req.volumes = volumes
        for volume in req.volumes:
            volume.status = r.VOL_LMS_CHECK_OUT_NO_INTEGRATION
        if req.due_date_rs is None:
            self._set_due_date(req, override if override not in (None, "") else req.wanted_due_date)

    def _set_due_date(self, req: PatronRequest, override: Any) -> None:
        """mod-rs AbstractResponderSupplierCheckInToReshare, once the fill succeeded and no due date is set
        (the manual host LMS gives none): ``loanDateOverride`` read as an ISO instant, kept as given, else (absent
        or unparseable, which mod-rs only logs) now + the default loan period, ``dueDateRS`` to the second
        (``ZonedDateTime.truncatedTo(SECONDS).toString()``) and ``parsedDueDateRS`` the exact instant."""
        at = instant_ms(override)
        if at is not None:
            req.due_date_rs = override
            req.parsed_due_date_ms = at
            return
        if override is not None:
            log.warning("Unable to parse date string %s: the default loan period applies", override)
        days = self._loan_period_days(req)
        if days is None:
            return  # no usable default_loan_period: dueDateRS stays null
        due = self.now() + days * 86_400_000
        req.due_date_rs = iso_seconds(due)
        req.parsed_due_date_ms = due

    def _ship(self, req: PatronRequest, action: str, note: str | None) -> None:
        has_items = bool(req.volumes) and all(volume.item_id for volume in req.volumes)
        if not has_items:
            raise bad("cannot ship: the request has no item barcode (fill it with itemBarcodes first)")
        if req.due_date_rs is None:  # set at supplierCheckInToReshare; a pair created shipped replays it
            self._set_due_date(req, req.wanted_due_date)
        self._move(req, r.RES_ITEM_SHIPPED, action, note)
        req.answered = True
        self._send(req, "Loaned", note)

    def _loan_period_days(self, req: PatronRequest) -> int | None:
        """The lender tenant's `default_loan_period` ("56" unless set, SettingsData); None when it is not a
        positive whole number: mod-rs then ships without a due date
        (AbstractResponderSupplierCheckInToReshare: `defaultLoanPeriod > 0`, else dueDateRS stays null)."""
        record = self.tenants[req.tenant].settings.get("default_loan_period")
        value = str(record.get("value") or "").strip() if record else str(DEFAULT_LOAN_PERIOD_DAYS)
        return int(value) if value.isdigit() and int(value) > 0 else None

    def _complete(self, req: PatronRequest, action: str, note: str | None) -> None:
        for volume in req.volumes:
            volume.status = r.VOL_COMPLETED
        self._move(req, r.RES_COMPLETE, action, note)
        self._send(req, "LoanCompleted", note)

    # -- partner messages ------------------------------------------------

    def _partner(self, req: PatronRequest) -> PatronRequest | None:
        if req.partner is None:
            return None
        tenant = self.tenants.get(req.partner[0])
        return tenant.requests.get(req.partner[1]) if tenant else None

    def _send(
        self,
        sender: PatronRequest,
        message: str,
        note: str | None,
        *,
        record_sender: bool = False,
        condition: dict[str, Any] | None = None,
    ) -> None:
        """Deliver an ISO 18626 message to the sender's partner and let it react."""
        receiver = self._partner(sender)
        if receiver is None:
            return
        if self.options["network_busy_ms"]:  # the sender waits for the partner's acknowledgement
            sender.busy_status = "Waiting"
            sender.busy_until_ms = now_ms() + self.options["network_busy_ms"]
        content = f"{message}: {note}" if note else message
        if record_sender:
            sender.notifications.append(_notification(content, True, sender.last_updated_ms))
        rule = PROTOCOL_RULES.get((B if receiver.is_requester else L, message))
        target = rule.target(receiver.state or "") if rule is not None else None
        if target == _LENDER_ON_RECEIVED:
            target = self.options["lender_on_received"]
            if target == receiver.state:
                target = None
        if condition is not None and receiver.is_requester:
            receiver.conditions.append(dict(condition))
        via = f"ISO18626 {message}"
        if target is None:  # not applicable in the receiver's state: a notification only
            self._touch(receiver)
            receiver.notifications.append(_notification(content, False, receiver.last_updated_ms))
            return
        if target == _RESTORE:
            target = self._pop_saved(receiver, receiver.state or "")
        elif message == "Cancel":
            receiver.saved_states.append(receiver.state or r.RES_IDLE)
        elif message in ("Cancelled", "Loaned"):
            receiver.saved_states.clear()
        if message == "Loaned":
            self._receive_loaned(receiver, sender)
        elif message == "LoanCompleted":
            for volume in receiver.volumes:
                volume.status = r.VOL_COMPLETED
        self._move(receiver, target, via, note)
        receiver.notifications.append(_notification(content, False, receiver.last_updated_ms))
        if target == r.REQ_CANCELLED_WITH_SUPPLIER:
            # EventStatusReqCancelledWithSupplierIndService: requestToContinue (set by the action that sent
            # the Cancel, ActionPatronRequestCancelService) picks the result
            if receiver.request_to_continue:
                self._move(
                    receiver,
                    r.REQ_UNFILLED,
                    "STATUS_REQ_CANCELLED_WITH_SUPPLIER_ind",
                    "Request to continue, sending to next lender",
                )  # requesterCancelledWithSupplierIndOKcontinue
                self._send_to_supplier(receiver)  # EventStatusReqUnfilledIndService: the next lender
            else:
                self._move(
                    receiver, r.REQ_CANCELLED, "STATUS_REQ_CANCELLED_WITH_SUPPLIER_ind", "Request cancelled"
                )  # requesterCancelledWithSupplierIndOK
        if target == r.RES_CANCEL_REQUEST_RECEIVED and self._auto_responder_cancel(receiver):
            # mod-rs EventStatusResCancelRequestReceivedIndService: with auto_responder_cancel on, the lender
            # answers yes itself (responderCancelRequestReceivedIndOKcancelled); the simulator's Cancel only
            # reaches a lender that has not shipped, so the "shipped: answer no" branch never applies here
            self._do_supplierRespondToCancel(
                receiver,
                {
                    "cancelResponse": "yes",
                    "note": "AutoResponder:Cancel is ON - responding YES to cancel request",
                },
            )
        if message == "Unfilled":
            self._send_to_supplier(receiver)  # EventStatusReqUnfilledIndService: next lender or end of rota

    def _auto_responder_cancel(self, req: PatronRequest) -> bool:
        record = self.tenants[req.tenant].settings.get("auto_responder_cancel") or {}
        value = record.get("value")
        return isinstance(value, str) and value.lower().startswith("on")

    def _receive_loaned(self, borrower: PatronRequest, lender: PatronRequest) -> None:
        borrower.due_date_rs = lender.due_date_rs
        borrower.parsed_due_date_ms = lender.parsed_due_date_ms
        single = len(lender.volumes) == 1
        borrower.volumes = [
            Volume(
                name=volume.name,
                item_id=volume.item_id,
                call_number=volume.call_number,
                status=r.VOL_AWAITING_TEMP_ITEM,
                temporary_item_barcode=(
                    borrower.hrid if single else f"{borrower.hrid}-{(volume.item_id or '')[-4:]}"
                ),
            )
            for volume in lender.volumes
        ]

    # -- simulator-only ----------------------------------------------------

    def touch(self, tenant_name: str, request_id: str) -> dict[str, Any]:
        """SIMULATOR-ONLY (`POST /_sim/touch`): save a request unchanged, so its `lastUpdated` moves and its
        state, audit and fields do not. It stands in for the saves mod-rs makes without a state change that
        the simulator does not otherwise model on the requester (a notification arriving, an edit by staff);
        the requester's default model has no action that only saves (localNote is the responder's)."""
        with self.lock:
            req = self.request(tenant_name, request_id)
            self._touch(req)
            return {"id": req.id, "lastUpdated": iso_seconds(req.last_updated_ms)}

    # -- the overdue timer -------------------------------------------------

    def run_overdue(self, now: str | None = None) -> dict[str, Any]:
        with self.lock:
            if now is None:
                at = self.now()
            else:
                try:
                    at = ms_from_text(str(now))
                except ValueError:
                    raise bad(f"now must be an ISO 8601 date-time, not {now!r}") from None
            # mod-rs TimerCheckForOverdueSupplierRequestsService: only lender requests, only in a state with
            # canTriggerOverdueRequest (StateModelData: RES_ITEM_SHIPPED), due before the start of today UTC
            moved: dict[str, list[dict[str, str]]] = {"lender": [], "borrower": []}
            start_of_today = at - at % 86_400_000
            everything = [req for tenant in self.tenants.values() for req in tenant.requests.values()]
            for req in everything:
                if (
                    not req.is_requester
                    and req.state == r.RES_ITEM_SHIPPED
                    and _past_due(req, start_of_today)
                ):
                    self._move(req, r.RES_OVERDUE, "overdueTimer", f"due {req.due_date_rs}")
                    moved["lender"].append(_ref(req))
                    borrower = self._partner(req)
                    before = borrower.state if borrower else None
                    self._send(req, "Overdue", f"due {req.due_date_rs}")
                    if borrower is not None and borrower.state != before:
                        moved["borrower"].append(_ref(borrower))
            return {"now": iso_seconds(at), **moved}

    # -- bookkeeping -------------------------------------------------------

    def _move(self, req: PatronRequest, to_state: str, action: str, message: str | None) -> None:
        stamp = self.tenants[req.tenant].tick()
        req.audit.append(
            {
                "id": str(uuid.uuid4()),
                "dateCreated": iso_seconds(stamp),
                "fromStatus": {"code": req.state} if req.state else None,
                "toStatus": {"code": to_state},
                "action": action,
                "message": message,
            }
        )
        created = req.state is None
        req.state = to_state
        req.last_updated_ms = stamp
        req.undo = None
        # mod-rs AppListenerService: afterInsert publishes the new-request event (no state); afterUpdate a
        # STATUS_<state>_ind event, unless the request was closed manually (manuallyClosed: nothing at all)
        if req.manually_closed and not created:
            return
        for listener in self.state_listeners:
            listener(
                req.tenant,
                req.id,
                req.title,
                None if created else to_state,
                req.due_date_rs,
                req.is_requester,
            )

    def _touch(self, req: PatronRequest) -> None:
        req.last_updated_ms = self.tenants[req.tenant].tick()

    @staticmethod
    def _pop_saved(req: PatronRequest, fallback: str) -> str:
        return req.saved_states.pop() if req.saved_states else fallback


def _notification(content: str, is_sender: bool, stamp: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": iso_seconds(stamp),
        "messageContent": content,
        "isSender": is_sender,
        "seen": False,
    }


def _ref(req: PatronRequest) -> dict[str, str]:
    return {"tenant": req.tenant, "id": req.id, "hrid": req.hrid, "state": req.state or ""}


def _past_due(req: PatronRequest, at_ms: int) -> bool:
    return req.parsed_due_date_ms is not None and req.parsed_due_date_ms < at_ms


def _opt_str(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad(f"actionParams.{key} must be a string")
    return str(value)


def _item_barcodes(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Validate `itemBarcodes: [{itemId, name?}]` (absent or empty: none given)."""
    value = params.get("itemBarcodes")
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad("actionParams.itemBarcodes must be a list of {itemId}")
    entries = []
    for entry in value:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("itemId"), str)
            or not entry["itemId"].strip()
        ):
            raise bad("each actionParams.itemBarcodes entry needs a non-empty string itemId")
        if entry.get("name") is not None and not isinstance(entry.get("name"), str):
            raise bad("actionParams.itemBarcodes[].name must be a string")
        entries.append(entry)
    return entries
