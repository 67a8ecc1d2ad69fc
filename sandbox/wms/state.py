"""The WMS circulation model the simulator serves: institutions, patrons, items, holds, loans, tokens, faults.

Everything lives in one :class:`WmsState`, guarded by one re-entrant lock, so the HTTP threads can call any
method at any time. Times are timezone-aware UTC, truncated to whole seconds.

Behaviour (``docs/wms.md`` section 4), as modelled here:

* ``accept_item`` (NCIP AcceptItem) creates a *temporary* item, status ``On Order`` (created, not yet checked
  in), at the institution's ILL home branch, with the ILL holding/shelving location, and an item-level hold for
  the patron at the pickup branch, status ``Pending``.
* ``check_in`` at a branch (staff, ``/_sim/checkin``) of a temp item whose hold is Pending: at the pickup branch
  the hold becomes ``Ready``, the item ``On Hold Shelf`` and a ``hold_ready`` notice is recorded; elsewhere the
  item goes ``In Transit`` to the pickup branch (a later check-in at the pickup branch completes it).
* ``check_out`` (staff, or NCIP CheckOutItem) ends with the item ``On Loan``; a hold of that patron on the item
  becomes ``Filled``; an active hold of someone else refuses the checkout. Due date: ``DesiredDateDue`` when
  NCIP sends one, else now + policy days (``ill_loan_days`` for borrowing-institution accounts, i.e. patrons
  with a ``symbol`` or borrower category ``ILL``; ``patron_loan_days`` otherwise); for a temp item never later
  than its ``DateForReturn``; for everyone never later than the patron's expiry (expiry date at 00:00Z, the
  instant SCIM reports as ``oclcExpirationDate``).
* ``check_in`` of an item on loan ends the loan and routes the item home (temp items: ILL home branch, status
  ``Unavailable``, request id kept, never deleted; real items: ``Available``/``Unavailable`` per collection
  type) or, when another hold is Pending on it, to that hold's pickup branch. NCIP check-ins carry no branch:
  the item is treated as arriving at its destination at once (the response routes it there).
* Decision: check-in of a temp item that is NOT on loan but has an active hold (Pending, or Ready on the hold
  shelf) is not a Problem: the hold is cancelled and the item becomes ``Unavailable`` at home (this is how an
  unclaimed or cancelled ILL item goes back). A staff check-in at a branch of a temp item whose Pending hold is
  still waiting for the item (status On Order / In Transit) is the arrival described above instead.
* Check-in of an item with no loan and no active hold (and not arriving from transit): Problem
  ``Item Not Checked Out``. Addressed by ILL request id instead of barcode, an unknown or not-on-loan item is a
  success (OCLC sample ``CheckInResponseRequestedItemUnknown.xml``).
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .options import Options

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


# The state -------------------------------------------------------------------------------------------


class WmsState:
    """All simulator state; every public method takes the lock."""

    def __init__(self, token_ttl: int = 1200, options: dict[str, str] | None = None) -> None:
        self.lock = threading.RLock()
        self.options = Options(options)
        self.default_token_ttl = int(token_ttl)
        self.token_ttl = int(token_ttl)
        self.institutions: dict[str, Institution] = {}
        self.tokens: dict[str, Token] = {}
        self.faults: list[Fault] = []
        self.requests_log: list[dict[str, Any]] = []

    # -- lifecycle ------------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.token_ttl = self.default_token_ttl
            self.options.reset()
            self.institutions.clear()
            self.tokens.clear()
            self.faults.clear()
            self.requests_log.clear()

    def seed_demo(self) -> None:
        """(Re)create the demo institutions East (128807) and West (262626) from scratch."""
        with self.lock:
            for registry_id in ("128807", "262626"):
                self.institutions.pop(registry_id, None)
            self.upsert_institution(
                registry_id="128807",
                name="East",
                symbol="EAST",
                timezone="America/New_York",
                wskey="east-wskey",
                secret="east-secret",
                branches=[
                    {"branch_id": "128807", "name": "Main", "main": True},
                    {"branch_id": "262630", "name": "Science Library"},
                ],
                ill_settings={
                    "holding_location": "ILL",
                    "shelving_location": "ILL Shelf",
                    "home_branch": "128807",
                },
                policies={"patron_loan_days": 28, "ill_loan_days": 42},
            )
            east = [
                {
                    "barcode": "EAST-P-0001",
                    "expires": "2030-12-31",
                    "given_name": "Erin",
                    "family_name": "Good",
                },
                {
                    "barcode": "EAST-P-0002",
                    "expires": "2030-12-31",
                    "blocked": True,
                    "given_name": "Blake",
                    "family_name": "Blocked",
                },
                {
                    "barcode": "EAST-P-0003",
                    "expires": "2020-01-31",
                    "given_name": "Ezra",
                    "family_name": "Expired",
                },
                {
                    "barcode": "ILL-WEST",
                    "expires": "2027-06-30",
                    "borrower_category": "ILL",
                    "symbol": "WEST",
                },
                {"barcode": "ILL-DEFAULT", "expires": "2030-12-31", "borrower_category": "ILL"},
                {"barcode": "ILL-EXPIRED", "expires": "2021-12-31", "borrower_category": "ILL"},
            ]
            for patron in east:
                self.upsert_patron(registry_id="128807", home_branch="128807", **patron)
            for n in range(1, 11):
                self.upsert_item(
                    registry_id="128807",
                    barcode=f"EAST-ITEM-{n:04d}",
                    branch="128807",
                    collection_type=CIRCULATING,
                    call_number=f"QA76.{n} .E37 2020",
                    title=f"East Demo Book {n}",
                    author="Demo, East",
                )
            self.upsert_item(
                registry_id="128807",
                barcode="EAST-REF-0001",
                branch="128807",
                collection_type=NON_CIRCULATING,
                call_number="REF Z1035 .E37",
                title="East Reference Work",
                author="Demo, East",
            )

            self.upsert_institution(
                registry_id="262626",
                name="West",
                symbol="WEST",
                timezone="America/New_York",
                wskey="west-wskey",
                secret="west-secret",
                branches=[{"branch_id": "262626", "name": "West Main", "main": True}],
                ill_settings={
                    "holding_location": "ILL",
                    "shelving_location": "ILL Shelf",
                    "home_branch": "262626",
                },
                policies={"patron_loan_days": 28, "ill_loan_days": 42},
            )
            west = [
                {
                    "barcode": "WEST-P-0001",
                    "expires": "2030-12-31",
                    "given_name": "Wendy",
                    "family_name": "Good",
                },
                {
                    "barcode": "ILL-EAST",
                    "expires": "2030-12-31",
                    "borrower_category": "ILL",
                    "symbol": "EAST",
                },
                {"barcode": "ILL-DEFAULT", "expires": "2030-12-31", "borrower_category": "ILL"},
            ]
            for patron in west:
                self.upsert_patron(registry_id="262626", home_branch="262626", **patron)
            for n in range(1, 11):
                self.upsert_item(
                    registry_id="262626",
                    barcode=f"WEST-ITEM-{n:04d}",
                    branch="262626",
                    collection_type=CIRCULATING,
                    call_number=f"PS35{n:02d} .W47 2019",
                    title=f"West Demo Book {n}",
                    author="Demo, West",
                )

    def seed_oclc_samples(self, *, patron: bool = True, item: bool = True) -> Institution:
        """(Re)create an institution matching OCLC's CircILL sample messages, so they run unmodified: registry
        id 91475, symbol OCWMS (the samples' ToAgencyId), patron ZYXWV, the borrowing institution NDOSU's account
        (by symbol), item ABCDE (``patron``/``item`` False leave them out, for the Unknown User/Item samples)."""
        with self.lock:
            self.institutions.pop("91475", None)
            inst = self.upsert_institution(
                registry_id="91475",
                symbol="OCWMS",
                name="OCLC sample library",
                wskey="ocwms-key",
                secret="ocwms-secret",
                branches=[{"branch_id": "91475", "name": "Main", "main": True}, "91476"],
                ill_settings={
                    "holding_location": "ILL",
                    "shelving_location": "ILL Shelf",
                    "home_branch": "91475",
                },
            )
            expires = (utcnow().date() + timedelta(days=3650)).isoformat()
            if patron:
                self.upsert_patron(registry_id="91475", barcode="ZYXWV", expires=expires)
            self.upsert_patron(registry_id="91475", barcode="ILL-NDOSU", expires=expires, symbol="NDOSU")
            if item:
                self.upsert_item(registry_id="91475", barcode="ABCDE", title="The Hobbit")
            return inst

    # -- setup (the /_sim/ API) -----------------------------------------------------------------------
    def institution(self, registry_id: str) -> Institution:
        with self.lock:
            inst = self.institutions.get(str(registry_id))
            if inst is None:
                raise NotFound(f"unknown institution (registry id) {registry_id!r}")
            return inst

    def upsert_institution(
        self,
        *,
        registry_id: str,
        wskey: str | None = None,
        secret: str | None = None,
        name: str | None = None,
        symbol: str | None = None,
        timezone: str | None = None,
        branches: Iterable[Any] | None = None,
        ill_settings: dict[str, Any] | None = None,
        policies: dict[str, Any] | None = None,
    ) -> Institution:
        registry_id = required_str(registry_id, "registry_id")
        with self.lock:
            inst = self.institutions.get(registry_id)
            if inst is None:
                if not wskey or not secret:
                    raise ValueError("a new institution needs wskey and secret")
                inst = Institution(registry_id=registry_id, wskey=str(wskey), secret=str(secret))
            if wskey is not None:
                inst.wskey = required_str(wskey, "wskey")
            if secret is not None:
                inst.secret = required_str(secret, "secret")
            for other in self.institutions.values():
                if other.registry_id != registry_id and other.wskey == inst.wskey:
                    raise ValueError(
                        f"wskey {inst.wskey!r} already belongs to institution {other.registry_id}"
                    )
            if name is not None:
                inst.name = str(name)
            if symbol is not None:
                inst.symbol = str(symbol) or None
            if timezone is not None:
                try:
                    ZoneInfo(str(timezone))
                except (ValueError, KeyError) as exc:
                    raise ValueError(f"timezone {timezone!r} is not an IANA time zone") from exc
                inst.timezone = str(timezone)
            if branches is not None:
                if isinstance(branches, str | bytes) or not isinstance(branches, Iterable):
                    raise ValueError("branches must be a list")
                for entry in branches:
                    self._add_branch(inst, entry)
            if not inst.branches:
                self._add_branch(
                    inst, {"branch_id": registry_id, "name": inst.name or registry_id, "main": True}
                )
            if ill_settings is not None:
                if not isinstance(ill_settings, dict):
                    raise ValueError("ill_settings must be an object")
                settings = inst.ill_settings
                for key in ("holding_location", "shelving_location", "home_branch"):
                    if key in ill_settings and ill_settings[key] is not None:
                        setattr(settings, key, str(ill_settings[key]))
            if not inst.ill_settings.home_branch:
                inst.ill_settings.home_branch = inst.main_branch
            if policies is not None:
                self._apply_policy(inst, policies)
            self.institutions[registry_id] = inst
            return inst

    @staticmethod
    def _add_branch(inst: Institution, entry: Any) -> Branch:
        if isinstance(entry, str | int):
            entry = {"branch_id": str(entry)}
        if not isinstance(entry, dict):
            raise ValueError("a branch is a branch id string or an object {branch_id, name, main}")
        branch_id = required_str(entry.get("branch_id", entry.get("id")), "branch_id")
        main = bool(entry.get("main", False)) or not inst.branches
        if main:
            for other in inst.branches.values():
                other.main = False
        existing = inst.branches.get(branch_id)
        name = str(entry.get("name") or (existing.name if existing else branch_id))
        branch = Branch(branch_id=branch_id, name=name, main=main or bool(existing and existing.main))
        inst.branches[branch_id] = branch
        return branch

    def add_branch(self, registry_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            inst = self.institution(registry_id)
            return self._add_branch(inst, entry).to_dict(inst.registry_id)

    @staticmethod
    def _apply_policy(inst: Institution, policies: dict[str, Any]) -> None:
        if not isinstance(policies, dict):
            raise ValueError("policies must be an object")
        for key in ("patron_loan_days", "ill_loan_days"):
            if key in policies and policies[key] is not None:
                value = policies[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{key} must be a non-negative integer")
                setattr(inst.policy, key, value)

    def set_policy(self, registry_id: str, policies: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            inst = self.institution(registry_id)
            self._apply_policy(inst, policies)
            return inst.policy.to_dict(inst.registry_id)

    def upsert_patron(
        self,
        *,
        registry_id: str,
        barcode: str,
        expires: Any = None,
        blocked: Any = None,
        borrower_category: str | None = None,
        home_branch: str | None = None,
        symbol: str | None = None,
        given_name: str | None = None,
        family_name: str | None = None,
        email: str | None = None,
    ) -> dict[str, Any]:
        barcode = required_str(barcode, "barcode")
        with self.lock:
            inst = self.institution(registry_id)
            patron = inst.patrons.get(barcode)
            if patron is None:
                patron = Patron(
                    barcode=barcode,
                    expires=date(2099, 12, 31),
                    home_branch=inst.main_branch,
                    patron_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"wms-sim:{inst.registry_id}:{barcode}")),
                )
            if expires is not None:
                patron.expires = parse_date(expires)
            if blocked is not None:
                if not isinstance(blocked, bool):
                    raise ValueError("blocked must be true or false")
                patron.blocked = blocked
            if borrower_category is not None:
                patron.borrower_category = str(borrower_category)
            if home_branch is not None:
                if str(home_branch) not in inst.branches:
                    raise ValueError(f"unknown branch {home_branch!r} for institution {inst.registry_id}")
                patron.home_branch = str(home_branch)
            if symbol is not None:
                patron.symbol = str(symbol) or None
            if given_name is not None:
                patron.given_name = str(given_name)
            if family_name is not None:
                patron.family_name = str(family_name)
            if email is not None:
                patron.email = str(email) or None
            patron.updated = utcnow()
            inst.patrons[barcode] = patron
            return patron.to_dict(inst.registry_id)

    def upsert_item(
        self,
        *,
        registry_id: str,
        barcode: str,
        branch: str | None = None,
        collection_type: str | None = None,
        call_number: str | None = None,
        title: str | None = None,
        author: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        barcode = required_str(barcode, "barcode")
        with self.lock:
            inst = self.institution(registry_id)
            item = inst.items.get(barcode)
            if item is not None and item.temporary:
                raise ValueError(f"{barcode!r} is a temporary item; it cannot be replaced")
            new = item is None
            if item is None:
                item = Item(barcode=barcode, branch=inst.main_branch)
            if branch is not None:
                if str(branch) not in inst.branches:
                    raise ValueError(f"unknown branch {branch!r} for institution {inst.registry_id}")
                item.branch = str(branch)
            if collection_type is not None:
                item.collection_type = str(collection_type)
            if call_number is not None:
                item.call_number = str(call_number)
            if title is not None:
                item.title = str(title)
            if author is not None:
                item.author = str(author)
            if new or branch is not None:
                item.location = item.branch
            if status is not None:
                if status not in ITEM_STATUSES:
                    raise ValueError(f"status must be one of {', '.join(ITEM_STATUSES)}")
                item.status = status
            elif new or (collection_type is not None and item.status in (ITEM_AVAILABLE, ITEM_UNAVAILABLE)):
                item.status = item.shelf_status
            item.updated = utcnow()
            inst.items[barcode] = item
            return item.to_dict(inst.registry_id)

    def set_token_ttl(self, seconds: int) -> None:
        with self.lock:
            self.token_ttl = seconds

    def expire_tokens(self) -> int:
        with self.lock:
            past = utcnow() - timedelta(seconds=1)
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, past)
            return len(self.tokens)

    # -- reading (the /_sim/ API) ---------------------------------------------------------------------
    def _selected(self, registry_id: str | None) -> list[Institution]:
        if registry_id is None or registry_id == "":
            return list(self.institutions.values())
        return [self.institution(registry_id)]

    def list_branches(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                b.to_dict(i.registry_id) for i in self._selected(registry_id) for b in i.branches.values()
            ]

    def list_patrons(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            now = utcnow()
            return [
                p.to_dict(i.registry_id, now) for i in self._selected(registry_id) for p in i.patrons.values()
            ]

    def list_items(
        self, registry_id: str | None = None, *, temporary: bool | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            return [
                item.to_dict(i.registry_id)
                for i in self._selected(registry_id)
                for item in i.items.values()
                if temporary is None or item.temporary == temporary
            ]

    def list_policies(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [i.policy.to_dict(i.registry_id) for i in self._selected(registry_id)]

    def list_holds(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [h.to_dict(i.registry_id) for i in self._selected(registry_id) for h in i.holds]

    def list_loans(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [loan.to_dict(i.registry_id) for i in self._selected(registry_id) for loan in i.loans]

    def list_notices(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [n.to_dict(i.registry_id) for i in self._selected(registry_id) for n in i.notices]

    def list_requests_log(self, registry_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(e) for e in self.requests_log if not registry_id or e.get("registry_id") == registry_id
            ]

    def item_details(self, barcode: str, registry_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            inst = self.institution_for_item(barcode, registry_id)
            item = inst.items[barcode]
            details = item.to_dict(inst.registry_id)
            details["holds"] = [h.to_dict(inst.registry_id) for h in inst.holds if h.item_barcode == barcode]
            details["loans"] = [
                loan.to_dict(inst.registry_id) for loan in inst.loans if loan.item_barcode == barcode
            ]
            active_loan = inst.active_loan(barcode)
            active_hold = inst.active_hold(barcode)
            details["active_loan"] = active_loan.to_dict(inst.registry_id) if active_loan else None
            details["active_hold"] = active_hold.to_dict(inst.registry_id) if active_hold else None
            return details

    def institution_for_item(self, barcode: str, registry_id: str | None = None) -> Institution:
        """The institution holding ``barcode``; raises NotFound / AmbiguousBarcode."""
        with self.lock:
            if registry_id:
                inst = self.institution(registry_id)
                if barcode not in inst.items:
                    raise NotFound(f"unknown item {barcode!r} in institution {inst.registry_id}")
                return inst
            owners = [i for i in self.institutions.values() if barcode in i.items]
            if not owners:
                raise NotFound(f"unknown item {barcode!r}")
            if len(owners) > 1:
                ids = ", ".join(i.registry_id for i in owners)
                raise AmbiguousBarcode(f"item {barcode!r} exists in institutions {ids}: pass registry_id")
            return owners[0]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            now = utcnow()
            return {
                "time": iso(now),
                "token_ttl": self.token_ttl,
                "institutions": [i.summary() for i in self.institutions.values()],
                "branches": self.list_branches(),
                "policies": self.list_policies(),
                "patrons": self.list_patrons(),
                "items": self.list_items(),
                "temp_items": self.list_items(temporary=True),
                "holds": self.list_holds(),
                "loans": self.list_loans(),
                "notices": self.list_notices(),
                "tokens": [t.to_dict() for t in self.tokens.values() if t.expires_at > now],
                "faults": self.list_faults(),
                "requests_log": self.list_requests_log(),
            }

    # -- tokens ---------------------------------------------------------------------------------------
    def authenticate_client(self, wskey: str, secret: str) -> Institution | None:
        with self.lock:
            for inst in self.institutions.values():
                if secrets.compare_digest(inst.wskey.encode(), wskey.encode()) and secrets.compare_digest(
                    inst.secret.encode(), secret.encode()
                ):
                    return inst
            return None

    def issue_token(self, inst: Institution, scopes: tuple[str, ...]) -> Token:
        with self.lock:
            now = utcnow()
            token = Token(
                access_token="tk_" + secrets.token_urlsafe(32),
                registry_id=inst.registry_id,
                wskey=inst.wskey,
                scopes=scopes,
                issued_at=now,
                expires_at=now + timedelta(seconds=self.token_ttl),
            )
            self.tokens = {k: t for k, t in self.tokens.items() if t.expires_at > now - timedelta(hours=1)}
            self.tokens[token.access_token] = token
            return token

    def token(self, access_token: str) -> Token | None:
        """The live token, or None when unknown or expired."""
        with self.lock:
            token = self.tokens.get(access_token)
            if token is None or token.expires_at <= datetime.now(UTC):
                return None
            if token.registry_id not in self.institutions:
                return None
            return token

    # -- faults and log -------------------------------------------------------------------------------
    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        operation = spec.get("operation", "*")
        kind = spec.get("kind")
        if operation not in FAULT_OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(FAULT_OPERATIONS)}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        fault = Fault(fault_id=_new_id("fault"), operation=operation, kind=kind)
        fault.latency_ms = _int(spec, "latency_ms", 0, minimum=0)
        fault.status = _int(spec, "status", 503, minimum=100)
        if fault.status > 599:
            raise ValueError("status must be an HTTP status (100-599)")
        fault.times = _int(spec, "times", 1, minimum=-1)
        if fault.times == 0:
            raise ValueError("times must be positive or -1 (until cleared)")
        timeout = spec.get("timeout_s", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError("timeout_s must be a non-negative number")
        fault.timeout_s = float(timeout)
        if spec.get("problem_type") is not None:
            fault.problem_type = str(spec["problem_type"])
        if spec.get("problem_detail") is not None:
            fault.problem_detail = str(spec["problem_detail"])
        with self.lock:
            self.faults.append(fault)
            return fault.to_dict()

    def list_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.to_dict() for f in self.faults]

    def clear_faults(self) -> int:
        with self.lock:
            count = len(self.faults)
            self.faults.clear()
            return count

    def take_fault(self, operation: str) -> Fault | None:
        """Consume one use of the first fault matching ``operation`` (or ``*``)."""
        with self.lock:
            for fault in self.faults:
                if fault.operation in (operation, "*"):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self.faults.remove(fault)
                    return fault
            return None

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry = {"time": iso(utcnow()), **entry}
            self.requests_log.append(entry)
            if len(self.requests_log) > REQUEST_LOG_LIMIT:
                del self.requests_log[: len(self.requests_log) - REQUEST_LOG_LIMIT]

    # -- circulation ----------------------------------------------------------------------------------
    def accept_item(
        self,
        registry_id: str,
        *,
        request_id: str,
        item_barcode: str,
        patron_barcode: str,
        pickup_branch: str | None,
        lending_library: str | None = None,
        lending_library_scheme: str | None = None,
        date_for_return: datetime | None = None,
        pickup_expiry: datetime | None = None,
        requested_action: str | None = None,
        title: str = "",
        author: str = "",
        publisher: str = "",
        publication_date: str = "",
        edition: str = "",
        call_number: str = "",
    ) -> tuple[Item, Hold]:
        with self.lock:
            inst = self.institution(registry_id)
            if item_barcode in inst.items:
                if self.options.is_("duplicate_temp_barcode", "problem_other_wording"):
                    raise CircError(
                        "Resource Cannot Be Provided",
                        "BARCODE_IN_USE",
                        f"Barcode {item_barcode} is already in use",
                        element="ItemIdentifierValue",
                        value=item_barcode,
                    )
                raise CircError(
                    "Duplicate Item",
                    "DUPLICATE_ITEM",
                    f"an item with barcode {item_barcode!r} already exists",
                    element="ItemIdentifierValue",
                    value=item_barcode,
                )
            patron = inst.patrons.get(patron_barcode)
            if patron is None:
                raise CircError(
                    "Unknown User",
                    "UNKNOWN_USER",
                    f"no patron with barcode {patron_barcode!r}",
                    element="UserIdentifierValue",
                    value=f"{inst.registry_id}/{patron_barcode}",
                )
            pickup = pickup_branch or (
                patron.home_branch if patron.home_branch in inst.branches else inst.main_branch
            )
            if pickup not in inst.branches:
                raise CircError(
                    "Unknown Agency",
                    "UNKNOWN_PICKUP_LOCATION",
                    f"pickup location {pickup!r} is not a branch of institution {inst.registry_id}",
                    element="PickupLocation",
                    value=pickup,
                )
            now = utcnow()
            settings = inst.ill_settings
            home = settings.home_branch if settings.home_branch in inst.branches else inst.main_branch
            item = Item(
                barcode=item_barcode,
                branch=home,
                collection_type="ILL",
                call_number=call_number,
                title=title,
                author=author,
                publisher=publisher,
                publication_date=publication_date,
                edition=edition,
                status=ITEM_ON_ORDER,
                location=home,
                temporary=True,
                request_id=request_id,
                lending_library=lending_library,
                lending_library_scheme=lending_library_scheme,
                date_for_return=date_for_return,
                holding_location=settings.holding_location,
                shelving_location=settings.shelving_location,
                requested_action=requested_action,
                created=now,
                updated=now,
            )
            hold = Hold(
                hold_id=_new_id("hold"),
                item_barcode=item_barcode,
                patron_barcode=patron.barcode,
                pickup_branch=pickup,
                request_id=request_id,
                pickup_expiry=pickup_expiry,
                created=now,
                updated=now,
            )
            inst.items[item_barcode] = item
            inst.holds.append(hold)
            return item, hold

    def check_out(
        self,
        registry_id: str,
        *,
        item_barcode: str,
        patron_value: str,
        by_symbol: bool = False,
        desired_due: datetime | None = None,
        request_id: str | None = None,
        source: str = "ncip",
        mandated: bool = False,
    ) -> CheckOutResult:
        """Check an item out. ``mandated``: the request carried MandatedAction (the item has left already).

        Switches: ``repeat_checkout_same_account`` (item already on loan to this patron),
        ``expired_account_when_mandated``, ``desired_due_date`` (DesiredDateDue without MandatedAction),
        ``due_date_style``.
        """
        with self.lock:
            inst = self.institution(registry_id)
            now = utcnow()
            patron = inst.find_patron(patron_value, by_symbol=by_symbol)
            if patron is None:
                raise CircError(
                    "Unknown User",
                    "UNKNOWN_USER",
                    f"no patron {'with symbol' if by_symbol else 'with barcode'} {patron_value!r}",
                    element="UserIdentifierValue",
                    value=f"{inst.registry_id}/{patron_value}",
                )
            item = inst.items.get(item_barcode)
            if item is None:
                raise CircError(
                    "Unknown Item",
                    "UNKNOWN_ITEM",
                    f"no item with barcode {item_barcode!r}",
                    element="ItemIdentifierValue",
                    value=f"{inst.registry_id}/{item_barcode}",
                )
            loan = inst.active_loan(item_barcode)
            if loan is not None:
                if loan.patron_barcode == patron.barcode:
                    repeat = self.options.get("repeat_checkout_same_account")
                    if repeat == "problem":
                        raise CircError(
                            "Resource Cannot Be Provided",
                            "ITEM_ALREADY_ON_LOAN_TO_USER",
                            f"item {item_barcode!r} is already checked out to this patron",
                            element="ItemIdentifierValue",
                            value=item_barcode,
                        )
                    if repeat == "renews":
                        loan.due = self._due(inst, patron, item, now, desired_due, mandated)
                        loan.renewals += 1
                    return CheckOutResult(item=item, patron=patron, loan=loan, existing=True)
                raise CircError(
                    "Resource Cannot Be Provided",
                    "ITEM_ON_LOAN_TO_ANOTHER_USER",
                    f"item {item_barcode!r} is on loan to another patron",
                    element="ItemIdentifierValue",
                    value=item_barcode,
                )
            if patron.blocked:
                raise CircError(
                    "User Blocked",
                    "USER_BLOCKED",
                    f"patron {patron.barcode!r} is blocked",
                    element="UserIdentifierValue",
                    value=patron_value,
                )
            if patron.is_expired(now) and not (
                mandated and self.options.is_("expired_account_when_mandated", "honoured")
            ):
                raise CircError(
                    "User Ineligible To Check Out This Item",
                    "USER_EXPIRED",
                    f"patron {patron.barcode!r} expired on {patron.expires.isoformat()}",
                    element="UserIdentifierValue",
                    value=patron_value,
                )
            hold = inst.active_hold(item_barcode)
            if hold is not None and hold.patron_barcode != patron.barcode:
                raise CircError(
                    "Resource Cannot Be Provided",
                    "ITEM_ON_HOLD_FOR_ANOTHER_USER",
                    f"item {item_barcode!r} is on hold for another patron",
                    element="ItemIdentifierValue",
                    value=item_barcode,
                )
            ill = patron.is_ill_account
            due = self._due(inst, patron, item, now, desired_due, mandated)
            loan = Loan(
                loan_id=_new_id("loan"),
                item_barcode=item_barcode,
                patron_barcode=patron.barcode,
                due=due,
                checked_out_at=now,
                request_id=request_id or (item.request_id if item.temporary else None),
                desired_due=desired_due,
                kind="ill" if ill else "patron",
                source=source,
            )
            inst.loans.append(loan)
            if hold is not None:
                hold.status = HOLD_FILLED
                hold.filled_at = now
                hold.updated = now
            item.status = ITEM_ON_LOAN
            item.in_transit_to = None
            item.updated = now
            return CheckOutResult(item=item, patron=patron, loan=loan, hold=hold)

    def _due(
        self,
        inst: Institution,
        patron: Patron,
        item: Item,
        now: datetime,
        desired_due: datetime | None,
        mandated: bool,
    ) -> datetime:
        """The loan's due date. DesiredDateDue is honoured with MandatedAction (CheckOutItemToInstitutionForILL.xml)
        and, without it, per ``desired_due_date``; else now + policy days. Never past a temp item's DateForReturn
        nor the patron's expiry (Integration Workflow page). Rendered per ``due_date_style``."""
        honour = desired_due is not None and (
            mandated or self.options.is_("desired_due_date", "honoured_capped_at_expiry")
        )
        if honour:
            assert desired_due is not None
            due = desired_due
        else:
            days = inst.policy.ill_loan_days if patron.is_ill_account else inst.policy.patron_loan_days
            due = now + timedelta(days=days)
        if item.temporary and item.date_for_return is not None:
            due = min(due, item.date_for_return)
        due = min(due, max(patron.expires_at, now))
        if self.options.is_("due_date_style", "end_of_day_local"):
            zone = ZoneInfo(inst.timezone)
            due = datetime.combine(due.astimezone(zone).date(), time(23, 59, 59), tzinfo=zone)
        return due

    def check_in(
        self,
        registry_id: str,
        *,
        barcode: str | None = None,
        request_id: str | None = None,
        branch: str | None = None,
    ) -> CheckInResult:
        """Check an item in. ``branch`` None = NCIP (no location: the item arrives where it is routed)."""
        with self.lock:
            inst = self.institution(registry_id)
            if branch is not None and branch not in inst.branches:
                raise CircError(
                    "Unknown Agency",
                    "UNKNOWN_BRANCH",
                    f"{branch!r} is not a branch of institution {inst.registry_id}",
                    element="Branch",
                    value=branch,
                )
            by_request = barcode is None
            if by_request:
                item = inst.find_by_request_id(request_id or "")
                if item is None:
                    return CheckInResult(found=False)
            else:
                item = inst.items.get(barcode or "")
                if item is None:
                    raise CircError(
                        "Unknown Item",
                        "UNKNOWN_ITEM",
                        f"no item with barcode {barcode!r}",
                        element="ItemIdentifierValue",
                        value=f"{inst.registry_id}/{barcode}",
                    )
            now = utcnow()
            loan = inst.active_loan(item.barcode)
            hold = inst.active_hold(item.barcode)
            result = CheckInResult(found=True, item=item)
            if loan is not None:
                loan.returned_at = now
                item.last_borrower = loan.patron_barcode
                result.loan = loan
                waiting = hold if hold is not None and hold.status == HOLD_PENDING else None
                destination = waiting.pickup_branch if waiting else item.branch
                self._route(inst, item, branch, destination, waiting, result, now)
            elif (
                hold is not None
                and branch is not None
                and hold.status == HOLD_PENDING
                and item.status in (ITEM_ON_ORDER, ITEM_IN_TRANSIT)
            ):
                self._route(inst, item, branch, hold.pickup_branch, hold, result, now)
            elif hold is not None and self.options.is_("checkin_of_held_temp_item", "keeps_hold"):
                # keeps_hold: the item goes (back) to the hold shelf of the pickup branch, hold kept.
                if hold.status == HOLD_READY:
                    result.hold = hold
                    result.destination = hold.pickup_branch
                    item.location = hold.pickup_branch
                    item.status = ITEM_ON_HOLD_SHELF
                else:
                    self._route(inst, item, branch, hold.pickup_branch, hold, result, now)
            elif hold is not None:
                hold.status = HOLD_CANCELLED
                hold.cancelled_at = now
                hold.updated = now
                result.hold = hold
                self._route(inst, item, branch, item.branch, None, result, now)
            elif branch is not None and item.status == ITEM_IN_TRANSIT and item.in_transit_to:
                self._route(inst, item, branch, item.in_transit_to, None, result, now)
            elif by_request:
                result.destination = item.location or item.branch
            else:
                raise CircError(
                    "Item Not Checked Out",
                    "ITEM_NOT_CHECKED_OUT",
                    f"item {item.barcode!r} is not checked out",
                    element="ItemIdentifierValue",
                    value=f"{inst.registry_id}/{item.barcode}",
                )
            item.updated = now
            return result

    @staticmethod
    def _route(
        inst: Institution,
        item: Item,
        at_branch: str | None,
        destination: str,
        hold: Hold | None,
        result: CheckInResult,
        now: datetime,
    ) -> None:
        result.destination = destination
        if hold is not None:
            result.hold = hold
        if at_branch is not None and at_branch != destination:
            item.status = ITEM_IN_TRANSIT
            item.location = at_branch
            item.in_transit_to = destination
            result.in_transit = True
            return
        item.location = destination
        item.in_transit_to = None
        if hold is not None and hold.status == HOLD_PENDING and hold.pickup_branch == destination:
            hold.status = HOLD_READY
            hold.ready_at = now
            hold.updated = now
            item.status = ITEM_ON_HOLD_SHELF
            notice = Notice(
                notice_id=_new_id("notice"),
                patron=hold.patron_barcode,
                item=item.barcode,
                kind="hold_ready",
                time=now,
                hold_id=hold.hold_id,
                request_id=hold.request_id,
                pickup_branch=hold.pickup_branch,
            )
            inst.notices.append(notice)
            result.notice = notice
        else:
            item.status = item.shelf_status

    def lookup_user(
        self, registry_id: str, value: str, *, by_symbol: bool = False
    ) -> tuple[Patron, list[Loan], list[Hold]]:
        """A patron (or borrowing-institution account) with its active loans and active holds."""
        with self.lock:
            inst = self.institution(registry_id)
            patron = inst.find_patron(value, by_symbol=by_symbol)
            if patron is None:
                raise CircError(
                    "Unknown User",
                    "UNKNOWN_USER",
                    f"no patron {'with symbol' if by_symbol else 'with barcode'} {value!r}",
                    element="UserIdentifierValue",
                    value=f"{inst.registry_id}/{value}",
                )
            loans = [loan for loan in inst.loans if loan.patron_barcode == patron.barcode and loan.active]
            holds = [hold for hold in inst.holds if hold.patron_barcode == patron.barcode and hold.active]
            return patron, loans, holds

    def lookup_item(
        self, registry_id: str, *, barcode: str | None = None, request_id: str | None = None
    ) -> tuple[Item, Loan | None, Hold | None]:
        with self.lock:
            inst = self.institution(registry_id)
            item = inst.find_by_request_id(request_id) if barcode is None and request_id else None
            if barcode is not None:
                item = inst.items.get(barcode)
            if item is None:
                value = barcode if barcode is not None else request_id
                raise CircError(
                    "Unknown Item",
                    "UNKNOWN_ITEM",
                    f"no item for {value!r}",
                    element="ItemIdentifierValue" if barcode is not None else "RequestIdentifierValue",
                    value=f"{inst.registry_id}/{value}",
                )
            return item, inst.active_loan(item.barcode), inst.active_hold(item.barcode)


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
