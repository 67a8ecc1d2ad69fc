"""How the bridge notices that staff checked an item in at WMS (WMS has no callbacks, docs/wms.md#no-callbacks).

``CheckinProbe.is_checked_in(barcode, seen_on_loan=..., holder=...)`` returns a ``ProbeResult`` with what WMS
said *and* a verdict. The probe is chosen per library (``WmsSettings.checkin_probe``):

- ``LookupUserProbe`` (default): NCIP LookupUser, which OCLC documents for WMS (patron profile), with
  ``LoanedItemsDesired`` and ``RequestedItemsDesired``. ``holder`` is the patron (borrowing: the temp item's
  patron) or the borrowing-institution account (lending). One call per holder per probe object covers all of
  its items (the answers are kept for the life of the probe: one reconciliation run).
  It tells apart: *on loan to this holder* (a LoanedItem), *held for this holder* (a RequestedItem: hold
  waiting or on the hold shelf), and *neither*. It cannot tell why an item is neither: a return, a hold
  cancelled or expired, a loan moved to someone else. So "neither" counts as checked in only after the loan
  was seen (lending: the bridge made the loan itself; borrowing: reconciliation saw it On Loan); otherwise the
  verdict is ``None`` (undecided).
- ``LookupItemProbe``: NCIP LookupItem (not documented for WMS; the simulator's ``lookup_item`` switch). It
  tells the item's circulation status whoever holds it: On Loan, Available For Pickup, In Transit, Not
  Available (a temp item back home: returned even if the loan was never seen), Lost/Missing; unknown item.
- ``NoProbe``: never reports (webhook feed only; reconciliation then reminds staff when the lender's due date
  passes).

A probe whose look-up WMS does not answer (``Unsupported Service``) reports ``supported=False``.

The LookupItem verdict (``verdict``) - "has this item been checked in since the loan the bridge cares about?":

- on loan (``On Loan``, ``Recalled``) -> ``False``;
- ``Lost``, ``Missing``, ``Claimed Returned Or Never Borrowed`` -> ``False``: no check-in happened, staff
  must look (the status is there for them);
- any other status *after the item was seen on loan* (``seen_on_loan=True``) -> ``True``. Lending: the bridge
  itself checked the item out to the borrowing institution, so it always passes ``seen_on_loan=True``; after a
  return the item is Available On Shelf, In Transit, Available For Pickup (filled a waiting hold) or Not
  Available per the collection policy - all mean "checked in".
- any other status when the loan was *not* seen (``seen_on_loan=False``, the default) -> ``True`` only for
  ``Not Available`` (WMS "Unavailable"), the status a borrowing temp item takes at its home branch after the
  patron returned it (docs/wms.md#what-wms-does-on-its-side). A temp item that was never lent out goes
  Pending -> (check-in at the pickup branch) Available For Pickup -> On Loan; none of those may count as
  returned, and ``In Transit`` cannot be told apart from the trip to the pickup branch. A caller that
  remembers seeing ``On Loan`` passes ``seen_on_loan=True`` and gets the earlier answer.
- WMS does not know the item (``Unknown Item``) -> ``found=False, checked_in=None``: undecided (WMS may delete
  returned temp items); the caller decides.

Statuses are compared case-insensitively after mapping WMS wordings onto the NISO ones (``normalize_status``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from illbridge.config.library import WmsSettings
from illbridge.errors import WmsProblem
from illbridge.wms.ncip import ItemStatus, UserItems

if TYPE_CHECKING:
    from illbridge.models import Mapping

ON_LOAN = frozenset({"on loan", "recalled"})
NOT_RETURNED = frozenset({"lost", "missing", "claimed returned or never borrowed"})
RETURNED_WITHOUT_SEEN_LOAN = frozenset({"not available"})
UNKNOWN_ITEM_PROBLEMS = frozenset({"unknown item", "item not found"})
UNSUPPORTED_PROBLEMS = frozenset({"unsupported service", "service not supported", "not supported"})
UNKNOWN_USER_PROBLEMS = frozenset({"unknown user", "user not found"})
# The NCIP operation each probe sends (for history lines).
PROBE_OPERATION = {"lookup_user": "LookupUser", "lookup_item": "LookupItem", "none": "no probe"}
REQUESTED = "Requested"  # ProbeResult.circulation_status of an item held for the holder (LookupUser)

_ALIASES = {
    "unavailable": "not available",
    "checked out": "on loan",
    "charged": "on loan",
    "in transit": "in transit between library locations",
    "on hold shelf": "available for pickup",
    "hold shelf": "available for pickup",
    "on shelf": "available on shelf",
    "available": "available on shelf",
}


def normalize_status(status: str | None) -> str | None:
    """Lower-cased NISO wording for a circulation status (WMS wordings such as ``Unavailable`` mapped)."""
    if status is None:
        return None
    key = " ".join(status.split()).lower()
    return _ALIASES.get(key, key) or None


@dataclass(frozen=True)
class ProbeResult:
    barcode: str
    supported: bool  # False: no probe configured, or WMS does not answer the look-up
    found: bool = False  # WMS knows the item (LookupUser: on loan to or held for the holder)
    circulation_status: str | None = None  # as WMS sent it (LookupUser: "On Loan" or "Requested")
    checked_in: bool | None = None  # the verdict above; None: cannot tell
    detail: str | None = None
    due_date: datetime | None = None  # the loan's due date, when WMS said

    @property
    def on_loan(self) -> bool:
        return normalize_status(self.circulation_status) in ON_LOAN


def verdict(status: str | None, *, seen_on_loan: bool) -> bool | None:
    """The check-in verdict for a raw status (see the module documentation)."""
    normalized = normalize_status(status)
    if normalized is None:
        return None
    if normalized in ON_LOAN or normalized in NOT_RETURNED:
        return False
    if seen_on_loan:
        return True
    return normalized in RETURNED_WITHOUT_SEEN_LOAN


class WmsLookups(Protocol):
    """What a probe asks WMS (``WmsClient`` is one; the step-rule tests' fake WMS another)."""

    def lookup_user(self, user_barcode: str) -> UserItems: ...

    def lookup_item(self, barcode: str, *, current_borrower: bool = False) -> ItemStatus: ...


@runtime_checkable
class CheckinProbe(Protocol):
    """``holder``: the patron barcode (borrowing) or borrowing-institution account (lending) the item is
    with; LookupUser needs it, LookupItem ignores it (``holder_of(mapping)`` gives it)."""

    name: str

    def is_checked_in(
        self, barcode: str, *, seen_on_loan: bool = False, holder: str | None = None
    ) -> ProbeResult: ...


class NoProbe:
    """The library has no probe: never reports a check-in."""

    name = "none"

    def is_checked_in(
        self, barcode: str, *, seen_on_loan: bool = False, holder: str | None = None
    ) -> ProbeResult:
        return ProbeResult(barcode=barcode, supported=False, detail="no check-in probe configured")


@dataclass
class LookupUserProbe:
    """Asks WMS (NCIP LookupUser) for the holder's loaned and requested items; one call per holder.

    Transient errors propagate (try again later); ``Unsupported Service`` -> ``supported=False``; an unknown
    holder -> ``found=False``, undecided. ``calls`` counts the LookupUser calls made.
    """

    client: WmsLookups
    name: str = "lookup_user"
    calls: int = 0
    _answers: dict[str, UserItems | WmsProblem] = field(default_factory=dict)

    def items(self, holder: str) -> UserItems | WmsProblem:
        """The holder's items (asked once per probe); a definite WMS Problem is returned, not raised."""
        if holder not in self._answers:
            self.calls += 1
            try:
                self._answers[holder] = self.client.lookup_user(holder)
            except WmsProblem as problem:
                kind = problem.problem_type.strip().lower()
                if kind not in UNSUPPORTED_PROBLEMS and kind not in UNKNOWN_USER_PROBLEMS:
                    raise
                self._answers[holder] = problem
        return self._answers[holder]

    def forget(self, holder: str) -> None:
        """Ask WMS again next time (after the bridge itself changed the holder's items)."""
        self._answers.pop(holder, None)

    def is_checked_in(
        self, barcode: str, *, seen_on_loan: bool = False, holder: str | None = None
    ) -> ProbeResult:
        if not holder:
            return ProbeResult(barcode=barcode, supported=False, detail="LookupUser needs the item's holder")
        answer = self.items(holder)
        if isinstance(answer, WmsProblem):
            kind = answer.problem_type.strip().lower()
            if kind in UNSUPPORTED_PROBLEMS:
                return ProbeResult(barcode=barcode, supported=False, detail=answer.message)
            return ProbeResult(barcode=barcode, supported=True, found=False, detail=answer.message)
        loan = answer.loan(barcode)
        if loan is not None:
            return ProbeResult(
                barcode=barcode,
                supported=True,
                found=True,
                circulation_status="On Loan",
                checked_in=False,
                due_date=loan.due_date,
            )
        request = answer.request(barcode)
        if request is not None:
            return ProbeResult(
                barcode=barcode,
                supported=True,
                found=True,
                circulation_status=REQUESTED,
                checked_in=False,
                detail=request.request_status,
            )
        return ProbeResult(
            barcode=barcode,
            supported=True,
            found=False,
            checked_in=True if seen_on_loan else None,
            detail="neither on loan to nor held for its holder",
        )


class LookupItemProbe:
    """Asks WMS (NCIP LookupItem) for the item's circulation status.

    Transient errors (``WmsUnavailable``, ``WmsProtocolError``, ...) propagate: try again later.
    """

    name = "lookup_item"

    def __init__(self, client: WmsLookups) -> None:
        self._client = client
        self.calls = 0

    def is_checked_in(
        self, barcode: str, *, seen_on_loan: bool = False, holder: str | None = None
    ) -> ProbeResult:
        self.calls += 1
        try:
            status = self._client.lookup_item(barcode)
        except WmsProblem as problem:
            kind = problem.problem_type.strip().lower()
            if kind in UNKNOWN_ITEM_PROBLEMS:
                return ProbeResult(barcode=barcode, supported=True, found=False, detail=problem.message)
            if kind in UNSUPPORTED_PROBLEMS:
                return ProbeResult(barcode=barcode, supported=False, detail=problem.message)
            raise
        return ProbeResult(
            barcode=barcode,
            supported=True,
            found=True,
            circulation_status=status.circulation_status,
            checked_in=verdict(status.circulation_status, seen_on_loan=seen_on_loan),
            due_date=status.due_date,
        )


def probe_for(settings: WmsSettings, client: WmsLookups) -> CheckinProbe:
    """The probe the library's settings ask for (``checkin_probe``: ``lookup_user``, ``lookup_item``, ``none``).

    Make one per run (a reconciliation run, a step): a LookupUser probe keeps its answers for its life.
    """
    if settings.checkin_probe == "lookup_user":
        return LookupUserProbe(client)
    if settings.checkin_probe == "lookup_item":
        return LookupItemProbe(client)
    return NoProbe()


def holder_of(mapping: Mapping) -> str | None:
    """Who WMS lists the mapping's items under: the patron (borrowing) or the partner's account (lending)."""
    side = getattr(mapping.side, "value", mapping.side)
    return mapping.patron_barcode if side == "borrowing" else mapping.borrowing_institution_account
