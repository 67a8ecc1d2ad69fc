"""The WMS simulator's switches: one per WMS behaviour that OCLC does not document.

Each switch lists its values, the first being the default, with what is known and where from. The bridge must
be right under every value (``tests/e2e/test_wms_matrix.py``). Set them with ``GET/POST /_sim/options``
(``{"lookup_item": "supported"}``), ``--option k=v`` on ``python -m sandbox wms`` / ``sandbox up``, or
``Sandbox(wms_options={...})``. ``POST /_sim/reset`` puts back the values the simulator was started with.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Switch:
    name: str
    values: tuple[str, ...]  # first = default
    known: str  # what is known, and where from

    @property
    def default(self) -> str:
        return self.values[0]


SWITCHES: tuple[Switch, ...] = (
    Switch(
        "lookup_item",
        ("unsupported", "supported"),
        "OCLC's WMS NCIP pages list CheckInItem, CheckOutItem, RequestItem, CancelRequestItem (staff profile), "
        "LookupUser, RequestItem, UpdateRequestItem, CancelRequestItem, RenewItem (patron profile) and "
        "AcceptItem (CircILL): LookupItem is not among them. unsupported answers the top-level NCIP Problem "
        "'Unsupported Service' a toolkit-based server gives for a message it has no service for "
        "(circill-toolkit ServiceValidator).",
    ),
    Switch(
        "lookup_user",
        ("supported", "unsupported"),
        "OCLC lists LookupUser for the patron profile (LoanedItemsDesired, RequestedItemsDesired; circill-toolkit "
        "binding/wclv1_1 LookupUser samples). Whether a staff WSKey may ask about any patron or a "
        "borrowing-institution account is not documented.",
    ),
    Switch(
        "desired_due_date",
        ("honoured_capped_at_expiry", "policy_always"),
        "OCLC's Integration Workflow page: the due date is the request's and 'may not exceed the patron's WMS "
        "expiration date'. CheckOutItemResponseSuccess.xml: without MandatedAction the DateDue is the policy's, "
        "which 'might be different'. policy_always: WMS ignores DesiredDateDue.",
    ),
    Switch(
        "due_date_style",
        ("end_of_day_local", "utc"),
        "A published WMS client shows due dates as end of day in the library's local time "
        "(e.g. 2026-12-28T23:59:59.000-05:00); OCLC's samples show UTC instants (...Z). The institution's "
        "time zone is its `timezone` (demo: America/New_York).",
    ),
    Switch(
        "checkin_of_held_temp_item",
        ("cancels_hold", "keeps_hold"),
        "Not documented: what a check-in of a temp item that is not on loan but has an active hold does. "
        "cancels_hold: the hold is cancelled and the item goes home Unavailable; keeps_hold: the item goes "
        "(back) to the hold shelf at the pickup branch.",
    ),
    Switch(
        "repeat_checkout_same_account",
        ("problem", "returns_existing_loan", "renews"),
        "Not documented: a CheckOutItem of an item already on loan to the same account. problem: "
        "'Resource Cannot Be Provided' (circill-toolkit CheckOutItemResponseRequirementsNotMet.xml style); "
        "returns_existing_loan: success with the existing loan's due date; renews: success, the loan renewed "
        "(new due date). Never a second loan.",
    ),
    Switch(
        "duplicate_temp_barcode",
        ("problem_duplicate_item", "problem_other_wording"),
        "Not documented: the Problem for an AcceptItem whose temp barcode already exists. NCIP's AcceptItem "
        "processing error scheme has 'Duplicate Item' (what peers answer); problem_other_wording answers "
        "'Resource Cannot Be Provided' with a free-text detail, so nothing may depend on the wording.",
    ),
    Switch(
        "expired_account_when_mandated",
        ("refused", "honoured"),
        "CheckOutItemToInstitutionForILL.xml: with MandatedAction Circulation must honour the request. Whether "
        "that overrides an expired borrowing-institution account is not documented. refused: 'User Ineligible "
        "To Check Out This Item'; honoured: the loan is made (due date still capped at the expiry).",
    ),
)
SWITCH_BY_NAME: dict[str, Switch] = {s.name: s for s in SWITCHES}
DEFAULTS: dict[str, str] = {s.name: s.default for s in SWITCHES}


class OptionError(ValueError):
    """An unknown switch or value (HTTP 400; nothing changed)."""


def validate(changes: Mapping[str, object]) -> dict[str, str]:
    """The changes as {switch: value}, or OptionError naming every problem; changes nothing."""
    problems = []
    clean: dict[str, str] = {}
    for name, value in changes.items():
        switch = SWITCH_BY_NAME.get(name)
        if switch is None:
            problems.append(f"unknown switch {name!r} (known: {', '.join(SWITCH_BY_NAME)})")
        elif not isinstance(value, str) or value not in switch.values:
            problems.append(f"{name} must be one of {', '.join(switch.values)}, not {value!r}")
        else:
            clean[name] = value
    if problems:
        raise OptionError("; ".join(problems))
    return clean


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``["k=v", ...]`` (the ``--option`` command-line form) as validated {switch: value}."""
    raw: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise OptionError(f"--option takes k=v, got {pair!r}")
        raw[name.strip()] = value.strip()
    return validate(raw)


class Options:
    """The current switch values; thread-safe. ``baseline`` = the values given at start (restored by reset)."""

    def __init__(self, baseline: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self.baseline = {**DEFAULTS, **validate(baseline or {})}
        self._values = dict(self.baseline)

    def get(self, name: str) -> str:
        with self._lock:
            return self._values[name]

    def is_(self, name: str, value: str) -> bool:
        return self.get(name) == value

    def set(self, changes: Mapping[str, object]) -> dict[str, str]:
        clean = validate(changes)
        with self._lock:
            self._values.update(clean)
            return dict(self._values)

    def reset(self) -> None:
        with self._lock:
            self._values = dict(self.baseline)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._values)

    def describe(self) -> dict[str, object]:
        """What ``GET /_sim/options`` answers: current values and every switch's values, default, what is known."""
        values = self.snapshot()
        return {
            "options": values,
            "switches": [
                {
                    "name": s.name,
                    "values": list(s.values),
                    "default": s.default,
                    "value": values[s.name],
                    "known": s.known,
                }
                for s in SWITCHES
            ],
        }
