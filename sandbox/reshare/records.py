"""The simulator's data: tenants, pickup locations, patron requests and volumes, and how they render as JSON.

Record shapes (what `GET /rs/patronrequests` answers):

- **brief** (list results without `fullRecord=true`): `id`, `hrid`, `isRequester`, `state{code,terminal}`,
  `title`, `author`, `patronIdentifier`, `pickupLocationSlug`, `pickupLocation`, `dueDateRS` (an ISO instant, set at the fill),
  `parsedDueDateRS`, `requestingInstitutionSymbol`, `supplyingInstitutionSymbol`, `lastUpdated`,
  `dateCreated`, `needsAttention`. Every date is rendered as mod-rs renders a `Date` (grails-views default):
  ISO-8601 UTC to the second (`2026-11-30T08:00:00Z`), so many rows can share one `lastUpdated`; the
  millisecond the database holds is kept in a `_ms` map that filters and sorts use and the server strips.
- **full** (`GET /rs/patronrequests/{id}`, or `fullRecord=true`): the brief fields plus `isbn`, `publisher`,
  `publicationDate`, `localCallNumber`, `serviceType`, `patronNote`, `localNote`, `pickLocation`,
  `pickShelvingLocation`, `resolvedPickupLocation{id,name,lmsLocationCode}` (null when the slug is unknown),
  `volumes[]{id,name,itemId,temporaryItemBarcode,callNumber,status{value}}`,
  `audit[]{id,dateCreated,fromStatus{code}|null,toStatus{code},action,message}` (one per state change),
  `notifications[]{id,timestamp,messageContent,isSender,seen}`, `conditions[]`, `precededBy{id}|null`,
  `succeededBy{id}|null`.
"""

from __future__ import annotations

import bisect
import heapq
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .query import BOOL, DATETIME, Field
from .timefmt import iso_seconds, now_ms

# ---------------------------------------------------------------- state codes

REQ_IDLE = "REQ_IDLE"
REQ_VALIDATED = "REQ_VALIDATED"
REQ_INVALID_PATRON = "REQ_INVALID_PATRON"
REQ_DUPLICATE = "REQ_DUPLICATE_REVIEW"  # mod-rs Status.PATRON_REQUEST_DUPLICATE_REVIEW
REQ_SOURCING_ITEM = "REQ_SOURCING_ITEM"
REQ_SUPPLIER_IDENTIFIED = "REQ_SUPPLIER_IDENTIFIED"
REQ_LOCAL_REVIEW = "REQ_LOCAL_REVIEW"
REQ_REQUEST_SENT_TO_SUPPLIER = "REQ_REQUEST_SENT_TO_SUPPLIER"
REQ_CONDITIONAL_ANSWER_RECEIVED = "REQ_CONDITIONAL_ANSWER_RECEIVED"
REQ_EXPECTS_TO_SUPPLY = "REQ_EXPECTS_TO_SUPPLY"
REQ_SHIPPED = "REQ_SHIPPED"
REQ_CHECKED_IN = "REQ_CHECKED_IN"
REQ_AWAITING_RETURN_SHIPPING = "REQ_AWAITING_RETURN_SHIPPING"
REQ_SHIPPED_TO_SUPPLIER = "REQ_SHIPPED_TO_SUPPLIER"
REQ_REQUEST_COMPLETE = "REQ_REQUEST_COMPLETE"
REQ_OVERDUE = "REQ_OVERDUE"
REQ_RECALLED = "REQ_RECALLED"
REQ_CANCEL_PENDING = "REQ_CANCEL_PENDING"
REQ_CANCELLED = "REQ_CANCELLED"
REQ_CANCELLED_WITH_SUPPLIER = "REQ_CANCELLED_WITH_SUPPLIER"
REQ_UNFILLED = "REQ_UNFILLED"
REQ_END_OF_ROTA = "REQ_END_OF_ROTA"
REQ_END_OF_ROTA_REVIEWED = "REQ_END_OF_ROTA_REVIEWED"
REQ_FILLED_LOCALLY = "REQ_FILLED_LOCALLY"

RES_IDLE = "RES_IDLE"
RES_NEW_AWAIT_PULL_SLIP = "RES_NEW_AWAIT_PULL_SLIP"
RES_AWAIT_PICKING = "RES_AWAIT_PICKING"
RES_AWAIT_SHIP = "RES_AWAIT_SHIP"
RES_PENDING_CONDITIONAL_ANSWER = "RES_PENDING_CONDITIONAL_ANSWER"
RES_ITEM_SHIPPED = "RES_ITEM_SHIPPED"
RES_AWAITING_RETURN_SHIPPING = "RES_AWAITING_RETURN_SHIPPING"
RES_OVERDUE = "RES_OVERDUE"
RES_ITEM_RETURNED = "RES_ITEM_RETURNED"
RES_COMPLETE = "RES_COMPLETE"
RES_CANCEL_REQUEST_RECEIVED = "RES_CANCEL_REQUEST_RECEIVED"
RES_CANCELLED = "RES_CANCELLED"
RES_UNFILLED = "RES_UNFILLED"
RES_NOT_SUPPLIED = "RES_NOT_SUPPLIED"

#: Terminal states per side (mod-rs StateModelData).
REQUESTER_TERMINAL = frozenset(
    {
        REQ_REQUEST_COMPLETE,
        REQ_CANCELLED,
        REQ_END_OF_ROTA,
        REQ_END_OF_ROTA_REVIEWED,
        REQ_FILLED_LOCALLY,
    }
)
RESPONDER_TERMINAL = frozenset({RES_COMPLETE, RES_CANCELLED, RES_UNFILLED, RES_NOT_SUPPLIED})

# Volume status values (mod-rs refdata `VolumeStatus`, manual / no-integration variants).
VOL_AWAITING_LMS_CHECK_OUT = "awaiting_lms_check_out"
VOL_LMS_CHECK_OUT_NO_INTEGRATION = "lms_check_out_(no_integration)"
VOL_AWAITING_TEMP_ITEM = "awaiting_temporary_item_creation"
VOL_TEMP_ITEM_NO_INTEGRATION = "temporary_item_creation_(no_integration)"
VOL_LMS_CHECK_IN_NO_INTEGRATION = "lms_check_in_(no_integration)"
VOL_COMPLETED = "completed"

# ---------------------------------------------------------------- settings

#: Known settings: key -> (section, settingType, vocab).
KNOWN_SETTINGS: dict[str, tuple[str, str, str | None]] = {
    "host_lms_integration": ("hostLMSIntegration", "Refdata", "HostLMSIntegrationAdapter"),
    "check_in_on_return": ("hostLMSIntegration", "Refdata", "CheckInOnReturn"),
    "borrower_check": ("hostLMSIntegration", "Refdata", "BorrowerCheckMethod"),
    "auto_responder_status": ("autoResponder", "Refdata", "AutoResponder"),
    "auto_responder_cancel": ("autoResponder", "Refdata", "AutoResponder_Cancel"),
    "request_id_prefix": ("requests", "String", None),
    "default_loan_period": ("requests", "String", None),
}
DEFAULT_SETTINGS = {"host_lms_integration": "manual"}
#: Settings every mod-rs tenant has unless changed (referenceData/SettingsData.groovy ensureAppSetting):
#: `auto_responder_cancel` is "on" (RefdataValueData AUTO_RESPONDER_CANCEL_ON), so a lender answers a
#: borrower's cancel by itself (EventStatusResCancelRequestReceivedIndService).
MOD_RS_SETTINGS = {"auto_responder_cancel": "on"}


def make_setting(key: str, value: Any) -> dict[str, Any]:
    """A mod-rs AppSetting record. `value` is the value string, or a dict overriding record fields."""
    section, setting_type, vocab = KNOWN_SETTINGS.get(key, ("other", "String", None))
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "section": section,
        "key": key,
        "settingType": setting_type,
        "value": value,
    }
    if vocab:
        record["vocab"] = vocab
    if isinstance(value, dict):
        record.update({k: v for k, v in value.items() if k in ("section", "settingType", "value", "vocab")})
    return record


# ---------------------------------------------------------------- tenants


@dataclass
class PickupLocation:
    slug: str
    name: str
    lms_location_code: str | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "lmsLocationCode": self.lms_location_code,
        }


class RequestTable(dict[str, "PatronRequest"]):
    """A tenant's patron requests by id, with what a database gives a listing: an index kept sorted on
    ``lastUpdated`` (the millisecond held), one per ``isRequester``, so that ``GET /rs/patronrequests`` filtered
    on ``isRequester`` and a ``lastUpdated`` range and sorted on ``lastUpdated`` reads O(log N + page) rows
    instead of rendering, filtering and sorting every request of the tenant for every page (``query.py``,
    ``OrderedSource``). It changes nothing a client can see: the rows, their order (ties still shuffled on every
    call) and every refusal are those of the full scan. mod-rs itself declares no index on ``pr_last_updated``
    (its indexes, ``service/grails-app/migrations/update-mod-rs-2-17.groovy``: state and type, dateCreated
    descending, hrid); PostgreSQL then sorts the matching rows, which a client cannot tell apart from this.

    Kept current by ``PatronRequest.__setattr__``: every change of ``last_updated_ms`` moves its key."""

    key_field = "lastUpdated"
    partition_field = "isRequester"

    def __init__(self) -> None:
        super().__init__()
        self.ordered: dict[bool, list[tuple[int, str]]] = {True: [], False: []}  # (ms, id), ascending

    def __setitem__(self, request_id: str, req: PatronRequest) -> None:
        old = self.get(request_id)
        if old is not None:
            self._drop(old.is_requester, old.last_updated_ms, request_id)
            object.__setattr__(old, "table_", None)
        super().__setitem__(request_id, req)
        bisect.insort(self.ordered[req.is_requester], (req.last_updated_ms, request_id))
        object.__setattr__(req, "table_", self)

    def __delitem__(self, request_id: str) -> None:
        req = self[request_id]
        self._drop(req.is_requester, req.last_updated_ms, request_id)
        object.__setattr__(req, "table_", None)
        super().__delitem__(request_id)

    def moved(self, req: PatronRequest, old_ms: int, new_ms: int) -> None:
        if old_ms == new_ms:
            return
        self._drop(req.is_requester, old_ms, req.id)
        bisect.insort(self.ordered[req.is_requester], (new_ms, req.id))

    def _drop(self, is_requester: bool, ms: int, request_id: str) -> None:
        keys = self.ordered[is_requester]
        at = bisect.bisect_left(keys, (ms, request_id))
        if at == len(keys) or keys[at] != (ms, request_id):  # pragma: no cover - the index is kept whole
            raise RuntimeError(f"request {request_id} missing from the lastUpdated index")
        del keys[at]

    def listed(self, request_id: str) -> dict[str, Any]:
        """One request as a listing holds it: the full record plus the ``_ms`` map filters and sorts use."""
        req = self[request_id]
        return {**req.full(), "_ms": exact_times(req)}

    def key_range(
        self, partition: bool | None, low: int | None, high: int | None, descending: bool
    ) -> Iterator[tuple[int, str]]:
        """(ms, id) of the requests with ``low <= lastUpdated ms <= high`` (None: unbounded), of one
        ``isRequester`` partition or both, ascending or descending by ms."""
        parts = (
            [self.ordered[partition]] if partition is not None else [self.ordered[True], self.ordered[False]]
        )
        slices = []
        for keys in parts:
            start = bisect.bisect_left(keys, (low,)) if low is not None else 0
            end = bisect.bisect_left(keys, (high + 1,)) if high is not None else len(keys)
            slices.append(range(end - 1, start - 1, -1) if descending else range(start, end))
        streams = [map(keys.__getitem__, span) for keys, span in zip(parts, slices, strict=True)]
        if len(streams) == 1:
            yield from streams[0]
        else:
            yield from heapq.merge(*streams, key=lambda key: key[0], reverse=descending)


@dataclass
class Tenant:
    name: str
    symbol: str
    users: dict[str, str]
    settings: dict[str, dict[str, Any]]
    pickup_locations: dict[str, PickupLocation]
    requests: RequestTable = field(default_factory=RequestTable)
    hrid_counter: int = 0
    last_tick: int = 0
    clock: Callable[[], int] = now_ms

    def tick(self) -> int:
        """A fresh `lastUpdated` for this tenant: the clock's ms, never going back, ties allowed (as GORM's
        autoTimestamp: two saves within one millisecond share it)."""
        self.last_tick = max(self.clock(), self.last_tick)
        return self.last_tick

    def next_hrid(self) -> str:
        """mod-rs NewRequestService.generateHrid: the `request_id_prefix` setting (its value, else its
        default, else nothing) followed straight by the next number of the tenant's sequence: no separator."""
        self.hrid_counter += 1
        setting = self.settings.get("request_id_prefix") or {}
        prefix = setting.get("value") or setting.get("defValue") or ""
        return f"{prefix}{self.hrid_counter}"

    def summary(self) -> dict[str, Any]:
        return {
            "tenant": self.name,
            "symbol": self.symbol,
            "users": sorted(self.users),
            "settings": {key: record["value"] for key, record in self.settings.items()},
            "pickup_locations": [location.to_json() for location in self.pickup_locations.values()],
            "requests": len(self.requests),
        }


# ---------------------------------------------------------------- requests


@dataclass
class Volume:
    name: str | None
    item_id: str | None
    call_number: str | None
    status: str
    temporary_item_barcode: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "itemId": self.item_id,
            "temporaryItemBarcode": self.temporary_item_barcode,
            "callNumber": self.call_number,
            "status": {"value": self.status},
        }


@dataclass
class ItemSpec:
    """A physical piece the lender will send: what `/_sim/requests` `volumes[]` describes."""

    item_barcode: str
    call_number: str | None = None
    name: str | None = None


@dataclass
class PatronRequest:
    id: str
    tenant: str
    hrid: str
    is_requester: bool
    title: str
    author: str | None = None
    isbn: str | None = None
    publisher: str | None = None
    publication_date: str | None = None
    patron_identifier: str | None = None
    patron_note: str | None = None
    pickup_location_slug: str | None = None
    pickup: PickupLocation | None = None
    requesting_symbol: str | None = None
    supplying_symbol: str | None = None
    local_call_number: str | None = None
    pick_location: str | None = None
    pick_shelving_location: str | None = None
    service_type: str = "Loan"
    state: str | None = None
    due_date_rs: str | None = None
    parsed_due_date_ms: int | None = None
    date_created_ms: int = 0
    last_updated_ms: int = 0
    needs_attention: bool = False
    local_note: str | None = None
    volumes: list[Volume] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    # simulator bookkeeping (not rendered)
    partner: tuple[str, str] | None = None  # (tenant, id) of the other side's copy
    lender_tenant: str | None = None  # borrower: the tenant its rota points at
    next_lenders: list[str] = field(default_factory=list)  # borrower: the rest of the rota, in order
    item_specs: list[ItemSpec] = field(default_factory=list)  # borrower: what the lender will send
    wanted_due_date: str | None = None  # the loanDateOverride instant the lender will lend until
    saved_states: list[str] = field(default_factory=list)  # mod-rs "save/restore state" stack
    undo: dict[str, Any] | None = None  # {"action", "from", "to"} of the last undoable step
    answered: bool = False  # lender: the will-supply answer was sent
    preceded_by: str | None = None
    succeeded_by: str | None = None
    busy_until_ms: int = 0  # wall clock ms until which a sent message awaits its answer (networkStatus)
    busy_status: str = "Waiting"  # what networkStatus says while busy: Waiting or Retry
    manually_closed: bool = (
        False  # mod-rs PatronRequest.manuallyClosed: AppListenerService then publishes nothing
    )
    # mod-rs PatronRequest.requestToContinue (default true): set false by requesterCancel, true by
    # requesterRejectConditions (ActionPatronRequestCancelService); read when the lender's yes arrives
    request_to_continue: bool = True

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "last_updated_ms":
            table = self.__dict__.get("table_")
            if table is not None:
                table.moved(self, self.__dict__["last_updated_ms"], value)
        object.__setattr__(self, name, value)

    @property
    def network_status(self) -> str:
        """mod-rs ``PatronRequest.networkStatus``: Waiting (or Retry) while a sent message awaits its answer."""
        return self.busy_status if now_ms() < self.busy_until_ms else "Idle"

    @property
    def terminal(self) -> bool:
        return self.state in (REQUESTER_TERMINAL if self.is_requester else RESPONDER_TERMINAL)

    def brief(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hrid": self.hrid,
            "isRequester": self.is_requester,
            "state": {"code": self.state, "terminal": self.terminal},
            "title": self.title,
            "author": self.author,
            "patronIdentifier": self.patron_identifier,
            "pickupLocationSlug": self.pickup_location_slug,
            "pickupLocation": self.pickup.name if self.pickup else None,
            "dueDateRS": self.due_date_rs,
            "parsedDueDateRS": (
                iso_seconds(self.parsed_due_date_ms) if self.parsed_due_date_ms is not None else None
            ),
            "requestingInstitutionSymbol": self.requesting_symbol,
            "supplyingInstitutionSymbol": self.supplying_symbol,
            "lastUpdated": iso_seconds(self.last_updated_ms),
            "dateCreated": iso_seconds(self.date_created_ms),
            "needsAttention": self.needs_attention,
        }

    def full(self) -> dict[str, Any]:
        record = self.brief()
        record.update(
            {
                "isbn": self.isbn,
                "publisher": self.publisher,
                "publicationDate": self.publication_date,
                "localCallNumber": self.local_call_number,
                "serviceType": self.service_type,
                "patronNote": self.patron_note,
                "localNote": self.local_note,
                "pickShelvingLocation": self.pick_shelving_location,
                "resolvedPickupLocation": (
                    {
                        "id": self.pickup.id,
                        "name": self.pickup.name,
                        "lmsLocationCode": self.pickup.lms_location_code,
                    }
                    if self.pickup
                    else None
                ),
                "volumes": [volume.to_json() for volume in self.volumes],
                "networkStatus": self.network_status,
                "audit": [dict(entry) for entry in self.audit],
                "notifications": [dict(entry) for entry in self.notifications],
                "conditions": [dict(entry) for entry in self.conditions],
                "precededBy": {"id": self.preceded_by} if self.preceded_by else None,
                "succeededBy": {"id": self.succeeded_by} if self.succeeded_by else None,
                "requestToContinue": self.request_to_continue,
            }
        )
        if self.pick_location:  # the gson renders pickLocation (explicitly) only when there is one
            record["pickLocation"] = self.pick_location
        return record


def exact_times(req: PatronRequest) -> dict[str, int | None]:
    """The `_ms` map of a listed record: dates as the database holds them (filters and sort compare these)."""
    return {
        "lastUpdated": req.last_updated_ms,
        "dateCreated": req.date_created_ms,
        "parsedDueDateRS": req.parsed_due_date_ms,
    }


#: What mod-rs `views/patronRequest/_patronRequest.gson` leaves out of a list record (its brief `toExclude`,
#: as far as the simulator renders those fields): everything else, `volumes` included, is in lists too.
LIST_EXCLUDES = frozenset(
    {
        "audit",
        "conditions",
        "notifications",
        "networkStatus",
        "resolvedPickupLocation",
        "validActions",
    }
)


def brief_of(full_record: dict[str, Any]) -> dict[str, Any]:
    """A list record (`_view` brief, the list default): the full record less `LIST_EXCLUDES` and `_ms`."""
    return {key: value for key, value in full_record.items() if key not in LIST_EXCLUDES and key != "_ms"}


#: Fields usable in `filters` and `sort` on /rs/patronrequests (paths into the full record).
REQUEST_FIELDS: dict[str, Field] = {
    f.path: f
    for f in [
        Field("id"),
        Field("hrid"),
        Field("isRequester", BOOL),
        Field("state.code"),
        Field("state.terminal", BOOL),
        Field("title"),
        Field("author"),
        Field("isbn"),
        Field("publisher"),
        Field("publicationDate"),
        Field("patronIdentifier"),
        Field("pickupLocationSlug"),
        Field("pickupLocation"),
        Field("resolvedPickupLocation.lmsLocationCode"),
        Field("resolvedPickupLocation.name"),
        Field("dueDateRS"),
        Field("parsedDueDateRS", DATETIME),
        Field("requestingInstitutionSymbol"),
        Field("supplyingInstitutionSymbol"),
        Field("localCallNumber"),
        Field("serviceType"),
        Field("localNote"),
        Field("lastUpdated", DATETIME),
        Field("dateCreated", DATETIME),
        Field("needsAttention", BOOL),
        Field("volumes.itemId", sortable=False),
        Field("volumes.temporaryItemBarcode", sortable=False),
        Field("volumes.status.value", sortable=False),
    ]
}
REQUEST_TERM_FIELDS = ("hrid", "title", "patronIdentifier")

SETTING_FIELDS: dict[str, Field] = {
    f.path: f for f in [Field("id"), Field("section"), Field("key"), Field("settingType"), Field("value")]
}
