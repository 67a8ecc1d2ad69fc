"""The WMS simulator's records: statuses, institutions, patrons, items, holds, loans, notices, tokens and
faults, the errors its operations raise, and time helpers (all times timezone-aware UTC, whole seconds).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

# Item statuses (WMS wording) ------------------------------------------------------------------------
ITEM_AVAILABLE = "Available"
ITEM_UNAVAILABLE = "Unavailable"
ITEM_ON_LOAN = "On Loan"
ITEM_IN_TRANSIT = "In Transit"
ITEM_ON_HOLD_SHELF = "On Hold Shelf"
ITEM_ON_ORDER = "On Order"  # temp item created by AcceptItem, not checked in yet
ITEM_STATUSES = (
    ITEM_AVAILABLE,
    ITEM_UNAVAILABLE,
    ITEM_ON_LOAN,
    ITEM_IN_TRANSIT,
    ITEM_ON_HOLD_SHELF,
    ITEM_ON_ORDER,
)

# Hold statuses ----------------------------------------------------------------------------------------
HOLD_PENDING = "Pending"
HOLD_READY = "Ready"
HOLD_FILLED = "Filled"
HOLD_CANCELLED = "Cancelled"
ACTIVE_HOLD_STATUSES = (HOLD_PENDING, HOLD_READY)

CIRCULATING = "circulating"
NON_CIRCULATING = "non-circulating"

ALLOWED_SCOPES = ("WMS_NCIP", "SCIM:read_user")
FAULT_OPERATIONS = (
    "AcceptItem",
    "CheckOutItem",
    "CheckInItem",
    "CancelRequestItem",
    "LookupItem",
    "LookupUser",
    "token",
    "scim",
    "*",
)
FAULT_KINDS = ("latency", "http_error", "timeout", "drop_response", "problem")
REQUEST_LOG_LIMIT = 10_000


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(value: datetime | None) -> str | None:
    """``xs:dateTime`` in UTC with ``Z`` and second precision."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: str) -> datetime:
    """Read an ``xs:dateTime`` (or a bare date) as UTC; a value without offset is taken as UTC."""
    text = value.strip()
    if not text:
        raise ValueError("empty date-time")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a date (YYYY-MM-DD): {value!r}")
    return date.fromisoformat(value.strip()[:10])


class CircError(Exception):
    """WMS refuses: carries the NCIP Problem (type, detail code, element, value) and a sentence for humans."""

    def __init__(
        self,
        problem_type: str,
        detail: str,
        message: str,
        *,
        element: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.problem_type = problem_type
        self.detail = detail
        self.message = message
        self.element = element
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "problem_type": self.problem_type,
            "problem_detail": self.detail,
            "problem_element": self.element,
            "problem_value": self.value,
        }


class NotFound(Exception):
    """An unknown institution (or record) addressed by the ``/_sim/`` API."""


class AmbiguousBarcode(Exception):
    """A barcode that several institutions hold, addressed without ``registry_id``."""


# Records ---------------------------------------------------------------------------------------------


@dataclass
class Branch:
    branch_id: str
    name: str
    main: bool = False

    def to_dict(self, registry_id: str) -> dict[str, Any]:
        return {"registry_id": registry_id, "branch_id": self.branch_id, "name": self.name, "main": self.main}


@dataclass
class IllSettings:
    holding_location: str = "ILL"
    shelving_location: str = "ILL Shelf"
    home_branch: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "holding_location": self.holding_location,
            "shelving_location": self.shelving_location,
            "home_branch": self.home_branch,
        }


@dataclass
class Policy:
    patron_loan_days: int = 28
    ill_loan_days: int = 42

    def to_dict(self, registry_id: str) -> dict[str, Any]:
        return {
            "registry_id": registry_id,
            "patron_loan_days": self.patron_loan_days,
            "ill_loan_days": self.ill_loan_days,
        }


@dataclass
class Patron:
    barcode: str
    expires: date
    blocked: bool = False
    borrower_category: str = "ADULT"
    home_branch: str = ""
    symbol: str | None = None
    given_name: str = ""
    family_name: str = ""
    email: str | None = None
    patron_id: str = ""
    created: datetime = field(default_factory=utcnow)
    updated: datetime = field(default_factory=utcnow)

    @property
    def expires_at(self) -> datetime:
        return datetime.combine(self.expires, time(0, 0), tzinfo=UTC)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    @property
    def is_ill_account(self) -> bool:
        return bool(self.symbol) or self.borrower_category.upper() == "ILL"

    def to_dict(self, registry_id: str, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        return {
            "registry_id": registry_id,
            "barcode": self.barcode,
            "patron_id": self.patron_id,
            "expires": self.expires.isoformat(),
            "expired": self.is_expired(now),
            "blocked": self.blocked,
            "borrower_category": self.borrower_category,
            "home_branch": self.home_branch,
            "symbol": self.symbol,
            "ill_account": self.is_ill_account,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "email": self.email,
            "created": iso(self.created),
            "updated": iso(self.updated),
        }


@dataclass
class Item:
    barcode: str
    branch: str  # home branch (owning branch; for temp items the ILL home branch)
    collection_type: str = CIRCULATING
    call_number: str = ""
    title: str = ""
    author: str = ""
    publisher: str = ""
    publication_date: str = ""
    edition: str = ""
    status: str = ITEM_AVAILABLE
    location: str = ""  # branch where the item physically is (or last was)
    in_transit_to: str | None = None
    temporary: bool = False
    request_id: str | None = None
    lending_library: str | None = None
    lending_library_scheme: str | None = None
    date_for_return: datetime | None = None
    holding_location: str | None = None
    shelving_location: str | None = None
    requested_action: str | None = None
    last_borrower: str | None = None
    created: datetime = field(default_factory=utcnow)
    updated: datetime = field(default_factory=utcnow)

    @property
    def shelf_status(self) -> str:
        """Status of the item when it comes to rest at home."""
        if self.temporary:
            return ITEM_UNAVAILABLE
        return ITEM_AVAILABLE if self.collection_type.lower() == CIRCULATING else ITEM_UNAVAILABLE

    def to_dict(self, registry_id: str) -> dict[str, Any]:
        return {
            "registry_id": registry_id,
            "barcode": self.barcode,
            "temporary": self.temporary,
            "status": self.status,
            "branch": self.branch,
            "location": self.location,
            "in_transit_to": self.in_transit_to,
            "collection_type": self.collection_type,
            "call_number": self.call_number,
            "title": self.title,
            "author": self.author,
            "publisher": self.publisher,
            "publication_date": self.publication_date,
            "edition": self.edition,
            "request_id": self.request_id,
            "lending_library": self.lending_library,
            "lending_library_scheme": self.lending_library_scheme,
            "date_for_return": iso(self.date_for_return),
            "holding_location": self.holding_location,
            "shelving_location": self.shelving_location,
            "requested_action": self.requested_action,
            "last_borrower": self.last_borrower,
            "created": iso(self.created),
            "updated": iso(self.updated),
        }


@dataclass
class Hold:
    hold_id: str
    item_barcode: str
    patron_barcode: str
    pickup_branch: str
    status: str = HOLD_PENDING
    request_id: str | None = None
    pickup_expiry: datetime | None = None
    created: datetime = field(default_factory=utcnow)
    updated: datetime = field(default_factory=utcnow)
    ready_at: datetime | None = None
    filled_at: datetime | None = None
    cancelled_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_HOLD_STATUSES

    def to_dict(self, registry_id: str) -> dict[str, Any]:
        return {
            "registry_id": registry_id,
            "hold_id": self.hold_id,
            "item_barcode": self.item_barcode,
            "patron_barcode": self.patron_barcode,
            "pickup_branch": self.pickup_branch,
            "status": self.status,
            "request_id": self.request_id,
            "pickup_expiry": iso(self.pickup_expiry),
            "created": iso(self.created),
            "updated": iso(self.updated),
            "ready_at": iso(self.ready_at),
            "filled_at": iso(self.filled_at),
            "cancelled_at": iso(self.cancelled_at),
        }


@dataclass
class Loan:
    loan_id: str
    item_barcode: str
    patron_barcode: str
    due: datetime
    checked_out_at: datetime
    request_id: str | None = None
    desired_due: datetime | None = None
    kind: str = "patron"  # "patron" or "ill" (borrowing-institution account)
    source: str = "ncip"  # "ncip" or "staff"
    returned_at: datetime | None = None
    renewals: int = 0

    @property
    def active(self) -> bool:
        return self.returned_at is None

    def to_dict(self, registry_id: str) -> dict[str, Any]:
        return {
            "registry_id": registry_id,
            "loan_id": self.loan_id,
            "item_barcode": self.item_barcode,
            "patron_barcode": self.patron_barcode,
            "request_id": self.request_id,
            "checked_out_at": iso(self.checked_out_at),
            "due": iso(self.due),
            "desired_due": iso(self.desired_due),
            "kind": self.kind,
            "source": self.source,
            "returned_at": iso(self.returned_at),
            "renewals": self.renewals,
            "active": self.active,
        }


@dataclass
class Notice:
    notice_id: str
    patron: str
    item: str
    kind: str
    time: datetime
    hold_id: str | None = None
    request_id: str | None = None
    pickup_branch: str | None = None

    def to_dict(self, registry_id: str) -> dict[str, Any]:
        return {
            "registry_id": registry_id,
            "notice_id": self.notice_id,
            "patron": self.patron,
            "item": self.item,
            "kind": self.kind,
            "time": iso(self.time),
            "hold_id": self.hold_id,
            "request_id": self.request_id,
            "pickup_branch": self.pickup_branch,
        }


@dataclass
class Institution:
    registry_id: str
    wskey: str
    secret: str
    name: str = ""
    symbol: str | None = None
    timezone: str = "UTC"  # the library's time zone: WMS renders due dates in it (switch due_date_style)
    branches: dict[str, Branch] = field(default_factory=dict)
    ill_settings: IllSettings = field(default_factory=IllSettings)
    policy: Policy = field(default_factory=Policy)
    patrons: dict[str, Patron] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    holds: list[Hold] = field(default_factory=list)
    loans: list[Loan] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    @property
    def main_branch(self) -> str:
        for branch in self.branches.values():
            if branch.main:
                return branch.branch_id
        return next(iter(self.branches), self.registry_id)

    def agency_ids(self) -> set[str]:
        """Values a request's ToAgencyId may carry for this institution."""
        ids = {self.registry_id, *self.branches}
        if self.symbol:
            ids.add(self.symbol)
        return ids

    def active_loan(self, barcode: str) -> Loan | None:
        return next((loan for loan in self.loans if loan.item_barcode == barcode and loan.active), None)

    def active_hold(self, barcode: str) -> Hold | None:
        return next((hold for hold in self.holds if hold.item_barcode == barcode and hold.active), None)

    def find_patron(self, value: str, *, by_symbol: bool = False) -> Patron | None:
        if by_symbol:
            wanted = value.strip().upper()
            return next((p for p in self.patrons.values() if p.symbol and p.symbol.upper() == wanted), None)
        return self.patrons.get(value)

    def find_by_request_id(self, request_id: str) -> Item | None:
        """The temp item created for an ILL request, else the item of the (latest) loan recording it."""
        temp = [i for i in self.items.values() if i.temporary and i.request_id == request_id]
        if temp:
            return max(temp, key=lambda i: i.created)
        loans = [loan for loan in self.loans if loan.request_id == request_id]
        active = [loan for loan in loans if loan.active]
        chosen = active or loans
        if chosen:
            return self.items.get(max(chosen, key=lambda loan: loan.checked_out_at).item_barcode)
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "registry_id": self.registry_id,
            "name": self.name,
            "symbol": self.symbol,
            "timezone": self.timezone,
            "wskey": self.wskey,
            "secret": self.secret,
            "main_branch": self.main_branch,
            "branches": [b.to_dict(self.registry_id) for b in self.branches.values()],
            "ill_settings": self.ill_settings.to_dict(),
            "policies": self.policy.to_dict(self.registry_id),
        }


@dataclass
class Token:
    access_token: str
    registry_id: str
    wskey: str
    scopes: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry_id": self.registry_id,
            "wskey": self.wskey,
            "scopes": list(self.scopes),
            "issued_at": iso(self.issued_at),
            "expires_at": iso(self.expires_at),
        }


@dataclass
class Fault:
    fault_id: str
    operation: str
    kind: str
    latency_ms: int = 0
    status: int = 503
    timeout_s: float = 30.0
    problem_type: str = "Temporary Processing Failure"
    problem_detail: str = "Injected fault"
    times: int = 1
    # A fault with ``probability`` < 1 fires on that share of the calls it matches, drawn from its own
    # ``random.Random(seed)``, so a seeded run replays the same faults (the chaos suite: bench/chaos.py)
    probability: float = 1.0
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def fires(self) -> bool:
        return self.probability >= 1.0 or self.rng.random() < self.probability

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault_id": self.fault_id,
            "operation": self.operation,
            "kind": self.kind,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "timeout_s": self.timeout_s,
            "problem_type": self.problem_type,
            "problem_detail": self.problem_detail,
            "times": self.times,
            "probability": self.probability,
            "seed": self.seed,
        }


@dataclass
class CheckInResult:
    found: bool
    item: Item | None = None
    loan: Loan | None = None
    hold: Hold | None = None
    notice: Notice | None = None
    destination: str | None = None  # branch the item is routed to
    in_transit: bool = False


@dataclass
class CheckOutResult:
    item: Item
    patron: Patron
    loan: Loan
    hold: Hold | None = None
    existing: bool = False


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def required_str(value: Any, name: str) -> str:
    if value is None or isinstance(value, bool | dict | list):
        raise ValueError(f"{name} is required (a string)")
    text = str(value).strip()
    if not text:
        raise ValueError(f"{name} is required (a string)")
    return text


def _int(spec: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = spec.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}")
    return value
