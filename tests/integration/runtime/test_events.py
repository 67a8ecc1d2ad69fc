"""The sample events (``events/``, built by ``sandbox.events``): one for every function, in the shapes
``sam local generate-event`` gives, routed by the template's rules to the queue they sample, and each one
driving its real function in the sandbox through a request pair's life.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox import events
from sandbox.demo import WEBHOOK_SECRETS
from sandbox.runtime import Sandbox
from sandbox.runtime.functions import HandlerError
from sandbox.template import load_template
from tests.e2e.conftest import Library, create_pair, sim
from tests.integration.runtime.conftest import take_all

ROOT = Path(__file__).resolve().parents[3]
RESOURCES = load_template(ROOT / "template.yaml")["Resources"]
FUNCTIONS = {k: v for k, v in RESOURCES.items() if v.get("Type") == "AWS::Serverless::Function"}
SAMPLES = sorted(str(p.relative_to(events.EVENTS_DIR)) for p in events.EVENTS_DIR.rglob("*.json"))


def function_of(sample: str) -> str:
    """The template function whose CodeUri directory names the sample's folder."""
    folder = sample.split("/")[0]
    [function] = [k for k, v in FUNCTIONS.items() if v["Properties"]["CodeUri"].rstrip("/").endswith(folder)]
    return function


AUTHORIZERS = {
    a["FunctionArn"]["Fn::GetAtt"][0]
    for a in load_template(ROOT / "template.yaml")["Globals"]["Api"]["Auth"]["Authorizers"].values()
    if "FunctionArn" in a
}


def trigger(function: str) -> str:
    if function in AUTHORIZERS:  # asked by API Gateway before the routes that name it; no Events of its own
        return "Authorizer"
    return {e["Type"] for e in FUNCTIONS[function]["Properties"]["Events"].values()}.pop()


# --- the corpus itself ----------------------------------------------------------------------------------


def test_the_corpus_is_exactly_what_the_generator_builds_on_sam_local_generate_event() -> None:
    # Given the generator, which starts every sample from `sam local generate-event` output
    built = events.build_all()
    # Then every file under events/ is one it builds, byte for byte (`python -m sandbox.events` rewrites them)
    assert sorted(built) == SAMPLES
    for name, event in built.items():
        assert (events.EVENTS_DIR / name).read_text() == events.render(event), name
    # and the shapes are generate-event's: the same keys at the top and in every record / request context
    proxy = events.sam_event("apigateway", "aws-proxy")
    record = events.sam_event("sqs", "receive-message")["Records"][0]
    scheduled = events.sam_event("cloudwatch", "scheduled-event")
    asked = events.sam_event("apigateway", "request-authorizer")
    for name, event in built.items():
        kind = trigger(function_of(name))
        if kind == "Authorizer":
            assert set(event) == set(asked) and set(event["requestContext"]) == set(asked["requestContext"])
        elif kind == "Api":
            assert set(event) == set(proxy), name
            assert set(event["requestContext"]) == set(proxy["requestContext"]), name
        elif kind == "SQS":
            assert all(set(r) == set(record) for r in event["Records"]), name
        else:
            assert kind == "ScheduleV2" and set(event) == set(scheduled) | {"version"}, name


def test_every_function_of_the_template_has_a_sample_for_its_trigger() -> None:
    covered = {function_of(name) for name in SAMPLES}
    assert covered == set(FUNCTIONS)
    for name in SAMPLES:
        function, event = function_of(name), events.load(name)
        props = FUNCTIONS[function]["Properties"]
        for spec in (props.get("Events") or {}).values():
            if spec["Type"] == "SQS":  # the record comes from that function's own queue
                queue = spec["Properties"]["Queue"]["Fn::GetAtt"][0]
                assert event["Records"][0]["eventSourceARN"].endswith(f"-{queue}"), name
            if spec["Type"] == "Api":
                routes = {
                    (s["Properties"]["Method"].upper(), s["Properties"]["Path"])
                    for s in props["Events"].values()
                }
                assert (event["httpMethod"], event["resource"]) in routes, name


def test_the_scheduled_samples_have_the_shape_the_sandbox_scheduler_delivers(sb: Sandbox) -> None:
    assert sb.scheduler is not None
    for schedule in sb.scheduler.schedules:
        sample = events.load(
            f"{Path(FUNCTIONS[schedule.function]['Properties']['CodeUri']).name}/scheduled.json"
        )
        delivered = schedule.event_payload(sb.stack.account_id, sb.region)  # type: ignore[union-attr]
        assert set(sample) == set(delivered)
        assert (sample["source"], sample["detail-type"], sample["detail"]) == (
            delivered["source"],
            delivered["detail-type"],
            delivered["detail"],
        )


@pytest.mark.parametrize("name", [n for n in SAMPLES if trigger(function_of(n)) == "SQS"])
def test_each_step_sample_is_routed_by_the_bus_to_exactly_its_own_queue(sb: Sandbox, name: str) -> None:
    # Given the bus event a step sample carries
    sqs, bus = sb.boto3_client("sqs"), sb.boto3_client("events")
    [record] = events.load(name)["Records"]
    body = json.loads(record["body"])
    # When it is put on the bridge's bus (moto evaluates the template's rules)
    answer = bus.put_events(
        Entries=[
            {
                "Source": body["source"],
                "DetailType": body["detail-type"],
                "Detail": json.dumps(body["detail"]),
                "EventBusName": sb.physical_name("BridgeBus"),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0
    # Then it lands in the queue the sample says it came from, and in no other step queue
    landed = {}
    for logical_id in ("BorrowReceived", "BorrowReturned", "LendShipped", "LendReturned", "RequestClosed"):
        got = take_all(sqs, sb.queue_url(f"{logical_id}Queue"))
        landed[logical_id] = [json.loads(m["Body"])["detail"] for m in got]
    expected = record["eventSourceARN"].rsplit("-", 1)[1].removesuffix("Queue")
    assert {k: len(v) for k, v in landed.items() if v} == {expected: 1}
    assert landed[expected][0] == body["detail"]


# --- the samples drive the real functions -----------------------------------------------------------------


def invoke_step(sb: Sandbox, name: str, **detail: Any) -> None:
    result = sb.invoke(function_of(name), events.with_detail(events.load(name), **detail))
    assert result == {"batchItemFailures": []}, (name, result)


def history(tenant: str, request_id: str) -> list[str]:
    from illbridge.wiring import current_services

    return [
        f"{h.step}:{h.operation}:{h.outcome.value}"
        for h in current_services().store.history(tenant, request_id)
    ]


def test_the_samples_drive_every_function_through_a_pair_s_life(sb: Sandbox) -> None:
    due = (datetime.now(UTC) + timedelta(days=21)).date().isoformat()
    pair = create_pair(sb, lender_state="RES_AWAIT_PICKING", due_date=due)
    borrower, lender, hrid = pair["borrower"]["id"], pair["lender"]["id"], pair["hrid"]
    item = "WEST-ITEM-0001"
    east, west = Library(sb, "east"), Library(sb, "west")
    live_east = {"request_id": borrower, "hrid": hrid}
    live_west = {"request_id": lender, "hrid": hrid}

    # the scheduled samples run the poller and the reconciler
    polled = sb.invoke("ReSharePollerFunction", events.load("reshare_poller/scheduled.json"))
    assert polled["failed"] == 0 and polled["polled"] == 4  # two libraries, both sides
    assert sb.invoke("WmsReconcilerFunction", events.load("wms_reconciler/scheduled.json"))["errors"] == []

    # lender ships -> the lend_shipped sample checks the item out to the borrowing library's account
    west.act(lender, "supplierCheckInToReshareAndSupplierMarkShipped", {"itemBarcodes": [{"itemId": item}]})
    invoke_step(sb, "lend_shipped/item-shipped.json", **live_west)
    [loan] = [ln for ln in sim(sb, "wms", "GET", "loans?registry_id=262626") if ln["item_barcode"] == item]
    assert (loan["patron_barcode"], loan["active"]) == ("ILL-EAST", True)

    # borrower receives -> the borrow_received sample creates the temp item and the patron's hold
    east.act(borrower, "requesterReceived")
    invoke_step(sb, "borrow_received/item-received.json", **live_east)
    [temp] = [t for t in sim(sb, "wms", "GET", "temp-items?registry_id=128807") if t["barcode"] == hrid]
    assert temp["request_id"] == f"ReShareRequest{hrid}"

    # the webhook samples: as stored they are stale (401); signed now and about this pair they are taken
    stale = sb.invoke("WebhookFunction", events.load("webhook/reshare-status-changed.json"))
    assert stale["statusCode"] == 401
    sample = events.load("webhook/reshare-status-changed.json")
    body = json.loads(sample["body"])
    body.update(oid=f"org.olf.rs.PatronRequest:{borrower}", payload={**body["payload"], "id": borrower})
    fresh = events.resign(events.with_body(sample, body), WEBHOOK_SECRETS["east"])
    answer = sb.invoke("WebhookFunction", fresh)
    assert answer["statusCode"] == 202, answer
    assert json.loads(answer["body"])["state"] == "REQ_CHECKED_IN"
    replay = sb.invoke("WebhookFunction", fresh)
    assert (replay["statusCode"], json.loads(replay["body"])["status"]) == (200, "duplicate")
    wms = events.resign(events.load("webhook/wms-check-in.json"), WEBHOOK_SECRETS["east"])
    assert sb.invoke("WebhookFunction", wms)["statusCode"] == 202

    # patron returns in ReShare -> the borrow_returned sample checks the temp item in
    east.act(borrower, "patronReturnedItem")
    invoke_step(sb, "borrow_returned/patron-returned.json", **live_east)
    assert sim(sb, "wms", "GET", f"items/{hrid}?registry_id=128807")["status"] != "On Loan"
    # and the WMS-first sample, arriving after ReShare already moved on, is a no-op that succeeds
    invoke_step(sb, "borrow_returned/wms-checked-in.json", item_barcode=hrid, request_id=borrower)

    # return shipped, lender checks it back -> the lend_returned samples check the lent item in at home
    east.act(borrower, "shippedReturn")
    west.act(lender, "supplierCheckOutOfReshare")
    invoke_step(sb, "lend_returned/request-complete.json", **live_west)
    assert sim(sb, "wms", "GET", f"items/{item}?registry_id=262626")["status"] == "Available"
    invoke_step(sb, "lend_returned/wms-checked-in.json", item_barcode=item, request_id=lender)

    # a second pair the patron cancels -> the request_closed sample ends it
    other = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0101"}])
    east.act(other["borrower"]["id"], "requesterCancel")  # west answers by itself (auto_responder_cancel on)
    assert west.state(other["lender"]["id"]) == "RES_CANCELLED"
    assert east.state(other["borrower"]["id"]) == "REQ_CANCELLED"
    invoke_step(sb, "request_closed/cancelled.json", request_id=other["borrower"]["id"], hrid=other["hrid"])

    # the authorizer sample: a cookie that is no StaffUserPool ID token is refused (API Gateway: 401)
    with pytest.raises(HandlerError) as refused:
        sb.invoke("OpsAuthorizerFunction", events.load("ops_authorizer/staff-page.json"))
    assert (refused.value.error_type, refused.value.error_message) == ("Exception", "Unauthorized")

    # every step ran once, and the histories say so
    story = history("east", borrower)
    assert sum(line.startswith("borrow_received:AcceptItem:success") for line in story) == 1
    assert any(line.startswith("borrow_returned:CheckInItem:success") for line in story)
    assert any(line.startswith("lend_shipped:CheckOutItem:success") for line in history("west", lender))
    assert any(line.startswith("request_closed:") for line in history("east", other["borrower"]["id"]))
