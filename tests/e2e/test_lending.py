"""Lending, end to end in the sandbox (issue 15): every path of a lent item, as the borrowing tests prove borrowing.

West lends to east (and to north, a ReShare library that is not a bridge library). When west ships, the bridge
checks each volume's item out in WMS to the borrowing institution's account (the partner map, then the
library's default account) with ReShare's due date (the policy's when ReShare has none; WMS caps it at the
account's expiry, and a different date is one attention item naming both dates); when west completes, each item
is checked in and back on the shelf. An item checked in at WMS first is noticed by reconciliation (ReShare is
completed, or staff are asked once); a request closed after the check-out checks its items back in; the
library's switches skip a step and touch nothing in WMS. Refusals and "never twice": test_lending_faults.py.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from illbridge.models import Mapping, StepName, StepStatus
from illbridge.reshare.client import ReShareClient
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import (
    Library,
    create_pair,
    library_settings,
    other_library,
    reconciliation_due,
    settle,
    ship,
    sim,
)
from tests.e2e.test_borrowing import local_day
from tests.e2e.test_borrowing_faults import attention_for, history
from tests.e2e.test_wms_matrix import WEST, ever_raised, wms_options

pytestmark = pytest.mark.e2e
DUE = (datetime.now(UTC) + timedelta(days=21)).date()  # ReShare's due date for the loan
LIBRARY_ZONE = ZoneInfo("America/New_York")  # the demo libraries' time zone (WMS's and the bridge's)

# --- helpers (test_lending_faults.py uses them too) ---------------------------------------------------------


def new_items(sb: Sandbox, *collection_types: str) -> list[str]:
    """Items of west's own collection, one per collection type given (fresh barcodes: the sandbox is shared)."""
    tag = uuid.uuid4().hex[:6].upper()
    items = [f"LEND-{tag}-{n}" for n in range(1, len(collection_types) + 1)]
    for barcode, kind in zip(items, collection_types, strict=True):
        sim(sb, "wms", "POST", "items", registry_id=WEST, barcode=barcode, collection_type=kind, title="Lent")
    return items


def lend(sb: Sandbox, items: list[str], *, due: date | None = DUE, **pair: Any) -> dict[str, Any]:
    """A pair whose lender (west) fills the request with ``items`` and ships them; the bridge caught up."""
    created = create_pair(
        sb,
        volumes=[{"item_barcode": b, "call_number": f"PS35 .L{n}"} for n, b in enumerate(items)],
        **({"due_date": due.isoformat()} if due else {}),
        **pair,
    )
    ship(sb, created, items)
    return created


def bring_back(sb: Sandbox, pair: dict[str, Any], borrower: ReShareClient | None = None) -> None:
    """The borrower receives the items, its patron returns them and they are shipped back: west shows
    RES_ITEM_RETURNED (east's bridge saw neither the receipt nor the return: it makes no temp item)."""
    staff = borrower or Library(sb, "east").reshare
    for action in ("requesterReceived", "patronReturnedItemAndShippedReturn"):
        staff.perform_action(pair["borrower"]["id"], action, {})
    settle(sb)


def complete(sb: Sandbox, pair: dict[str, Any]) -> None:
    """West's staff complete the request in ReShare (supplierCheckOutOfReshare); the bridge catches up."""
    Library(sb, "west").act(pair["lender"]["id"], "supplierCheckOutOfReshare")
    settle(sb)


def loans(sb: Sandbox, barcode: str) -> list[dict[str, Any]]:
    return [
        loan for loan in sim(sb, "wms", "GET", f"loans?registry_id={WEST}") if loan["item_barcode"] == barcode
    ]


def wms_status(sb: Sandbox, barcode: str) -> str:
    return str(sim(sb, "wms", "GET", f"items/{barcode}?registry_id={WEST}")["status"])


def wms_calls(sb: Sandbox, operation: str) -> int:
    """How many ``operation`` requests west's WMS has had (its request log)."""
    return sum(
        e.get("operation") == operation for e in sim(sb, "wms", "GET", f"requests-log?registry_id={WEST}")
    )


def lending_mapping(pair: dict[str, Any]) -> Mapping:
    mapping = current_services().store.get_mapping("west", pair["lender"]["id"])
    assert mapping is not None
    return mapping


def step_status(pair: dict[str, Any], step: StepName) -> StepStatus | None:
    record = current_services().store.get_step("west", pair["lender"]["id"], step)
    return record.status if record else None


def assert_back_on_the_shelf(
    sb: Sandbox, pair: dict[str, Any], items: list[str], *, shelf: str = "Available"
) -> None:
    """Every item checked in (its one loan ended) and at rest at home; the lending mapping closed."""
    for barcode in items:
        assert [loan["active"] for loan in loans(sb, barcode)][-1:] == [False], loans(sb, barcode)
        assert wms_status(sb, barcode) == shelf
    mapping = lending_mapping(pair)
    assert not mapping.open and all(i.checked_in for i in mapping.items)


# --- 1 and 3: shipped (partner account, due date), returned (back on the shelf, per collection type) -------


@pytest.mark.parametrize("volumes", [1, 3], ids=["single-volume", "multi-volume"])
def test_a_lent_item_is_on_loan_to_the_borrower_while_away_and_back_on_the_shelf_after(
    sandbox: Sandbox, volumes: int
) -> None:
    sb = sandbox
    kinds = ("circulating", "circulating", "non-circulating")[:volumes]
    items = new_items(sb, *kinds)
    # When west ships the items (ReShare's due date: DUE)
    pair = lend(sb, items)
    # Then each volume's item is on loan to east's account (the partner map), due on ReShare's date
    for barcode in items:
        [loan] = loans(sb, barcode)
        assert (loan["patron_barcode"], loan["active"], local_day(loan["due"])) == ("ILL-EAST", True, DUE)
        assert wms_status(sb, barcode) == "On Loan"
    # and the due date WMS set is recorded, nobody is asked anything
    mapping = lending_mapping(pair)
    assert mapping.open and mapping.borrowing_institution_account == "ILL-EAST"
    assert {
        i.barcode: i.wms_due_date.astimezone(LIBRARY_ZONE).date() for i in mapping.items if i.wms_due_date
    } == (dict.fromkeys(items, DUE))
    assert step_status(pair, StepName.LEND_SHIPPED) == StepStatus.SUCCEEDED
    assert attention_for("west", pair["lender"]["id"]) == []

    # When the items come back and west completes the request
    bring_back(sb, pair)
    complete(sb, pair)
    # Then each item is checked in and back on the shelf: Available, or as its collection type has it
    for barcode, kind in zip(items, kinds, strict=True):
        assert_back_on_the_shelf(
            sb, pair, [barcode], shelf="Available" if kind == "circulating" else "Unavailable"
        )
    story = history("west", pair["lender"]["id"])
    assert story.count("lend_shipped:CheckOutItem:success") == volumes
    assert story.count("lend_returned:CheckInItem:success") == volumes
    assert attention_for("west", pair["lender"]["id"]) == []


def test_a_partner_without_an_account_of_its_own_borrows_on_the_default_account(sandbox: Sandbox) -> None:
    sb = sandbox
    north = other_library(sb)  # not in west's partner_accounts
    items = new_items(sb, "circulating")
    pair = lend(sb, items, borrower_tenant="north", pickup_location_slug="north-main")
    [loan] = loans(sb, items[0])
    assert (loan["patron_barcode"], loan["active"]) == ("ILL-DEFAULT", True)
    mapping = lending_mapping(pair)
    assert (mapping.partner_symbol, mapping.borrowing_institution_account) == ("RESHARE:NORTH", "ILL-DEFAULT")
    bring_back(sb, pair, borrower=north)
    complete(sb, pair)
    assert_back_on_the_shelf(sb, pair, items)
    north.close()


@contextlib.contextmanager
def due_date_case(sb: Sandbox, case: str) -> Iterator[dict[str, Any]]:
    """ReShare's date (``reshare``), none (``none``: west's ReShare has no default loan period, as mod-rs then
    ships without a due date), or one the account's expiry caps (``capped``: east's account expires first)."""
    if case == "none":
        sim(sb, "reshare", "POST", "settings", tenant="west", key="default_loan_period", value="")
        try:
            yield {"due": None}
        finally:
            sim(sb, "reshare", "POST", "settings", tenant="west", key="default_loan_period", value="56")
        return
    if case == "capped":
        account = f"ILL-EAST-{uuid.uuid4().hex[:6].upper()}"
        expires = DUE - timedelta(days=7)
        sim(
            sb,
            "wms",
            "POST",
            "patrons",
            registry_id=WEST,
            barcode=account,
            expires=expires.isoformat(),
            borrower_category="ILL",
        )
        with library_settings(sb, "west", partner_accounts={"RESHARE:EAST": account}):
            yield {"due": DUE, "expires": expires}
        return
    yield {"due": DUE}


@pytest.mark.parametrize("style", ["end_of_day_local", "utc"])  # WMS simulator switch due_date_style
@pytest.mark.parametrize("case", ["reshare", "none", "capped"])
def test_the_due_date_wms_set_is_recorded_and_a_different_one_is_one_attention_item(
    sandbox: Sandbox, case: str, style: str
) -> None:
    sb = sandbox
    items = new_items(sb, "circulating", "circulating")
    policy_days = {(datetime.now(LIBRARY_ZONE) + timedelta(days=42)).date()}  # west's ILL loan policy
    with wms_options(sb, due_date_style=style), due_date_case(sb, case) as given:
        pair = lend(sb, items, due=given["due"])
    policy_days.add((datetime.now(LIBRARY_ZONE) + timedelta(days=42)).date())
    lender_id = pair["lender"]["id"]
    mapping = lending_mapping(pair)
    wms_days = set()
    for barcode in items:
        [loan] = loans(sb, barcode)
        day = local_day(loan["due"])
        item = mapping.item(barcode)
        assert item is not None and item.wms_due_date is not None
        assert item.wms_due_date.astimezone(LIBRARY_ZONE).date() == day  # what WMS really set, recorded
        wms_days.add(day)
    if case == "reshare":
        # ReShare's date, whether WMS answers the end of the library's day or a UTC instant: the same date
        assert wms_days == {DUE}
        assert attention_for("west", lender_id) == []
    elif case == "none":
        assert sim(sb, "reshare", "GET", f"requests/west/{lender_id}")["dueDateRS"] is None
        assert mapping.lender_due_date is None
        assert len(wms_days) == 1 and wms_days <= policy_days  # the policy's date
        assert attention_for("west", lender_id) == []
    else:
        [wms_day] = wms_days
        assert wms_day < DUE and wms_day <= given["expires"]
        # one attention item for the request (both volumes), naming both dates
        [warning] = attention_for("west", lender_id)
        assert warning.step == StepName.LEND_SHIPPED.value
        assert str(DUE) in warning.reason and str(wms_day) in warning.reason, warning.reason
        assert "expiry" in warning.fix
        assert len(ever_raised("west", lender_id)) == 1
    assert step_status(pair, StepName.LEND_SHIPPED) == StepStatus.SUCCEEDED
    assert all(loan["active"] for barcode in items for loan in loans(sb, barcode))


def test_an_item_already_checked_in_at_wms_counts_as_checked_in(sandbox: Sandbox) -> None:
    sb = sandbox
    items = new_items(sb, "circulating")
    pair = lend(sb, items)
    # Given staff checked the item in at the desk before reconciliation looked
    sim(sb, "wms", "POST", "checkin", barcode=items[0], branch=WEST)
    # When the request is completed in ReShare
    bring_back(sb, pair)
    complete(sb, pair)
    # Then the bridge's check-in found it already done, and that is success: nothing for staff
    entries = current_services().store.history("west", pair["lender"]["id"])
    [check_in] = [h for h in entries if h.step == "lend_returned" and h.operation == "CheckInItem"]
    assert check_in.outcome.value == "success" and "already checked in" in check_in.summary
    assert step_status(pair, StepName.LEND_RETURNED) == StepStatus.SUCCEEDED
    assert_back_on_the_shelf(sb, pair, items)
    assert attention_for("west", pair["lender"]["id"]) == []


# --- 4. checked in at WMS first --------------------------------------------------------------------------

WMS_FIRST: dict[str, dict[str, Any]] = {
    # the request shows the item on its way back: ReShare is completed for staff
    "returned": {"volumes": 2, "state": "RES_ITEM_RETURNED", "update": True, "asks_staff": False},
    "overdue": {"volumes": 1, "state": "RES_OVERDUE", "update": True, "asks_staff": False},
    # the library's switch is off, or ReShare does not show it returned: staff are asked, once
    "switch-off": {"volumes": 1, "state": "RES_ITEM_RETURNED", "update": False, "asks_staff": True},
    "still-shipped": {"volumes": 1, "state": "RES_ITEM_SHIPPED", "update": True, "asks_staff": True},
}


@pytest.mark.parametrize("case", list(WMS_FIRST))
def test_an_item_checked_in_at_wms_first_completes_reshare_or_asks_staff_once(
    sandbox: Sandbox, case: str
) -> None:
    sb = sandbox
    spec = WMS_FIRST[case]
    items = new_items(sb, *["circulating"] * spec["volumes"])
    overdue = spec["state"] == "RES_OVERDUE"
    pair = lend(sb, items, due=datetime.now(UTC).date() - timedelta(days=2) if overdue else DUE)
    lender_id, hrid = pair["lender"]["id"], pair["hrid"]
    west = Library(sb, "west")
    if overdue:
        sim(sb, "reshare", "POST", "run-overdue")  # mod-rs's overdue timer
        settle(sb)
    elif spec["state"] == "RES_ITEM_RETURNED":
        bring_back(sb, pair)
    assert west.state(lender_id) == spec["state"]
    switch = library_settings(sb, "west", steps={"update_reshare_when_wms_checks_in_first": spec["update"]})
    with switch:
        # When staff check every item in at the WMS desk, and reconciliation looks
        for barcode in items:
            sim(sb, "wms", "POST", "checkin", barcode=barcode, branch=WEST)
        with reconciliation_due():
            settle(sb)
    story = history("west", lender_id)
    assert any(line.startswith("lend_wms_returned:") for line in story), story  # reconciliation noticed
    if not spec["asks_staff"]:
        # Then ReShare is completed by the bridge, the mapping closed, nobody asked
        assert west.state(lender_id) == "RES_COMPLETE"
        assert "lend_wms_returned:performAction supplierCheckOutOfReshare:success" in story, story
        assert ever_raised("west", lender_id) == []
    else:
        # Then one "Update ReShare request <hrid>" item, and ReShare is left as it was
        assert west.state(lender_id) == spec["state"]
        [item] = attention_for("west", lender_id)
        assert (item.reason, item.step) == (
            f"Update ReShare request {hrid}",
            StepName.LEND_WMS_RETURNED.value,
        )
        assert "complete the request in ReShare" in item.fix
        # When staff bring ReShare up to date (the item really is back) and complete the request
        with reconciliation_due(hours=30):  # later looks change nothing: still one item
            settle(sb)
        assert len(attention_for("west", lender_id)) == 1
        if spec["state"] == "RES_ITEM_SHIPPED":
            bring_back(sb, pair)
        complete(sb, pair)
        # Then the item leaves the list
        assert attention_for("west", lender_id) == []
        assert len(ever_raised("west", lender_id)) == 1
    assert_back_on_the_shelf(sb, pair, items)
    assert not any("CheckInItem" in line for line in history("west", lender_id))  # WMS did it; never re-sent


# --- 5. cancelled or unfilled after the check-out ------------------------------------------------------------


@pytest.mark.parametrize(("terminal", "volumes"), [("RES_CANCELLED", 1), ("RES_UNFILLED", 2)])
def test_a_request_closed_after_the_check_out_checks_its_items_back_in(
    sandbox: Sandbox, terminal: str, volumes: int
) -> None:
    sb = sandbox
    items = new_items(sb, *["circulating"] * volumes)
    pair = lend(sb, items)
    assert all(loans(sb, b)[0]["active"] for b in items)
    # When west's staff close the request by hand (mod-rs manualClose) after it went out
    Library(sb, "west").act(pair["lender"]["id"], "manualClose", {"terminalState": terminal, "note": "lost"})
    settle(sb)
    # Then every item is checked back in and the mapping closed
    assert Library(sb, "west").state(pair["lender"]["id"]) == terminal
    assert_back_on_the_shelf(sb, pair, items)
    assert history("west", pair["lender"]["id"]).count("request_closed:CheckInItem:success") == volumes
    assert step_status(pair, StepName.REQUEST_CLOSED) == StepStatus.SUCCEEDED
    assert attention_for("west", pair["lender"]["id"]) == []


# --- 8. the library's switches -----------------------------------------------------------------------------


@pytest.mark.parametrize("switch", ["check_out_on_shipped", "check_in_on_complete"])
def test_a_step_switched_off_is_skipped_by_configuration_and_touches_nothing_in_wms(
    sandbox: Sandbox, switch: str
) -> None:
    sb = sandbox
    items = new_items(sb, "circulating", "circulating")
    step, operation = {
        "check_out_on_shipped": (StepName.LEND_SHIPPED, "CheckOutItem"),
        "check_in_on_complete": (StepName.LEND_RETURNED, "CheckInItem"),
    }[switch]
    pair = lend(sb, items) if switch == "check_in_on_complete" else None
    sent = wms_calls(sb, operation)
    # When the library's switch is off and the step's moment comes (shipped; complete)
    with library_settings(sb, "west", steps={switch: False}):
        if pair is None:
            pair = lend(sb, items)
        else:
            bring_back(sb, pair)
            complete(sb, pair)
    # Then the step records "skipped by configuration" and sent nothing to WMS
    assert step_status(pair, step) == StepStatus.SKIPPED
    assert f"{step.value}:skipped by configuration:skipped" in history("west", pair["lender"]["id"])
    assert wms_calls(sb, operation) == sent
    assert attention_for("west", pair["lender"]["id"]) == []
    if switch == "check_in_on_complete":
        # the items stay on loan until staff check them in at the desk, which reconciliation notices
        assert all(loans(sb, b)[0]["active"] and wms_status(sb, b) == "On Loan" for b in items)
        for barcode in items:
            sim(sb, "wms", "POST", "checkin", barcode=barcode, branch=WEST)
        with reconciliation_due():
            settle(sb)
        assert_back_on_the_shelf(sb, pair, items)
        assert step_status(pair, StepName.LEND_WMS_RETURNED) == StepStatus.SUCCEEDED
        assert wms_calls(sb, operation) == sent  # checked in by staff at the desk, never by the bridge
        assert attention_for("west", pair["lender"]["id"]) == []
        return
    assert all(loans(sb, b) == [] and wms_status(sb, b) == "Available" for b in items)
    assert current_services().store.get_mapping("west", pair["lender"]["id"]) is None
    # and its completion has nothing to check in
    sent = wms_calls(sb, "CheckInItem")
    bring_back(sb, pair)
    complete(sb, pair)
    assert wms_calls(sb, "CheckInItem") == sent
