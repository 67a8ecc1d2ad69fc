"""Lives through the parts of mod-rs the simulator now plays as mod-rs has them (issue 13): a request busy
with network activity, and overdue loans (only the lender has a timer; its Overdue message moves the borrower).

- A busy window (networkStatus Waiting) delays the bridge's ReShare action; it is waited out as an outage is
  (the step is deferred with backoff) and never put to staff within the library's outage deadline, however
  many attempts it spans.
- An overdue loan, returned by the patron, ends right in both systems with ReShare first and with WMS first.
- The lender's due date is mod-rs's instant (set when the lender fills): the bridge gives WMS its UTC calendar
  day on both sides, whatever the time of day.
- A loan ends right under both readings of what the borrower's "Received" does to the lender
  (`lender_on_received`: RES_AWAITING_RETURN_SHIPPING, mod-rs's reference data; RES_ITEM_SHIPPED, its spec).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from illbridge.errors import ReShareBusy, StepDeferred
from illbridge.models import StepName, StepStatus
from illbridge.wiring import current_services
from illbridge.workflow.engine import StepResult, run_step
from sandbox.runtime import Sandbox
from tests.e2e.conftest import Library, create_pair, reconciliation_due, settle, ship_and_receive, sim

pytestmark = pytest.mark.e2e
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date()


@contextmanager
def clock_ahead(by: timedelta) -> Iterator[None]:
    services = current_services()
    real_clock = services.clock
    services.clock = lambda: real_clock() + by
    try:
        yield
    finally:
        services.clock = real_clock


def attention_for(request_id: str, tenant: str) -> list:
    return [a for a in current_services().store.list_attention(tenant) if a.request_id == request_id]


def test_a_busy_request_delays_the_bridge_s_action_and_never_reaches_staff(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a lent item shipped, received, and sent back by the borrower (lender: RES_ITEM_RETURNED)
    items = ["WEST-ITEM-0001"]
    pair = create_pair(sb, volumes=[{"item_barcode": items[0]}])
    east, west = ship_and_receive(sb, pair, items)
    east.act(pair["borrower"]["id"], "patronReturnedItemAndShippedReturn")
    settle(sb)
    lender_id = pair["lender"]["id"]
    assert west.state(lender_id) == "RES_ITEM_RETURNED"
    # and the lender's request busy with network activity for a few seconds (mod-rs: networkStatus Waiting)
    sim(sb, "reshare", "POST", "network", tenant="west", id=lender_id, status="Waiting", for_ms=3000)

    # When staff check the item in at WMS first and the bridge notices
    sim(sb, "wms", "POST", "checkin", barcode=items[0], branch="262626")
    with reconciliation_due():
        settle(sb)

    # Then the bridge waited the busy window out and completed the request; nobody was asked to do anything
    assert west.state(lender_id) == "RES_COMPLETE"
    step = current_services().store.get_step("west", lender_id, StepName.LEND_WMS_RETURNED)
    assert step is not None and step.status == StepStatus.SUCCEEDED
    assert attention_for(lender_id, "west") == []


def test_busy_on_every_attempt_is_retried_and_never_raises_attention(sandbox: Sandbox) -> None:
    # Given a step whose ReShare request answers "busy" however often it is tried (a window of minutes)
    services = current_services()
    config = services.configs.get("west")
    tries: list[int] = []

    def busy(ctx: object) -> StepResult:
        tries.append(1)
        raise ReShareBusy(
            "Unable to perform action as we are waiting for existing network activity to complete"
        )

    # When the step runs again and again (more times than the queue would deliver a failing message)
    for _ in range(8):
        with pytest.raises(StepDeferred):  # waited out like an outage: put off, not failed
            run_step(
                services,
                config,
                tenant="west",
                request_id="busy-request",
                hrid="WEST-BUSY",
                step=StepName.LEND_WMS_RETURNED,
                trigger="test",
                act=busy,
            )
    # Then it stays retryable, and the attention list never hears of it
    step = services.store.get_step("west", "busy-request", StepName.LEND_WMS_RETURNED)
    assert step is not None and step.status == StepStatus.RETRYABLE
    assert len(tries) == 8
    assert attention_for("busy-request", "west") == []
    # And once ReShare is idle again the step succeeds
    result = run_step(
        services,
        config,
        tenant="west",
        request_id="busy-request",
        hrid="WEST-BUSY",
        step=StepName.LEND_WMS_RETURNED,
        trigger="test",
        act=lambda ctx: StepResult(StepStatus.SUCCEEDED, {}),
    )
    assert result.status == StepStatus.SUCCEEDED


@pytest.mark.parametrize("first", ["reshare", "wms"])
def test_an_overdue_loan_returned_by_the_patron_ends_right_in_both_systems(
    sandbox: Sandbox, first: str
) -> None:
    sb = sandbox
    item = {"reshare": "WEST-ITEM-0002", "wms": "WEST-ITEM-0003"}[first]
    # Given a loan due yesterday, received by the borrower and picked up by the patron; the lender still
    # RES_ITEM_SHIPPED after "Received" (lender_on_received's spec reading: under mod-rs's reference data the
    # lender is RES_AWAITING_RETURN_SHIPPING by now, which has no overdue timer)
    sim(sb, "reshare", "POST", "options", lender_on_received="RES_ITEM_SHIPPED")
    pair = create_pair(sb, volumes=[{"item_barcode": item}], due_date=YESTERDAY.isoformat())
    borrower_id, lender_id, hrid = pair["borrower"]["id"], pair["lender"]["id"], pair["hrid"]
    try:
        east, west = ship_and_receive(sb, pair, [item])
    finally:
        sim(sb, "reshare", "POST", "options", lender_on_received="RES_AWAITING_RETURN_SHIPPING")
    sim(sb, "wms", "POST", "checkin", barcode=hrid, branch="128807")
    sim(sb, "wms", "POST", "checkout", item_barcode=hrid, patron_barcode="EAST-P-0001")
    with (
        reconciliation_due()
    ):  # reconciliation looks while the patron has it (LookupUser: the patron's loans)
        settle(sb)

    # When mod-rs's overdue timer runs (only the lender has one), Then both sides are overdue
    sim(sb, "reshare", "POST", "run-overdue")
    assert west.state(lender_id) == "RES_OVERDUE"
    assert east.state(borrower_id) == "REQ_OVERDUE"
    settle(sb)

    # When the patron returns it: in ReShare first, or at the WMS desk first
    if first == "reshare":
        east.act(borrower_id, "patronReturnedItem")  # from REQ_OVERDUE
        settle(sb)
    else:
        sim(sb, "wms", "POST", "checkin", barcode=hrid, branch="128807")
        with clock_ahead(timedelta(days=1)):  # the next reconciliation check, whatever its interval now
            settle(sb)
    # Then ReShare shows it returned by the patron and the temp item is checked in
    assert east.state(borrower_id) == "REQ_AWAITING_RETURN_SHIPPING"
    temp = [t for t in sim(sb, "wms", "GET", "temp-items?registry_id=128807") if t["barcode"] == hrid]
    assert [t["status"] for t in temp] == ["Unavailable"]

    # When it is shipped back and the lender completes from RES_ITEM_RETURNED
    east.act(borrower_id, "shippedReturn")
    settle(sb)
    assert west.state(lender_id) == "RES_ITEM_RETURNED"
    west.act(lender_id, "supplierCheckOutOfReshare")
    settle(sb)
    # Then both requests are complete, the lent item is back on the shelf, nothing waits for staff
    assert east.state(borrower_id) == "REQ_REQUEST_COMPLETE"
    assert west.state(lender_id) == "RES_COMPLETE"
    assert sim(sb, "wms", "GET", f"items/{item}?registry_id=262626")["status"] == "Available"
    assert attention_for(borrower_id, "east") == [] and attention_for(lender_id, "west") == []
    mapping = current_services().store.get_mapping("east", borrower_id)
    assert mapping is not None and not mapping.open


def local_day(value: str) -> date:
    """A WMS time as the demo libraries' calendar date (America/New_York)."""
    return (
        datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(ZoneInfo("America/New_York")).date()
    )


@pytest.mark.parametrize(
    ("override", "item"),
    [
        (None, "WEST-ITEM-0011"),
        ("2027-03-10T02:30:00Z", "WEST-ITEM-0012"),
        ("2027-03-10T23:30:00Z", "WEST-ITEM-0013"),
    ],
)
def test_the_bridge_reads_mod_rs_s_due_instant_as_its_utc_date(
    sandbox: Sandbox, override: str | None, item: str
) -> None:
    sb = sandbox
    # Given a request the lender fills (mod-rs sets dueDateRS then: the override instant, else now + 56 days to
    # the second) and ships; 02:30Z is the evening before in the libraries' time zone, 23:30Z the same evening
    sim(sb, "wms", "POST", "items", registry_id="262626", barcode=item, branch="262626", title="Due")
    pair = create_pair(sb, volumes=[{"item_barcode": item}])
    borrower_id, lender_id, hrid = pair["borrower"]["id"], pair["lender"]["id"], pair["hrid"]
    east, west = Library(sb, "east"), Library(sb, "west")
    params: dict[str, object] = {"itemBarcodes": [{"itemId": item}]}
    if override is not None:
        params["loanDateOverride"] = override
    before = datetime.now(UTC)
    west.act(lender_id, "supplierCheckInToReshareAndSupplierMarkShipped", params)
    settle(sb)
    east.act(borrower_id, "requesterReceived")
    settle(sb)
    lender = west.reshare.get_request(lender_id)
    borrower = east.reshare.get_request(borrower_id)
    assert lender.due_date_rs is not None and borrower.due_date_rs == lender.due_date_rs
    if override is not None:
        assert lender.due_date_rs == override
    else:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", lender.due_date_rs)
        due_at = lender.lender_due_date
        assert due_at is not None
        assert (
            before.replace(microsecond=0) + timedelta(days=56)
            <= due_at
            <= datetime.now(UTC) + timedelta(days=56)
        )
    due = borrower.lender_due_date
    assert due is not None
    day = due.astimezone(UTC).date()  # the day mod-rs's own overdue timer counts (UTC)

    # Then WMS has that calendar day on both sides: the lent item's loan to east's account, and east's temp item
    [loan] = [
        loan
        for loan in sim(sb, "wms", "GET", "loans?registry_id=262626")
        if loan["item_barcode"] == item and loan["active"]
    ]
    assert local_day(loan["due"]) == day, loan
    [temp] = [t for t in sim(sb, "wms", "GET", "temp-items?registry_id=128807") if t["barcode"] == hrid]
    assert local_day(temp["date_for_return"]) == day, temp
    # and no "different due date" doubt reached staff
    assert attention_for(borrower_id, "east") == [] and attention_for(lender_id, "west") == []


@pytest.mark.parametrize("reading", ["RES_AWAITING_RETURN_SHIPPING", "RES_ITEM_SHIPPED"])
@pytest.mark.parametrize("first", ["reshare", "wms"])
def test_a_loan_ends_right_under_both_readings_of_received(
    sandbox: Sandbox, reading: str, first: str
) -> None:
    sb = sandbox
    item = {
        ("RES_AWAITING_RETURN_SHIPPING", "reshare"): "WEST-ITEM-0014",
        ("RES_AWAITING_RETURN_SHIPPING", "wms"): "WEST-ITEM-0015",
        ("RES_ITEM_SHIPPED", "reshare"): "WEST-ITEM-0016",
        ("RES_ITEM_SHIPPED", "wms"): "WEST-ITEM-0017",
    }[(reading, first)]
    # Given mod-rs's lender moving on "Received" as the reading says (lender_on_received)
    sim(sb, "reshare", "POST", "options", lender_on_received=reading)
    sim(sb, "wms", "POST", "items", registry_id="262626", barcode=item, branch="262626", title="Received")
    try:
        pair = create_pair(sb, volumes=[{"item_barcode": item}])
        borrower_id, lender_id, hrid = pair["borrower"]["id"], pair["lender"]["id"], pair["hrid"]
        east, west = ship_and_receive(sb, pair, [item])
        # Then the lender's request is where the reading puts it, and the bridge still has the item on loan
        assert west.state(lender_id) == reading
        [loan] = [
            loan
            for loan in sim(sb, "wms", "GET", "loans?registry_id=262626")
            if loan["item_barcode"] == item and loan["active"]
        ]
        assert loan["patron_barcode"] == "ILL-EAST"
        sim(sb, "wms", "POST", "checkin", barcode=hrid, branch="128807")
        sim(sb, "wms", "POST", "checkout", item_barcode=hrid, patron_barcode="EAST-P-0001")
        with reconciliation_due():
            settle(sb)
        # When the patron returns it, in ReShare first or at the WMS desk first, and it goes back
        if first == "reshare":
            east.act(borrower_id, "patronReturnedItem")
            settle(sb)
        else:
            sim(sb, "wms", "POST", "checkin", barcode=hrid, branch="128807")
            with clock_ahead(timedelta(days=1)):
                settle(sb)
        assert east.state(borrower_id) == "REQ_AWAITING_RETURN_SHIPPING"
        east.act(borrower_id, "shippedReturn")
        settle(sb)
        assert west.state(lender_id) == "RES_ITEM_RETURNED"
        west.act(lender_id, "supplierCheckOutOfReshare")
        settle(sb)
    finally:
        sim(sb, "reshare", "POST", "options", lender_on_received="RES_AWAITING_RETURN_SHIPPING")
    # Then both requests are complete, the temp item checked in, the lent item back on west's shelf, and
    # nothing waits for staff
    assert (east.state(borrower_id), west.state(lender_id)) == ("REQ_REQUEST_COMPLETE", "RES_COMPLETE")
    temp = [t for t in sim(sb, "wms", "GET", "temp-items?registry_id=128807") if t["barcode"] == hrid]
    assert [t["status"] for t in temp] == ["Unavailable"]
    assert sim(sb, "wms", "GET", f"items/{item}?registry_id=262626")["status"] == "Available"
    assert attention_for(borrower_id, "east") == [] and attention_for(lender_id, "west") == []
