"""Lives through the parts of mod-rs the simulator now plays as mod-rs has them (issue 13): a request busy
with network activity, and overdue loans (only the lender has a timer; its Overdue message moves the borrower).

- A busy window (networkStatus Waiting) delays the bridge's ReShare action; it is waited out as an outage is
  (the step is deferred with backoff) and never put to staff within the library's outage deadline, however
  many attempts it spans.
- An overdue loan, returned by the patron, ends right in both systems with ReShare first and with WMS first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from illbridge.errors import ReShareBusy, StepDeferred
from illbridge.models import StepName, StepStatus
from illbridge.workflow.engine import StepResult, run_step
from illbridge.workflow.services import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import create_pair, reconciliation_due, settle, ship_and_receive, sim

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
    # Given a loan due yesterday, received by the borrower and picked up by the patron
    pair = create_pair(sb, volumes=[{"item_barcode": item}], due_date=YESTERDAY.isoformat())
    borrower_id, lender_id, hrid = pair["borrower"]["id"], pair["lender"]["id"], pair["hrid"]
    east, west = ship_and_receive(sb, pair, [item])
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
