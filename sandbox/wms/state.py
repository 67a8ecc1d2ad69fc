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

from .records import (  # re-exported: st.Institution, st.CircError, st.iso, ...
    ACTIVE_HOLD_STATUSES,
    ALLOWED_SCOPES,
    CIRCULATING,
    FAULT_KINDS,
    FAULT_OPERATIONS,
    HOLD_CANCELLED,
    HOLD_FILLED,
    HOLD_PENDING,
    HOLD_READY,
    ITEM_AVAILABLE,
    ITEM_IN_TRANSIT,
    ITEM_ON_HOLD_SHELF,
    ITEM_ON_LOAN,
    ITEM_ON_ORDER,
    ITEM_STATUSES,
    ITEM_UNAVAILABLE,
    NON_CIRCULATING,
    REQUEST_LOG_LIMIT,
    AmbiguousBarcode,
    Branch,
    CheckInResult,
    CheckOutResult,
    CircError,
    Fault,
    Hold,
    IllSettings,
    Institution,
    Item,
    Loan,
    NotFound,
    Notice,
    Patron,
    Policy,
    Token,
    iso,
    parse_date,
    parse_datetime,
    required_str,
    utcnow,
)
from .seeding import SeedingState

__all__ = [
    "ACTIVE_HOLD_STATUSES",
    "ALLOWED_SCOPES",
    "CIRCULATING",
    "FAULT_KINDS",
    "FAULT_OPERATIONS",
    "HOLD_CANCELLED",
    "HOLD_FILLED",
    "HOLD_PENDING",
    "HOLD_READY",
    "ITEM_AVAILABLE",
    "ITEM_IN_TRANSIT",
    "ITEM_ON_HOLD_SHELF",
    "ITEM_ON_LOAN",
    "ITEM_ON_ORDER",
    "ITEM_STATUSES",
    "ITEM_UNAVAILABLE",
    "NON_CIRCULATING",
    "REQUEST_LOG_LIMIT",
    "AmbiguousBarcode",
    "Branch",
    "CheckInResult",
    "CheckOutResult",
    "CircError",
    "Fault",
    "Hold",
    "IllSettings",
    "Institution",
    "Item",
    "Loan",
    "NotFound",
    "Notice",
    "Patron",
    "Policy",
    "Token",
    "WmsState",
    "iso",
    "parse_date",
    "parse_datetime",
    "required_str",
    "utcnow",
]


class WmsState(SeedingState):
    """All simulator state: the one lock-holding front. Its parts, along the seams: ``admin`` (data, lock,
    set-up and listings), ``tokens``, ``faults`` (and the request log), ``circulation``, ``seeding``."""

    # -- lifecycle ------------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.token_ttl = self.default_token_ttl
            self.options.reset()
            self.institutions.clear()
            self.tokens.clear()
            self.faults.clear()
            self.requests_log.clear()
