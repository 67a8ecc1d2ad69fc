"""No transition can be lost (issue 12, deliverable 1; issue 17: put on the bus first, then recorded as seen).

A lender ships; the bridge notices (by the poller, or by a signed ReShare webhook through the real function
handler) and must get ``ReShareRequestChanged RES_ITEM_SHIPPED`` onto the bus so ``lend_shipped`` checks the
item out in WMS. The bridge puts the event on the bus first and records the state as seen after (ReShare is
the durable record: a transition not recorded is listed again by the next poll, the cursor held at it). At
every point between "on the bus" and "recorded" a fault is injected, with the exception types botocore really
raises (``ClientError``, ``EndpointConnectionError``, ``ReadTimeoutError``, a partial ``FailedEntryCount``) or
the process dying (``Killed``: a BaseException, so no ``except Exception`` in the bridge, Powertools or the
sandbox catches it, and nothing after it runs, as when Lambda's runtime is killed). Then the fault is gone, the
next poll runs (and a webhook sender retries, as Standard Webhooks senders do), and the steps run:

- the transition reached the LendShipped queue exactly once, or, where the bus may already have had it when
  the fault struck (a read timeout after PutEvents was applied, a death or a failed record after PutEvents),
  twice with the same ``detail`` byte for byte, which the step's claim absorbs;
- WMS has exactly one loan of the item, the step succeeded at its first attempt, the outbox is empty and
  nothing is left on a queue or in a dead-letter queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from illbridge.models import StepName, StepStatus
from illbridge.store import keys
from illbridge.wiring import Services, current_services
from sandbox import events
from sandbox.demo import WEBHOOK_SECRETS
from sandbox.reshare.relay import reshare_event
from sandbox.runtime import HandlerError, Sandbox
from tests.e2e.conftest import Library, create_pair, settle, sim

pytestmark = pytest.mark.e2e
WEST_REGISTRY = "262626"


class Killed(BaseException):
    """The process dies here: nothing after this line runs, and no ``except Exception`` sees it."""


def client_error(operation: str, code: str, status: int) -> ClientError:
    """A ClientError as botocore raises it for an AWS error answer."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} (injected)"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4())},
        },
        operation,
    )


# --- the faults: each installs itself on the function's own services; ``True``: the bus may see it twice

Install = Callable[[Services, pytest.MonkeyPatch, str], None]


def _seen_update_fails(error: BaseException) -> Callable[[Services, pytest.MonkeyPatch, str], None]:
    """Recording the state as seen (the UpdateItem of its SEEN item, after the put) raises ``error``."""

    def install(services: Services, mp: pytest.MonkeyPatch, endpoint: str) -> None:
        table = services.store._table
        real = table.update_item

        def update_item(**kw: Any) -> Any:
            if kw["Key"]["sk"] == keys.SEEN_SK:
                raise error
            return real(**kw)

        mp.setattr(table, "update_item", update_item)

    return install


def killed_after_recording(services: Services, mp: pytest.MonkeyPatch, endpoint: str) -> None:
    # the poller moves its cursor next, the webhook takes its webhook-id next: die instead
    mp.setattr(services.store, "advance_cursor", _raise(Killed()))
    mp.setattr(services.store, "claim_webhook", _raise(Killed()))


def put_events_client_error(services: Services, mp: pytest.MonkeyPatch, endpoint: str) -> None:
    mp.setattr(services.bus.client, "put_events", _raise(client_error("PutEvents", "InternalException", 500)))


def put_events_unreachable(services: Services, mp: pytest.MonkeyPatch, endpoint: str) -> None:
    mp.setattr(services.bus.client, "put_events", _raise(EndpointConnectionError(endpoint_url=endpoint)))


def put_events_refuses_every_entry(services: Services, mp: pytest.MonkeyPatch, endpoint: str) -> None:
    mp.setattr(services.bus, "backoff_seconds", 0)

    def refuse(**kw: Any) -> dict[str, Any]:
        return {
            "FailedEntryCount": len(kw["Entries"]),
            "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} for _ in kw["Entries"]],
        }

    mp.setattr(services.bus.client, "put_events", refuse)


def put_events_applied_then_read_timeout(services: Services, mp: pytest.MonkeyPatch, endpoint: str) -> None:
    real = services.bus.client.put_events

    def applied_then_lost(**kw: Any) -> dict[str, Any]:
        real(**kw)
        raise ReadTimeoutError(endpoint_url=endpoint)

    mp.setattr(services.bus.client, "put_events", applied_then_lost)


def killed_after_put_events(services: Services, mp: pytest.MonkeyPatch, endpoint: str) -> None:
    real = services.bus.send

    def send_then_die(items: Any) -> Any:
        real(items)
        raise Killed()

    mp.setattr(services.bus, "send", send_then_die)


def put_events_refuses_the_entry_once(services: Services, mp: pytest.MonkeyPatch, endpoint: str) -> None:
    mp.setattr(services.bus, "backoff_seconds", 0)
    real = services.bus.client.put_events
    refused: list[int] = []

    def refuse_first(**kw: Any) -> dict[str, Any]:
        if refused:
            return dict(real(**kw))
        refused.append(len(kw["Entries"]))
        return {
            "FailedEntryCount": len(kw["Entries"]),
            "Entries": [
                {"ErrorCode": "ThrottlingException", "ErrorMessage": "injected"} for _ in kw["Entries"]
            ],
        }

    mp.setattr(services.bus.client, "put_events", refuse_first)


def _raise(error: BaseException) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail


FAULTS: dict[str, tuple[Install, bool]] = {
    "PutEvents: ClientError": (put_events_client_error, False),
    "PutEvents: EndpointConnectionError": (put_events_unreachable, False),
    "PutEvents: FailedEntryCount on every try": (put_events_refuses_every_entry, False),
    "PutEvents: FailedEntryCount, then taken on the retry": (put_events_refuses_the_entry_once, False),
    "PutEvents: applied, then ReadTimeoutError": (put_events_applied_then_read_timeout, True),
    "killed after PutEvents, before the state is recorded": (killed_after_put_events, True),
    "recording after PutEvents: UpdateItem ClientError": (
        _seen_update_fails(client_error("UpdateItem", "ThrottlingException", 400)),
        True,
    ),
    "recording after PutEvents: UpdateItem EndpointConnectionError": (
        _seen_update_fails(EndpointConnectionError(endpoint_url="http://dynamodb.invalid")),
        True,
    ),
    "killed after recording, before the cursor moves or the webhook-id is taken": (
        killed_after_recording,
        False,
    ),
}

# the faults after which the webhook's delivery is taken (202) at once; after the others it answers 503
WEBHOOK_TAKEN = {"PutEvents: FailedEntryCount, then taken on the retry"}


# --- helpers


def lend_shipped_messages(sb: Sandbox) -> list[dict[str, Any]]:
    """The details now waiting on the LendShipped queue, left there (received with visibility 0)."""
    sqs = sb.boto3_client("sqs")
    url = sb.queue_url("LendShippedQueue")
    count = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    bodies: dict[str, str] = {}
    while len(bodies) < count:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        ):
            bodies[message["MessageId"]] = message["Body"]
    return [json.loads(body)["detail"] for body in bodies.values()]


def queued_anywhere(sb: Sandbox) -> dict[str, int]:
    assert sb.resources is not None
    sqs = sb.boto3_client("sqs")
    found = {}
    for logical_id, queue in sb.resources.queues.items():
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        total = sum(int(v) for v in attributes.values())
        if total:
            found[logical_id] = total
    return found


def poll(sb: Sandbox) -> dict[str, Any]:
    return dict(sb.invoke("ReSharePollerFunction", events.load("reshare_poller/scheduled.json")))


def webhook_delivery(lender_id: str) -> dict[str, Any]:
    """A signed ReShare webhook delivery (API Gateway proxy event) about the lender's shipment."""
    event = events.with_body(
        events.load("webhook/reshare-status-changed.json"),
        reshare_event("west", lender_id, "The Name of the Rose", "RES_ITEM_SHIPPED", None),
    )
    webhook_id = f"msg_{uuid.uuid4().hex}"
    event["headers"]["webhook-id"] = webhook_id
    event["multiValueHeaders"]["webhook-id"] = [webhook_id]
    return events.resign(event, WEBHOOK_SECRETS["west"])


def a_shipment(sb: Sandbox) -> tuple[dict[str, Any], str]:
    """A pair whose lender is about to ship a real WMS item; the bridge has seen it so far."""
    barcode = f"WEST-NL-{uuid.uuid4().hex[:8].upper()}"
    sim(
        sb,
        "wms",
        "POST",
        "items",
        registry_id=WEST_REGISTRY,
        barcode=barcode,
        branch=WEST_REGISTRY,
        collection_type="circulating",
        call_number="PS3500 .N6",
        title="The Name of the Rose",
    )
    pair = create_pair(sb, volumes=[{"item_barcode": barcode}], lender_state="RES_AWAIT_SHIP")
    settle(sb)
    assert queued_anywhere(sb) == {}
    return pair, barcode


def loans(sb: Sandbox, barcode: str) -> list[dict[str, Any]]:
    return [
        loan
        for loan in sim(sb, "wms", "GET", f"loans?registry_id={WEST_REGISTRY}")
        if loan["item_barcode"] == barcode
    ]


# --- the test


@pytest.mark.parametrize("path", ["poller", "webhook"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_between_seen_and_on_the_bus_loses_nothing(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, fault: str, path: str
) -> None:
    sb = sandbox
    services = current_services()
    install, may_repeat = FAULTS[fault]
    pair, barcode = a_shipment(sb)
    lender = pair["lender"]["id"]
    # When the lender ships and the bridge notices while the fault strikes
    Library(sb, "west").act(lender, "supplierMarkShipped")
    delivery = webhook_delivery(lender)
    with monkeypatch.context() as mp:
        install(services, mp, sb.urls["moto"])
        try:
            if path == "poller":
                poll(sb)
            else:
                answer = sb.invoke("WebhookFunction", delivery)
                # the sender is told to retry (nothing recorded: 503), or that the bridge has the transition (on
                # the bus and recorded: 202); never 202 for a transition the bridge has not recorded
                taken = fault in WEBHOOK_TAKEN
                assert answer["statusCode"] == (202 if taken else 503), answer
                assert "Error" not in answer["body"] and "injected" not in answer["body"], answer
        except (HandlerError, Killed):
            pass  # the run failed (Lambda retries it, the next poll comes anyway) or the process died
    # Then nothing is lost: the sender retries (same webhook-id) and the next poll runs
    if path == "webhook":
        again = sb.invoke("WebhookFunction", delivery)
        assert again["statusCode"] in (200, 202), again
    summary = poll(sb)
    assert summary["failed"] == 0, summary
    assert services.store.pending_events("west") == []
    details = lend_shipped_messages(sb)
    assert details, "the transition never reached the bus"
    assert {(d["request_id"], d["state"]) for d in details} == {(lender, "RES_ITEM_SHIPPED")}
    if may_repeat:
        # at most the same event again, identical, which the step's claim absorbs
        assert len(details) <= 2 and all(d == details[0] for d in details), details
    else:
        assert len(details) == 1, details
    # and when the steps run, the item is checked out exactly once, at the step's first attempt
    settle(sb)
    assert [loan["patron_barcode"] for loan in loans(sb, barcode)] == ["ILL-EAST"]
    step = services.store.get_step("west", lender, StepName.LEND_SHIPPED)
    assert step is not None and (step.status, step.attempt) == (StepStatus.SUCCEEDED, 1), step
    assert queued_anywhere(sb) == {}


def test_a_poll_and_a_webhook_that_both_put_a_transition_make_one_loan(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (two polls never overlap: the poller's reserved concurrency is 1, and the sandbox makes a second
    # invocation wait as Lambda throttles it; tests/unit/intake/test_put_then_record.py races two observers)
    sb = sandbox
    services = current_services()
    pair, barcode = a_shipment(sb)
    lender = pair["lender"]["id"]
    # Given the lender ships, and the ReShare webhook has put the transition on the bus; just before it records
    # the state as seen, a poll runs (the sandbox runs functions with their own environment variables one at a
    # time, so the interleaving is staged: the poll runs inside the webhook's recording)
    Library(sb, "west").act(lender, "supplierMarkShipped")
    real = services.store.record_state_change
    polls: list[dict[str, Any]] = []
    staged: list[str] = []

    def poll_first(tenant: str, request_id: str, *args: Any, **kwargs: Any) -> Any:
        if request_id == lender and not staged:
            staged.append(request_id)  # once: the poll's own recording goes straight through
            polls.append(poll(sb))  # the poll reads the state as not yet seen, puts it and records it
        return real(tenant, request_id, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(services.store, "record_state_change", poll_first)
        answer = sb.invoke("WebhookFunction", webhook_delivery(lender))
    # Then both put it: the transition is on the bus twice, once from each, and neither failed
    assert answer["statusCode"] == 202, answer
    assert polls and polls[0]["failed"] == 0, polls
    details = lend_shipped_messages(sb)
    assert {(d["request_id"], d["state"]) for d in details} == {(lender, "RES_ITEM_SHIPPED")}
    assert sorted(d["source"] for d in details) == ["poller", "webhook"], details
    # and when the steps run, the item is checked out exactly once, at the step's first attempt: one step
    # effect, from the step's claim alone (the two details differ in ``source``, so nothing keyed on the
    # detail, such as an idempotency record, could have dropped the copy)
    assert details[0] != details[1]
    settle(sb)
    assert [loan["patron_barcode"] for loan in loans(sb, barcode)] == ["ILL-EAST"]
    step = services.store.get_step("west", lender, StepName.LEND_SHIPPED)
    assert step is not None and (step.status, step.attempt) == (StepStatus.SUCCEEDED, 1), step
    assert queued_anywhere(sb) == {}
    # and the next poll puts nothing more
    assert poll(sb)["failed"] == 0
    assert lend_shipped_messages(sb) == []
