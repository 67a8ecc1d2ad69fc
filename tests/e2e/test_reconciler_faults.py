"""The WMS reconciler when WMS cannot answer: the run waits the outage out (no failed run, nothing in
ScheduleDeadLetterQueue; the outage metric and its one alarm tell staff), the request's history says why, and
the check is made again once WMS is back."""

from __future__ import annotations

import pytest
import requests

from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import create_pair, reconciliation_due, ship_and_receive, sim

pytestmark = pytest.mark.e2e


def history(tenant: str, request_id: str) -> list[str]:
    store = current_services().store
    return [f"{h.step}:{h.operation}:{h.outcome.value}" for h in store.history(tenant, request_id)]


def test_wms_down_during_reconciliation_is_waited_out_and_caught_up(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a borrowed item on the hold shelf: its temp item is one reconciliation watches
    pair = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0010"}])
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    ship_and_receive(sb, pair, ["WEST-ITEM-0010"])
    store = current_services().store
    mapping = store.get_mapping("east", borrower_id)
    assert mapping is not None and mapping.next_check_at is not None
    due = mapping.next_check_at

    # When WMS answers every LookupUser with 503 and the reconciler's schedule fires (two hours on)
    sim(sb, "wms", "POST", "faults", operation="LookupUser", kind="http_error", status=503, times=1000)
    try:
        with reconciliation_due():
            run = sb.run_schedule("WmsReconcilerFunction")
    finally:
        requests.delete(f"{sb.urls['wms']}/_sim/faults", timeout=10)

    # Then the run waits the outage out: it ends without an error (so nothing in ScheduleDeadLetterQueue, no
    # retries), says which request is waiting, and counts in the outage metric (OutageAlarm)
    assert run.ok and not run.dead_lettered and run.attempts == 1, run.error
    assert any(hrid in waiting for waiting in run.result["waiting"]), run.result
    assert run.result["errors"] == []
    sqs = sb.boto3_client("sqs")
    url = sb.queue_url("ScheduleDeadLetterQueue")
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
    # and the request's history says why, while its check stays due (WMS was only unavailable)
    assert "reconcile:LookupUser (reconciliation):error" in history("east", borrower_id)
    mapping = store.get_mapping("east", borrower_id)
    assert mapping is not None and mapping.next_check_at == due

    # When WMS is back, Then the next run checks it and schedules the next check
    with reconciliation_due():
        again = sb.run_schedule("WmsReconcilerFunction")
    assert again.ok, again.error
    mapping = store.get_mapping("east", borrower_id)
    assert mapping is not None and mapping.next_check_at is not None and mapping.next_check_at > due
