"""WMS check-in notices (POST /webhooks/wms) are claims: WMS confirms each through the check-in probe first.

A signed notice for an item WMS still has on loan to the patron changes nothing in either system and leaves a
history line; the same notice once the item is really checked in is acted on. A library without a probe
(``checkin_probe: none``) cannot confirm a notice: staff get one attention item, and ``illbridge retry`` after they
have looked in WMS finishes the step.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from illbridge import staff
from illbridge.models import StepName
from illbridge.wiring import current_services
from sandbox.demo import WEBHOOK_SECRETS
from sandbox.reshare.relay import signed_headers
from sandbox.runtime import Sandbox
from tests.e2e.conftest import create_pair, library_settings, settle, ship_and_receive, sim

EAST = "128807"  # east's registry id and main branch


def notify_check_in(sb: Sandbox, barcode: str) -> dict[str, Any]:
    """East's WMS feed says the item was checked in: a signed notice to the bridge's webhook."""
    body = json.dumps({"registry_id": EAST, "item_barcode": barcode, "branch": EAST})
    answer = requests.post(
        f"{sb.urls['gateway']}/webhooks/wms",
        data=body,
        headers=signed_headers(WEBHOOK_SECRETS["east"], body),
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def on_loan_to_the_patron(sb: Sandbox, item: str) -> tuple[dict[str, Any], Any]:
    """A received pair whose temp item staff checked in at the pickup branch and out to the patron."""
    sim(sb, "wms", "POST", "items", registry_id="262626", barcode=item, branch="262626", title="Notice")
    pair = create_pair(sb, volumes=[{"item_barcode": item, "call_number": "PQ4865.C6 N6"}])
    east, _ = ship_and_receive(sb, pair, [item])
    sim(sb, "wms", "POST", "checkin", barcode=pair["hrid"], branch=EAST)
    sim(sb, "wms", "POST", "checkout", item_barcode=pair["hrid"], patron_barcode="EAST-P-0001")
    settle(sb)
    return pair, east


def wms_view(sb: Sandbox, hrid: str) -> tuple[Any, ...]:
    [temp] = [t for t in sim(sb, "wms", "GET", f"temp-items?registry_id={EAST}") if t["barcode"] == hrid]
    loans = [
        (loan["patron_barcode"], loan["active"])
        for loan in sim(sb, "wms", "GET", f"loans?registry_id={EAST}")
        if loan["item_barcode"] == hrid
    ]
    return temp["status"], temp["branch"], sorted(loans)


def notice_lines(tenant: str, request_id: str) -> list[tuple[str, str]]:
    return [
        (h.outcome.value, h.summary)
        for h in current_services().store.history(tenant, request_id)
        if h.operation == "check-in notice: confirm with WMS"
    ]


def test_a_notice_for_an_item_still_on_loan_changes_nothing_and_a_true_one_is_acted_on(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    # Given a borrowed item WMS has on loan to the patron
    pair, east = on_loan_to_the_patron(sb, "WEST-ITEM-0811")
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    store = current_services().store
    before = (east.state(borrower_id), wms_view(sb, hrid), store.get_mapping("east", borrower_id))
    assert before[0] == "REQ_CHECKED_IN" and before[1][0] == "On Loan"
    # When a signed notice says it was checked in, and the bridge catches up
    assert notify_check_in(sb, hrid)["status"] == "accepted"
    settle(sb)
    # Then nothing changed in ReShare, in WMS, or in the bridge's mapping
    assert east.state(borrower_id) == "REQ_CHECKED_IN"
    assert wms_view(sb, hrid) == before[1]
    mapping = store.get_mapping("east", borrower_id)
    assert mapping is not None and mapping.open and not any(i.checked_in for i in mapping.items)
    # and the history says why, with no full barcode; no step ran, nobody is asked to do anything
    [(outcome, summary)] = notice_lines("east", borrower_id)
    assert outcome == "skipped" and "On Loan" in summary and hrid not in summary
    assert store.get_step("east", borrower_id, StepName.BORROW_WMS_RETURNED) is None
    assert [a for a in store.list_attention("east") if a.request_id == borrower_id] == []

    # When the patron really returns it at the desk, and the same kind of notice comes
    sim(sb, "wms", "POST", "checkin", barcode=hrid, branch=EAST)
    notify_check_in(sb, hrid)
    settle(sb)
    # Then WMS confirms it and ReShare is updated (the item was not checked in again by the bridge)
    assert east.state(borrower_id) == "REQ_AWAITING_RETURN_SHIPPING"
    assert [o for o, _ in notice_lines("east", borrower_id)] == ["skipped", "success"]
    mapping = store.get_mapping("east", borrower_id)
    assert mapping is not None and all(i.checked_in for i in mapping.items)


def test_without_a_probe_a_notice_goes_to_staff_who_confirm_it_with_ops_retry(sandbox: Sandbox) -> None:
    sb = sandbox
    with library_settings(sb, "east", wms={"checkin_probe": "none"}):
        # Given a library that has no check-in probe, and a borrowed item on loan to the patron
        pair, east = on_loan_to_the_patron(sb, "WEST-ITEM-0812")
        borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
        before = wms_view(sb, hrid)
        # When a signed notice says it was checked in
        notify_check_in(sb, hrid)
        settle(sb)
        # Then nothing changed in either system, and staff have one item saying it cannot be confirmed
        assert east.state(borrower_id) == "REQ_CHECKED_IN"
        assert wms_view(sb, hrid) == before
        store = current_services().store
        [item] = [a for a in store.list_attention("east") if a.request_id == borrower_id]
        assert item.step == StepName.BORROW_WMS_RETURNED.value
        assert "cannot be confirmed" in item.reason and hrid not in item.reason
        assert f"illbridge retry {hrid} --library east --step borrow_wms_returned" in item.fix
        [(outcome, _)] = notice_lines("east", borrower_id)
        assert outcome == "problem"
        # When staff see it checked in at WMS (the patron did return it) and retry the step
        sim(sb, "wms", "POST", "checkin", barcode=hrid, branch=EAST)
        staff.retry_request(current_services(), hrid, "east", StepName.BORROW_WMS_RETURNED)
        settle(sb)
        # Then ReShare is updated and the item leaves the list
        assert east.state(borrower_id) == "REQ_AWAITING_RETURN_SHIPPING"
        assert [a for a in store.list_attention("east") if a.request_id == borrower_id] == []


def test_a_notice_that_comes_during_a_wms_outage_is_confirmed_once_wms_is_back(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a borrowed item WMS was seen lending to the patron (an early notice, refuted), that the patron has
    # now really brought back to the desk
    pair, east = on_loan_to_the_patron(sb, "WEST-ITEM-0813")
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    notify_check_in(sb, hrid)
    settle(sb)
    sim(sb, "wms", "POST", "checkin", barcode=hrid, branch=EAST)
    dead = sb.queue_url("BorrowReturnedDeadLetterQueue")
    sqs = sb.boto3_client("sqs")
    # When WMS goes down for three hours (simulated) just as the notice comes: it cannot be confirmed yet
    sim(sb, "wms", "POST", "faults", operation="*", kind="http_error", status=503, times=-1)
    try:
        notify_check_in(sb, hrid)
        for _ in range(3):
            sb.drain()
            sb.advance(3600)
        # Then nothing happened, nothing was dead-lettered, and nobody was asked to do anything
        assert east.state(borrower_id) == "REQ_CHECKED_IN"
        assert (
            sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
            == "0"
        )
        store = current_services().store
        assert [a for a in store.list_attention("east") if a.request_id == borrower_id] == []
    finally:
        requests.delete(f"{sb.urls['wms']}/_sim/faults", timeout=10)
    # When WMS is back, Then within 15 minutes the notice is confirmed and ReShare updated
    for _ in range(15):
        sb.advance(60)
        sb.drain()
    assert east.state(borrower_id) == "REQ_AWAITING_RETURN_SHIPPING"
    assert [o for o, _ in notice_lines("east", borrower_id)] == ["skipped", "success"]


def test_a_notice_still_unconfirmable_after_the_library_s_deadline_goes_to_the_dead_letter_queue(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    with library_settings(sb, "east", outage_deadline_hours=1):
        # Given a library that waits one hour, and a notice that comes while WMS is down
        pair, _ = on_loan_to_the_patron(sb, "WEST-ITEM-0814")
        dead = sb.queue_url("BorrowReturnedDeadLetterQueue")
        sqs = sb.boto3_client("sqs")

        def dead_lettered() -> int:
            attributes = sqs.get_queue_attributes(
                QueueUrl=dead, AttributeNames=["ApproximateNumberOfMessages"]
            )
            return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

        before = dead_lettered()
        sim(sb, "wms", "POST", "faults", operation="*", kind="http_error", status=503, times=-1)
        try:
            notify_check_in(sb, pair["hrid"])
            # When WMS stays down past the deadline (put off within it, then failing, receive after receive)
            for _ in range(3):
                sb.drain()
                sb.advance(3600)
            sb.drain(wait_invisible=True)
            # Then the notice's message is in the step's dead-letter queue (whose alarm tells staff), once
            assert dead_lettered() == before + 1
        finally:
            requests.delete(f"{sb.urls['wms']}/_sim/faults", timeout=10)
            sb.redrive("BorrowReturnedDeadLetterQueue")  # as the runbook says, once WMS is back
            sb.drain(wait_invisible=True)
