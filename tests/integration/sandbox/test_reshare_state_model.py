"""The simulator's state model against mod-rs's (issue 13).

1. Generated from the action registry (`sandbox.reshare.state.RULES`, each action declared once: model,
   trigger, allowed-from states, target, partner message, mod-rs source): every staff (manual) action of both
   models is tried from every state of its model. Allowed ones are offered by validActions and move where the
   registry says; the rest are not offered and get mod-rs's refusal (400 "A valid action was not supplied,
   ..."). Every protocol rule (what a partner's ISO 18626 message does) is delivered in every state of its
   model: it moves where the registry says, or is a notification only; staff can never perform it.
2. Hand-written, copied from mod-rs `ActionEventResultData` (the `...OK` results) and `RSLifecycleSpec`: at
   least 25 transitions, which the registry and the simulator must agree with.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.reshare import records as r
from sandbox.reshare.records import ItemSpec, PatronRequest
from sandbox.reshare.state import (
    EITHER,
    MANUAL,
    PROTOCOL,
    PROTOCOL_RULES,
    RULES,
    B,
    L,
    SimError,
    Store,
)

REQUESTER_STATES = sorted({v for k, v in vars(r).items() if k.startswith("REQ_") and isinstance(v, str)})
RESPONDER_STATES = sorted({v for k, v in vars(r).items() if k.startswith("RES_") and isinstance(v, str)})
PARAMS: dict[str, dict[str, Any]] = {
    "supplierRespondToCancel": {"cancelResponse": "yes"},
    "manualClose": {"terminalState": "REQ_CANCELLED"},
}
# actions whose borrower must not have a lender copy yet (they send the request out themselves)
UNSENT = {"requesterBypassValidation", "requesterRetryValidation", "localSupplierCannotSupply"}


def fresh_store() -> Store:
    store = Store()
    store.seed_demo()
    # the action's own result (requesterCancelOK: REQ_CANCEL_PENDING); mod-rs's default auto_responder_cancel
    # "on" answers it by itself afterwards, which test_reshare_simulator.py tests
    store.tenants["west"].settings["auto_responder_cancel"] = r.make_setting("auto_responder_cancel", "off")
    return store


def request_in(store: Store, side: str, state: str, action: str) -> PatronRequest:
    """A request of one side, forced into ``state`` (what the test needs: the state model, not the path)."""
    fields = {"title": "T", "patron_identifier": "EAST-P-0001", "pickup_location_slug": "east-main"}
    if side == B and action in UNSENT:
        borrower = store.create_pair(
            "east", "west", fields, [ItemSpec("WEST-ITEM-0001")], borrower_state=r.REQ_INVALID_PATRON
        )
        req = borrower
    else:
        borrower = store.create_pair("east", "west", fields, [ItemSpec("WEST-ITEM-0001")])
        assert borrower.partner is not None
        req = borrower if side == B else store.tenants["west"].requests[borrower.partner[1]]
    req.state = state
    return req


def try_action(store: Store, req: PatronRequest, action: str) -> tuple[bool, bool, str]:
    """(offered by validActions, accepted by performAction, state after)."""
    offered = action in store.valid_actions(req.tenant, req.id)["actions"]
    try:
        store.perform_action(req.tenant, req.id, {"action": action, "actionParams": PARAMS.get(action, {})})
    except SimError as error:
        assert error.status == 400
        assert error.message.startswith("A valid action was not supplied, "), error.message
        return offered, False, req.state or ""
    return offered, True, req.state or ""


def generated_cases() -> list[tuple[str, str, str]]:
    cases = []
    for action, rule in RULES.items():
        if rule.side == EITHER or rule.valid_from is None or rule.trigger != MANUAL:
            continue
        for state in REQUESTER_STATES if rule.side == B else RESPONDER_STATES:
            cases.append((action, rule.side, state))
    return cases


@pytest.mark.parametrize(("action", "side", "state"), generated_cases())
def test_every_action_from_every_state_of_its_model_does_what_the_registry_says(
    action: str, side: str, state: str
) -> None:
    store = fresh_store()
    rule = RULES[action]
    assert rule.valid_from is not None
    req = request_in(store, side, state, action)
    offered, accepted, after = try_action(store, req, action)
    allowed = state in rule.valid_from
    assert offered == allowed == accepted, (action, state)
    if allowed and rule.target(state) is not None:
        assert after == rule.target(state), (action, state, after)
    if not allowed:
        assert after == state


def test_the_registry_declares_every_action_once_with_its_source() -> None:
    for name, rule in RULES.items():
        assert rule.source, name
        assert rule.side in (B, L, EITHER), name
        assert rule.trigger in (MANUAL, PROTOCOL), name
        assert (rule.trigger == PROTOCOL) == (rule.receives is not None), name
    # every message an action sends that moves a partner has its protocol rule on the other side
    sent = {rule.message for rule in RULES.values() if rule.message}
    received = {message for _, message in PROTOCOL_RULES}
    assert received <= sent | {"Cancelled", "CancelNo", "Overdue"}  # sent by effects and the timer
    assert sent - received <= {"Notification", "Request"}  # no state change / creates the lender copy


def protocol_cases() -> list[tuple[str, str]]:
    cases = []
    for action, rule in RULES.items():
        if rule.trigger != PROTOCOL:
            continue
        for state in REQUESTER_STATES if rule.side == B else RESPONDER_STATES:
            cases.append((action, state))
    return cases


SAVED = {B: "REQ_EXPECTS_TO_SUPPLY", L: "RES_AWAIT_PICKING"}  # what a restoring message goes back to
# what mod-rs's status events do right after the message's own result (the request does not stay there)
THEN = {
    "REQ_CANCELLED_WITH_SUPPLIER": "REQ_CANCELLED",  # requesterCancelledWithSupplierIndOK (requesterCancel)
    "REQ_UNFILLED": "REQ_END_OF_ROTA",  # EventStatusReqUnfilledIndService: no further lender in this rota
}


@pytest.mark.parametrize(("action", "state"), protocol_cases())
def test_every_partner_message_in_every_state_does_what_the_registry_says(action: str, state: str) -> None:
    store = fresh_store()
    rule = RULES[action]
    assert rule.receives is not None and rule.valid_from is not None
    req = request_in(store, rule.side, state, action)
    req.saved_states.append(SAVED[rule.side])
    req.request_to_continue = False
    sender = store._partner(req)
    assert sender is not None
    audit, notes = len(req.audit), len(req.notifications)
    with store.lock:
        store._send(sender, rule.receives, None)
    moved = [entry["toStatus"]["code"] for entry in req.audit[audit:]]
    if state not in rule.valid_from:
        assert moved == [] and req.state == state  # a notification only
        assert len(req.notifications) == notes + 1
        return
    expected = rule.target(state)
    if expected == "<restore saved state>":
        expected = SAVED[rule.side]
    elif expected == "<option lender_on_received>":
        expected = store.options["lender_on_received"]
    assert moved[0] == expected, (action, state, moved)
    assert req.state == THEN.get(expected, expected)
    # and staff can never perform a protocol rule
    with pytest.raises(SimError) as refused:
        store.perform_action(req.tenant, req.id, {"action": action})
    assert refused.value.message.startswith("A valid action was not supplied, ")
    assert action not in store.valid_actions(req.tenant, req.id)["actions"]


# (model, from state, action, to state): mod-rs ActionEventResultData's "...OK" results (status) for the action
# in that state, and the paths RSLifecycleSpec walks.
MOD_RS_TRANSITIONS = [
    (B, "REQ_SHIPPED", "requesterReceived", "REQ_CHECKED_IN"),  # requesterReceivedOK
    (
        B,
        "REQ_OVERDUE",
        "requesterReceived",
        "REQ_CHECKED_IN",
    ),  # AvailableActionData REQ_OVERDUE; requesterReceivedOK
    (B, "REQ_CHECKED_IN", "patronReturnedItem", "REQ_AWAITING_RETURN_SHIPPING"),  # requesterPatronReturnedOK
    (B, "REQ_OVERDUE", "patronReturnedItem", "REQ_AWAITING_RETURN_SHIPPING"),  # requesterPatronReturnedOK
    (
        B,
        "REQ_AWAITING_RETURN_SHIPPING",
        "shippedReturn",
        "REQ_SHIPPED_TO_SUPPLIER",
    ),  # requesterShippedReturnOK
    (B, "REQ_OVERDUE", "shippedReturn", "REQ_SHIPPED_TO_SUPPLIER"),  # requesterShippedReturnOK
    (
        B,
        "REQ_CHECKED_IN",
        "patronReturnedItemAndShippedReturn",
        "REQ_SHIPPED_TO_SUPPLIER",
    ),  # requesterPatronReturnedShippedOK
    (B, "REQ_OVERDUE", "patronReturnedItemAndShippedReturn", "REQ_SHIPPED_TO_SUPPLIER"),
    (
        B,
        "REQ_CONDITIONAL_ANSWER_RECEIVED",
        "requesterAgreeConditions",
        "REQ_EXPECTS_TO_SUPPLY",
    ),  # requesterAgreeConditionsOK
    (
        B,
        "REQ_CONDITIONAL_ANSWER_RECEIVED",
        "requesterRejectConditions",
        "REQ_CANCEL_PENDING",
    ),  # requesterRejectConditionsOK
    (B, "REQ_REQUEST_SENT_TO_SUPPLIER", "requesterCancel", "REQ_CANCEL_PENDING"),  # requesterCancelOK
    (B, "REQ_EXPECTS_TO_SUPPLY", "requesterCancel", "REQ_CANCEL_PENDING"),  # requesterCancelOK
    (B, "REQ_CONDITIONAL_ANSWER_RECEIVED", "requesterCancel", "REQ_CANCEL_PENDING"),  # requesterCancelOK
    (B, "REQ_LOCAL_REVIEW", "fillLocally", "REQ_FILLED_LOCALLY"),  # requesterFillLocallyOK
    (B, "REQ_LOCAL_REVIEW", "cancelLocal", "REQ_CANCELLED"),  # requesterCancelLocalOK
    (
        B,
        "REQ_END_OF_ROTA",
        "markEndOfRotaReviewed",
        "REQ_END_OF_ROTA_REVIEWED",
    ),  # requesterMarkEndOfRotaReviewed
    (
        B,
        "REQ_LOCAL_REVIEW",
        "localSupplierCannotSupply",
        "REQ_REQUEST_SENT_TO_SUPPLIER",
    ),  # requesterLocalCannotSupplyContinue
    (B, "REQ_INVALID_PATRON", "requesterBypassValidation", "REQ_REQUEST_SENT_TO_SUPPLIER"),  # RSLifecycleSpec
    (
        L,
        "RES_NEW_AWAIT_PULL_SLIP",
        "supplierPrintPullSlip",
        "RES_AWAIT_PICKING",
    ),  # responderPullSlipPrintedOK
    (L, "RES_AWAIT_PICKING", "supplierCheckInToReshare", "RES_AWAIT_SHIP"),  # responderCheckInToReshareOK
    (L, "RES_AWAIT_SHIP", "supplierMarkShipped", "RES_ITEM_SHIPPED"),  # responderMarkShippedOK
    (
        L,
        "RES_AWAIT_PICKING",
        "supplierCheckInToReshareAndSupplierMarkShipped",
        "RES_ITEM_SHIPPED",
    ),  # responderCheckInAndShipOK
    (
        L,
        "RES_ITEM_RETURNED",
        "supplierCheckOutOfReshare",
        "RES_COMPLETE",
    ),  # responderItemReturnedOK (checkout of ReShare)
    (L, "RES_OVERDUE", "supplierCheckOutOfReshare", "RES_COMPLETE"),
    (L, "RES_IDLE", "respondYes", "RES_NEW_AWAIT_PULL_SLIP"),  # responderAnswerYesOK
    (L, "RES_IDLE", "supplierCannotSupply", "RES_UNFILLED"),  # responderCannotSupplyOK
    (L, "RES_NEW_AWAIT_PULL_SLIP", "supplierCannotSupply", "RES_UNFILLED"),
    (L, "RES_AWAIT_PICKING", "supplierCannotSupply", "RES_UNFILLED"),
    (
        L,
        "RES_IDLE",
        "supplierConditionalSupply",
        "RES_PENDING_CONDITIONAL_ANSWER",
    ),  # responderAnswerConditionalHoldingOK
    (L, "RES_CANCEL_REQUEST_RECEIVED", "supplierRespondToCancel", "RES_CANCELLED"),  # responderCancelOK (yes)
    (B, "REQ_END_OF_ROTA", "rerequest", "REQ_END_OF_ROTA_REVIEWED"),  # requesterRerequestEndOfRotaOK
    (B, "REQ_CANCELLED", "rerequest", "REQ_CANCELLED"),  # requesterRerequestCancelledOK (status null)
]

# (model, state, incoming ISO 18626 message, state after): ActionEventResultData's protocol result lists
MOD_RS_MESSAGES = [
    (L, "RES_ITEM_SHIPPED", "Received", "RES_AWAITING_RETURN_SHIPPING"),  # responderISO18626Received
    (L, "RES_ITEM_SHIPPED", "ShippedReturn", "RES_ITEM_RETURNED"),  # responderISO18626DhippedReturn
    (L, "RES_OVERDUE", "ShippedReturn", "RES_ITEM_RETURNED"),
    (L, "RES_AWAIT_PICKING", "Cancel", "RES_CANCEL_REQUEST_RECEIVED"),  # responderISO18626Cancel
    (B, "REQ_REQUEST_SENT_TO_SUPPLIER", "Loaned", "REQ_SHIPPED"),  # requesterISO18626Loaned
    (B, "REQ_EXPECTS_TO_SUPPLY", "Unfilled", "REQ_UNFILLED"),  # requesterISO18626Unfilled
    (B, "REQ_CANCEL_PENDING", "Cancelled", "REQ_CANCELLED_WITH_SUPPLIER"),  # requesterISO18626Cancelled
    (B, "REQ_SHIPPED_TO_SUPPLIER", "LoanCompleted", "REQ_REQUEST_COMPLETE"),  # requesterISO18626LoanCompleted
    (B, "REQ_CHECKED_IN", "Overdue", "REQ_OVERDUE"),  # requesterISO18626Overdue
]


@pytest.mark.parametrize(("side", "state", "message", "to_state"), MOD_RS_MESSAGES)
def test_mod_rs_message_results_agree_with_the_registry(
    side: str, state: str, message: str, to_state: str
) -> None:
    rule = PROTOCOL_RULES[(side, message)]
    target = rule.target(state)
    if target == "<option lender_on_received>":
        target = Store().options["lender_on_received"]  # the default reading
    assert target == to_state


def test_the_hand_written_table_has_at_least_25_transitions() -> None:
    assert len(MOD_RS_TRANSITIONS) >= 25


@pytest.mark.parametrize(("side", "state", "action", "to_state"), MOD_RS_TRANSITIONS)
def test_mod_rs_transitions_agree_with_the_registry_and_the_simulator(
    side: str, state: str, action: str, to_state: str
) -> None:
    rule = RULES[action]
    assert rule.side == side
    assert rule.valid_from is not None and state in rule.valid_from
    if rule.to_state is not None:
        assert rule.to_state == to_state
    store = fresh_store()
    req = request_in(store, side, state, action)
    offered, accepted, after = try_action(store, req, action)
    assert offered and accepted
    assert after == to_state
