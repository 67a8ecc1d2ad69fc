"""How the bridge notices that staff checked an item in at WMS (WMS has no callbacks, docs/wms.md#no-callbacks).

``CheckinProbe.is_checked_in(barcode)`` returns a ``ProbeResult`` with the raw circulation status *and* a
verdict. Whether WMS answers LookupItem at all is unconfirmed, so the probe is an interface chosen per library
(``WmsSettings.checkin_probe``): ``LookupItemProbe`` asks WMS; ``NoProbe`` never reports (the library relies
on the WMS webhook feed instead).

The verdict (``checked_in``) - "has this item been checked in since the loan the bridge cares about?":

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

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from illbridge.config.library import WmsSettings
from illbridge.errors import WmsProblem
from illbridge.wms.client import WmsClient

ON_LOAN = frozenset({"on loan", "recalled"})
NOT_RETURNED = frozenset({"lost", "missing", "claimed returned or never borrowed"})
RETURNED_WITHOUT_SEEN_LOAN = frozenset({"not available"})
UNKNOWN_ITEM_PROBLEMS = frozenset({"unknown item", "item not found"})
UNSUPPORTED_PROBLEMS = frozenset({"unsupported service", "service not supported", "not supported"})

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
    supported: bool  # False: no probe configured, or WMS does not answer LookupItem
    found: bool = False  # WMS knows the item
    circulation_status: str | None = None  # as WMS sent it
    checked_in: bool | None = None  # the verdict above; None: cannot tell
    detail: str | None = None

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


@runtime_checkable
class CheckinProbe(Protocol):
    def is_checked_in(self, barcode: str, *, seen_on_loan: bool = False) -> ProbeResult: ...


class NoProbe:
    """The library has no probe: never reports a check-in."""

    def is_checked_in(self, barcode: str, *, seen_on_loan: bool = False) -> ProbeResult:
        return ProbeResult(barcode=barcode, supported=False, detail="no check-in probe configured")


class LookupItemProbe:
    """Asks WMS (NCIP LookupItem) for the item's circulation status.

    Transient errors (``WmsUnavailable``, ``WmsProtocolError``, ...) propagate: try again later.
    """

    def __init__(self, client: WmsClient) -> None:
        self._client = client

    def is_checked_in(self, barcode: str, *, seen_on_loan: bool = False) -> ProbeResult:
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
        )


def probe_for(settings: WmsSettings, client: WmsClient) -> CheckinProbe:
    """The probe the library's settings ask for (``checkin_probe``: ``lookup_item`` or ``none``)."""
    if settings.checkin_probe == "lookup_item":
        return LookupItemProbe(client)
    return NoProbe()
