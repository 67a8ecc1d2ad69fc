"""Borrowing, end to end in the sandbox (issue: borrowing workflow).

A pair is created in the ReShare simulator, the lender fills and ships, the borrower marks it received: the
bridge creates the temp item(s) and Pending hold(s) in the WMS simulator; staff check in at the pickup branch
(hold Ready) and check out to the patron (due = the stricter date); the patron returns it, once with ReShare
first and once with WMS first; both systems end right and the mapping's history tells the story.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from illbridge.models import StepName, StepStatus
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import Library, create_pair, reconciliation_due, settle, ship, ship_and_receive, sim

pytestmark = pytest.mark.e2e
DUE = (datetime.now(UTC) + timedelta(days=21)).date()  # the lender's due date: stricter than 28-day policy


def local_day(value: str) -> date:
    """A WMS time as the demo libraries' calendar date (America/New_York)."""
    return (
        datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(ZoneInfo("America/New_York")).date()
    )


def temp_items(sb: Sandbox, request_id: str) -> list[dict[str, Any]]:
    return [
        t for t in sim(sb, "wms", "GET", "temp-items?registry_id=128807") if t["request_id"] == request_id
    ]


def holds_for(sb: Sandbox, barcode: str) -> list[dict[str, Any]]:
    return [h for h in sim(sb, "wms", "GET", "holds?registry_id=128807") if h["item_barcode"] == barcode]


def history_operations(sb: Sandbox, tenant: str, request_id: str) -> list[str]:
    store = current_services().store
    return [f"{h.step}:{h.operation}:{h.outcome.value}" for h in store.history(tenant, request_id)]


@pytest.mark.parametrize("volumes", [1, 2], ids=["single-volume", "multi-volume"])
@pytest.mark.parametrize("first", ["reshare", "wms"])
def test_a_borrowed_item_goes_through_wms_and_back(sandbox: Sandbox, volumes: int, first: str) -> None:
    sb = sandbox
    items = [
        f"WEST-ITEM-{n:04d}"
        for n in ({1: [2], 2: [3, 4]}[volumes] if first == "reshare" else {1: [5], 2: [6, 7]}[volumes])
    ]
    # Given a pair whose lender fills and ships, and the borrower marks received
    pair = create_pair(
        sb,
        volumes=[{"item_barcode": b, "call_number": f"QA76 .V{i}"} for i, b in enumerate(items)],
        due_date=DUE.isoformat(),
    )
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    east, west = ship_and_receive(sb, pair, items)

    # Then WMS holds one temp item per volume with the right barcode, request id, lender, due date, branch
    created = temp_items(sb, f"ReShareRequest{hrid}")
    expected = [hrid] if volumes == 1 else [f"{hrid}-{b[-4:]}" for b in items]
    assert sorted(t["barcode"] for t in created) == sorted(expected)
    for temp in created:
        assert temp["lending_library"] == "262626"
        assert local_day(temp["date_for_return"]) == DUE  # the lender's date, in the library's time zone
        assert temp["title"] == "The Name of the Rose"
        [hold] = holds_for(sb, temp["barcode"])
        assert (hold["status"], hold["pickup_branch"], hold["patron_barcode"]) == (
            "Pending",
            "128807",
            "EAST-P-0001",
        )
    # and the lender's item is checked out to the borrowing institution's account
    lent = [
        loan
        for loan in sim(sb, "wms", "GET", "loans?registry_id=262626")
        if loan["item_barcode"] in items and loan["active"]
    ]
    assert {loan["patron_barcode"] for loan in lent} == {"ILL-EAST"}

    # When staff check each temp item in at the pickup branch, Then its hold is Ready and the patron notified
    for barcode in expected:
        sim(sb, "wms", "POST", "checkin", barcode=barcode, branch="128807")
        assert holds_for(sb, barcode)[0]["status"] == "Ready"
    notices = [n for n in sim(sb, "wms", "GET", "notices") if n["item"] in expected]
    assert len(notices) == len(expected)
    # When staff check it out to the patron, Then the due date is the stricter one (the lender's)
    for barcode in expected:
        answer = sim(sb, "wms", "POST", "checkout", item_barcode=barcode, patron_barcode="EAST-P-0001")
        due = answer["loan"]["due"]
        assert local_day(due) == DUE, due
    # and reconciliation looks while the patron has it (LookupUser: the patron's loans)
    with reconciliation_due():
        settle(sb)

    # When the patron returns it
    if first == "reshare":
        east.act(borrower_id, "patronReturnedItem")
        settle(sb)
    else:
        for barcode in expected:
            sim(sb, "wms", "POST", "checkin", barcode=barcode, branch="128807")
        with reconciliation_due(hours=26):
            settle(sb)
    # Then ReShare shows it returned by the patron and WMS has every temp item checked in, home, Unavailable
    assert east.state(borrower_id) == "REQ_AWAITING_RETURN_SHIPPING"
    for temp in temp_items(sb, f"ReShareRequest{hrid}"):
        assert temp["status"] == "Unavailable"
        assert temp["branch"] == "128807"
        assert temp["request_id"] == f"ReShareRequest{hrid}"

    # When the item goes back and the lender completes
    east.act(borrower_id, "shippedReturn")
    settle(sb)
    west.act(pair["lender"]["id"], "supplierCheckOutOfReshare")
    settle(sb)
    # Then both requests are complete, the lent item is back on the shelf, the borrower mapping is closed
    assert east.state(borrower_id) == "REQ_REQUEST_COMPLETE"
    assert west.state(pair["lender"]["id"]) == "RES_COMPLETE"
    for barcode in items:
        assert sim(sb, "wms", "GET", f"items/{barcode}?registry_id=262626")["status"] == "Available"
    store = current_services().store
    mapping = store.get_mapping("east", borrower_id)
    assert mapping is not None and not mapping.open and all(i.checked_in for i in mapping.items)
    assert store.list_attention("east") == [] or all(
        a.request_id != borrower_id for a in store.list_attention("east")
    )

    # And the history tells the whole story, in order
    story = history_operations(sb, "east", borrower_id)
    accepted = [line for line in story if line.startswith("borrow_received:AcceptItem:success")]
    assert len(accepted) == volumes
    if first == "reshare":
        assert sum(line.startswith("borrow_returned:CheckInItem:success") for line in story) == volumes
    else:
        assert "borrow_wms_returned:performAction patronReturnedItem:success" in story
        assert not any("CheckInItem" in line for line in story)  # WMS did it; the bridge never re-sent it
    assert story.index(accepted[0]) < len(story) - 1


def test_received_and_returned_between_two_polls_ends_clean_without_a_temp_item(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a pair shipped by the lender and seen by the bridge
    pair = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0009"}], due_date=DUE.isoformat())
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    east, west = Library(sb, "east"), Library(sb, "west")
    ship(sb, pair, ["WEST-ITEM-0009"])
    # When the borrower receives it and the patron returns it before the next poll (REQ_CHECKED_IN never seen)
    east.act(borrower_id, "requesterReceived")
    east.act(borrower_id, "patronReturnedItem")
    settle(sb)
    # Then no temp item was made, the returned step succeeded with nothing to do, and nobody is asked anything
    assert temp_items(sb, f"ReShareRequest{hrid}") == []
    store = current_services().store
    record = store.get_step("east", borrower_id, StepName.BORROW_RETURNED)
    assert record is not None and record.status == StepStatus.SUCCEEDED
    assert "borrow_returned:nothing to check in:info" in history_operations(sb, "east", borrower_id)
    assert all(a.request_id != borrower_id for a in store.list_attention("east"))
    # and the rest of the life goes on to complete on both sides
    east.act(borrower_id, "shippedReturn")
    west.act(pair["lender"]["id"], "supplierCheckOutOfReshare")
    settle(sb)
    assert east.state(borrower_id) == "REQ_REQUEST_COMPLETE"
    assert sim(sb, "wms", "GET", "items/WEST-ITEM-0009?registry_id=262626")["status"] == "Available"
    assert temp_items(sb, f"ReShareRequest{hrid}") == []
