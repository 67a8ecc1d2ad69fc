"""Borrowing under a library's own settings, end to end in the sandbox (issue 6, deliverables 1-3):
the return buffer, a step switched off, WMS-first returns when the bridge may not update ReShare, and a request
closed after its temp item was made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from illbridge.models import StepName, StepStatus
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import (
    Library,
    create_pair,
    library_settings,
    reconciliation_due,
    settle,
    ship_and_receive,
    sim,
)

pytestmark = pytest.mark.e2e
DUE = (datetime.now(UTC) + timedelta(days=21)).date()
EAST = "128807"


def received(sb: Sandbox, item: str) -> tuple[dict[str, Any], Library, Library]:
    """A single-volume pair the lender shipped and the borrower received, with the bridge caught up."""
    pair = create_pair(sb, volumes=[{"item_barcode": item}], due_date=DUE.isoformat())
    east, west = ship_and_receive(sb, pair, [item])
    return pair, east, west


def temp_item(sb: Sandbox, hrid: str) -> dict[str, Any] | None:
    found = [t for t in sim(sb, "wms", "GET", f"temp-items?registry_id={EAST}") if t["barcode"] == hrid]
    return found[0] if found else None


def hold(sb: Sandbox, barcode: str) -> dict[str, Any]:
    [found] = [h for h in sim(sb, "wms", "GET", f"holds?registry_id={EAST}") if h["item_barcode"] == barcode]
    return found


def story(request_id: str) -> list[str]:
    return [
        f"{h.step}:{h.operation}:{h.outcome.value}"
        for h in current_services().store.history("east", request_id)
    ]


def attention(request_id: str) -> list[Any]:
    return [a for a in current_services().store.list_attention("east") if a.request_id == request_id]


def test_the_return_buffer_moves_the_temp_item_s_date_for_return_earlier(sandbox: Sandbox) -> None:
    with library_settings(sandbox, "east", return_buffer_days=3):
        pair, _, _ = received(sandbox, "WEST-ITEM-0001")
    temp = temp_item(sandbox, pair["hrid"])
    assert temp is not None
    # the end of that day in the library's time zone (America/New_York)
    sent = datetime.fromisoformat(temp["date_for_return"].replace("Z", "+00:00"))
    assert sent.astimezone(ZoneInfo("America/New_York")).date() == DUE - timedelta(days=3), temp


def test_a_step_switched_off_is_recorded_as_skipped_and_does_nothing(sandbox: Sandbox) -> None:
    with library_settings(sandbox, "east", steps={"create_temp_item_on_received": False}):
        pair, east, _ = received(sandbox, "WEST-ITEM-0002")
    borrower_id = pair["borrower"]["id"]
    # Then no temp item or hold, the step is SKIPPED, the history says why, and nobody is asked anything
    assert temp_item(sandbox, pair["hrid"]) is None
    record = current_services().store.get_step("east", borrower_id, StepName.BORROW_RECEIVED)
    assert record is not None and record.status == StepStatus.SKIPPED
    assert [line for line in story(borrower_id) if line.startswith("borrow_received:")] == [
        "borrow_received:skipped by configuration:skipped"
    ]
    assert attention(borrower_id) == []
    assert east.state(borrower_id) == "REQ_CHECKED_IN"


def test_a_wms_first_return_asks_staff_to_update_reshare_when_the_bridge_may_not(sandbox: Sandbox) -> None:
    sb = sandbox
    with library_settings(sb, "east", steps={"update_reshare_when_wms_checks_in_first": False}):
        pair, east, _ = received(sb, "WEST-ITEM-0003")
        borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
        # Given the patron picked it up and brought it back to the desk: WMS checks it in first
        sim(sb, "wms", "POST", "checkin", barcode=hrid, branch=EAST)
        sim(sb, "wms", "POST", "checkout", item_barcode=hrid, patron_barcode="EAST-P-0001")
        with reconciliation_due():  # reconciliation sees the loan (LookupUser: the patron's loans)
            settle(sb)
        sim(sb, "wms", "POST", "checkin", barcode=hrid, branch=EAST)
        with reconciliation_due(hours=26):
            settle(sb)
        # Then ReShare is left as it was, and staff get exactly one item telling them to update it
        assert east.state(borrower_id) == "REQ_CHECKED_IN"
        [item] = attention(borrower_id)
        assert item.step == StepName.BORROW_WMS_RETURNED.value
        assert item.reason == f"Update ReShare request {hrid}"
        assert "returned by patron" in item.fix
        # When staff do it in ReShare, Then the item leaves the list and the temp item is not checked in again
        east.act(borrower_id, "patronReturnedItem")
        settle(sb)
    assert attention(borrower_id) == []
    assert not any("CheckInItem" in line for line in story(borrower_id))
    assert east.state(borrower_id) == "REQ_AWAITING_RETURN_SHIPPING"


def test_a_request_closed_after_its_temp_item_was_made_leaves_no_hold_behind(sandbox: Sandbox) -> None:
    sb = sandbox
    pair, east, _ = received(sb, "WEST-ITEM-0004")
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    assert hold(sb, hrid)["status"] == "Pending"
    # When staff close the borrower request by hand
    east.act(borrower_id, "manualClose", {"terminalState": "REQ_CANCELLED"})
    settle(sb)
    # Then the bridge checked the temp item in, which cancelled the patron's hold, and ended the mapping
    assert hold(sb, hrid)["status"] == "Cancelled"
    mapping = current_services().store.get_mapping("east", borrower_id)
    assert mapping is not None and not mapping.open and all(i.checked_in for i in mapping.items)
    assert "request_closed:CheckInItem:success" in story(borrower_id)
    assert attention(borrower_id) == []
