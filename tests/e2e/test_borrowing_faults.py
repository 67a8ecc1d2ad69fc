"""Borrowing under faults, end to end in the sandbox (issue 6, the last two "Done when" points).

1. Exactly once: every event the bridge puts on its step queues is held back and then delivered twice, in
   shuffled order (across events and queues, each message processed as it arrives), while the WMS simulator
   applies the first AcceptItem and drops its answer. WMS still ends with exactly one temp item and one hold per
   volume, both ReShare requests end right, nothing needs staff, and the history shows the bridge verifying
   (LookupUser: the patron's requested items) before it sent anything again.
   - picked up: staff need the temp items in WMS to check them in and out for the patron, so that life is
     delivered in two stages, (ship, receive) and (patron returns, return shipping, lender completes);
   - sent straight back while the bridge was behind: the whole life at once, the returned/closing events of
     both sides before the received/shipped ones. The bridge then sees the request already over: it creates
     no temp item and checks nothing out (rather than leaving a hold, or a lent item on loan, for good).
2. Clear attention items: a pickup location without a branch mapping, and a patron WMS does not know, each end
   as one attention item (what is wrong, what to fix, how to retry), with nothing created in WMS, the step
   FAILED (not crashed), nothing in a dead-letter queue or left on a queue; after staff fix the cause (the
   library's pickup_branches, the patron in WMS), `illbridge retry` creates the temp item and hold.
"""

from __future__ import annotations

import contextlib
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from illbridge.announce import subject
from illbridge.models import AttentionItem, StepName, StepStatus
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import Library, create_pair, library_settings, settle, ship_and_receive, sim
from tests.staff_cli import illbridge, illbridge_json

pytestmark = pytest.mark.e2e
DUE = (datetime.now(UTC) + timedelta(days=21)).date()
EAST_REGISTRY = "128807"

# --- helpers ------------------------------------------------------------------------------------------------


def temp_items(sb: Sandbox, hrid: str) -> list[dict[str, Any]]:
    wanted = f"ReShareRequest{hrid}"
    return [
        t
        for t in sim(sb, "wms", "GET", f"temp-items?registry_id={EAST_REGISTRY}")
        if t["request_id"] == wanted
    ]


def holds_for(sb: Sandbox, barcodes: list[str]) -> list[dict[str, Any]]:
    return [
        h
        for h in sim(sb, "wms", "GET", f"holds?registry_id={EAST_REGISTRY}")
        if h["item_barcode"] in barcodes
    ]


def attention_for(tenant: str, request_id: str) -> list[AttentionItem]:
    return [a for a in current_services().store.list_attention(tenant) if a.request_id == request_id]


def history(tenant: str, request_id: str) -> list[str]:
    store = current_services().store
    return [f"{h.step}:{h.operation}:{h.outcome.value}" for h in store.history(tenant, request_id)]


def dead_letters(sb: Sandbox) -> dict[str, list[str]]:
    """Every message sitting in a dead-letter queue (peeked: left visible), by queue."""
    assert sb.resources is not None
    sqs = sb.boto3_client("sqs")
    found: dict[str, list[str]] = {}
    for logical_id, queue in sb.resources.queues.items():
        if not logical_id.endswith("DeadLetterQueue"):
            continue
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if sum(int(v) for v in attributes.values()):
            messages = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            found[logical_id] = [m["Body"] for m in messages.get("Messages") or []] or ["(in flight)"]
    return found


def step_queue_depth(sb: Sandbox) -> int:
    sqs = sb.boto3_client("sqs")
    total = 0
    for poller in sb.pollers.values():
        attributes = sqs.get_queue_attributes(
            QueueUrl=poller.source.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        total += sum(int(v) for v in attributes.values())
    return total


class Interceptor:
    """Stands between the bus and the step functions: takes every message off the step queues, then delivers
    each one twice, in shuffled order, one at a time (so the order holds across queues too)."""

    def __init__(self, sb: Sandbox, seed: int) -> None:
        self.sb = sb
        self.rng = random.Random(seed)
        self.held: list[tuple[str, str]] = []  # (queue logical id, body)
        self.pollers = {p.source.queue_logical_id: p for p in sb.pollers.values() if p.source.enabled}

    def capture(self) -> None:
        """Let the bridge notice what happened (poller, reconciler) and hold back what it queued."""
        for schedule in ("ReSharePollerFunction", "WmsReconcilerFunction"):
            self.sb.run_schedule(schedule)
            self._take()

    def _take(self) -> None:
        sqs = self.sb.boto3_client("sqs")
        for queue_id, poller in self.pollers.items():
            while True:
                answer = sqs.receive_message(
                    QueueUrl=poller.source.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
                )
                messages = answer.get("Messages") or []
                if not messages:
                    break
                for message in messages:
                    self.held.append((queue_id, message["Body"]))
                    sqs.delete_message(
                        QueueUrl=poller.source.queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )

    def states(self) -> list[tuple[str, str, str]]:
        """(queue, side, state or detail-type) of each held event."""
        return [_describe(queue_id, body) for queue_id, body in self.held]

    def deliver_twice_shuffled(self, *, later_first: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
        """Each held message twice, shuffled, each processed as it arrives; then retried ones come back.

        ``later_first``: states whose first delivery must come after some later state of its request's
        side (the seeded shuffle is drawn again until it does). Returns the order delivered.
        """
        order = self.held * 2
        self.held = []
        for _ in range(1000):
            self.rng.shuffle(order)
            if all(_comes_late(order, state) for state in later_first):
                break
        else:
            raise AssertionError(f"no shuffle puts {later_first} late")
        sqs = self.sb.boto3_client("sqs")
        for queue_id, body in order:
            poller = self.pollers[queue_id]
            sqs.send_message(QueueUrl=poller.source.queue_url, MessageBody=body)
            poller.poll_once(batching_window=False)
        self.sb.drain(wait_invisible=True)
        return [_describe(queue_id, body) for queue_id, body in order]


def _describe(queue_id: str, body: str) -> tuple[str, str, str]:
    envelope = json.loads(body)
    detail = envelope["detail"]
    return queue_id, detail.get("side", ""), detail.get("state") or envelope["detail-type"]


def _comes_late(order: list[tuple[str, str]], state: str) -> bool:
    """Some other event of the same side arrives before the first delivery of ``state``."""
    described = [_describe(q, b) for q, b in order]
    side = next(d[1] for d in described if d[2] == state)
    first_of_side = next(d for d in described if d[1] == side)
    return first_of_side[2] != state


# --- 1. exactly once under duplicates, shuffling and a lost answer ----------------------------------------

LIVES = {
    # the patron picks it up: staff need the temp items in WMS, so the life is delivered in two stages, and
    # the first AcceptItem's answer is lost
    "picked-up": {1: ["WEST-ITEM-0001"], 2: ["WEST-ITEM-0002", "WEST-ITEM-0003"]},
    # received and sent straight back while the bridge was behind: the whole life is delivered at once, the
    # returned/closing events of both sides before the received/shipped ones
    "sent-straight-back": {1: ["WEST-ITEM-0006"], 2: ["WEST-ITEM-0007", "WEST-ITEM-0008"]},
}


@pytest.mark.parametrize("life", list(LIVES))
@pytest.mark.parametrize("volumes", [1, 2], ids=["single-volume", "multi-volume"])
def test_every_event_twice_shuffled_and_a_lost_accept_item_answer(
    sandbox: Sandbox, volumes: int, life: str
) -> None:
    sb = sandbox
    items = LIVES[life][volumes]
    pair = create_pair(
        sb,
        volumes=[{"item_barcode": b, "call_number": f"QA76 .F{i}"} for i, b in enumerate(items)],
        due_date=DUE.isoformat(),
    )
    borrower_id, lender_id, hrid = pair["borrower"]["id"], pair["lender"]["id"], pair["hrid"]
    east, west = Library(sb, "east"), Library(sb, "west")
    expected = [hrid] if volumes == 1 else [f"{hrid}-{b[-4:]}" for b in items]
    bridge = Interceptor(sb, seed=6000 + volumes)
    settle(sb)  # nothing of earlier tests is left on the queues

    # The lender ships, the borrower receives (the bridge notices, but its steps do not run yet)
    west.act(
        lender_id,
        "supplierCheckInToReshareAndSupplierMarkShipped",
        {"itemBarcodes": [{"itemId": b} for b in items]},
    )
    bridge.capture()
    east.act(borrower_id, "requesterReceived", {"note": "arrived"})
    bridge.capture()
    assert ("BorrowReceivedQueue", "borrowing", "REQ_CHECKED_IN") in bridge.states()
    assert ("LendShippedQueue", "lending", "RES_ITEM_SHIPPED") in bridge.states()

    if life == "picked-up":
        # When WMS applies the first AcceptItem but its answer is lost, and every event comes twice, shuffled
        sim(sb, "wms", "POST", "faults", operation="AcceptItem", kind="drop_response", times=1)
        bridge.deliver_twice_shuffled()
        assert not [f for f in sim(sb, "wms", "GET", "faults") if f["operation"] == "AcceptItem"], "unused"
        # Then WMS holds exactly one temp item and one Pending hold per volume
        assert sorted(t["barcode"] for t in temp_items(sb, hrid)) == sorted(expected)
        holds = holds_for(sb, expected)
        assert sorted(h["item_barcode"] for h in holds) == sorted(expected)
        assert {(h["status"], h["pickup_branch"]) for h in holds} == {("Pending", EAST_REGISTRY)}
        # and staff check each temp item in at the pickup branch and out to the patron
        for barcode in expected:
            sim(sb, "wms", "POST", "checkin", barcode=barcode, branch=EAST_REGISTRY)
            sim(sb, "wms", "POST", "checkout", item_barcode=barcode, patron_barcode="EAST-P-0001")

    # The patron returns it (or staff send it straight back), it is shipped back, the lender completes
    east.act(borrower_id, "patronReturnedItem")
    bridge.capture()
    east.act(borrower_id, "shippedReturn")
    bridge.capture()
    west.act(lender_id, "supplierCheckOutOfReshare")
    bridge.capture()
    held = bridge.states()
    assert ("BorrowReturnedQueue", "borrowing", "REQ_AWAITING_RETURN_SHIPPING") in held
    assert ("RequestClosedQueue", "borrowing", "REQ_REQUEST_COMPLETE") in held
    assert ("LendReturnedQueue", "lending", "RES_COMPLETE") in held
    late = ("REQ_CHECKED_IN", "RES_ITEM_SHIPPED") if life == "sent-straight-back" else ()
    delivered = bridge.deliver_twice_shuffled(later_first=late)
    assert sorted(delivered) == sorted(held * 2)
    settle(sb)

    # Then both ReShare requests ended right, the lent items are back on the shelf, the mapping is closed
    assert east.state(borrower_id) == "REQ_REQUEST_COMPLETE"
    assert west.state(lender_id) == "RES_COMPLETE"
    for barcode in items:
        assert sim(sb, "wms", "GET", f"items/{barcode}?registry_id=262626")["status"] == "Available"
    # and nobody needs to do anything, nothing is stuck or dead
    assert attention_for("east", borrower_id) == [] and attention_for("west", lender_id) == []
    assert dead_letters(sb) == {}
    assert step_queue_depth(sb) == 0
    store = current_services().store
    mapping = store.get_mapping("east", borrower_id)
    entries = store.history("east", borrower_id)
    story = [f"{h.step}:{h.operation}:{h.outcome.value}" for h in entries]

    if life == "sent-straight-back":
        # the bridge saw the request already over: no temp item, no hold, no check-out at the lender
        assert temp_items(sb, hrid) == [] and holds_for(sb, expected) == []
        assert mapping is None
        assert "borrow_received:nothing to create:skipped" in story, story
        assert "lend_shipped:nothing to check out:skipped" in history("west", lender_id)
        return

    # Then still exactly one temp item and one hold per volume, every temp item checked in, the hold filled
    created = temp_items(sb, hrid)
    assert sorted(t["barcode"] for t in created) == sorted(expected)
    assert {t["status"] for t in created} == {"Unavailable"}
    holds = holds_for(sb, expected)
    assert sorted(h["item_barcode"] for h in holds) == sorted(expected)
    assert {h["status"] for h in holds} == {"Filled"}
    assert mapping is not None and not mapping.open
    assert all(i.created_in_wms and i.checked_in for i in mapping.items)
    # And the history shows the unknown outcome, then a verification before anything was sent again
    assert story.count("borrow_received:AcceptItem:unknown") == 1
    unknown = story.index("borrow_received:AcceptItem:unknown")
    verified = [
        n
        for n, h in enumerate(entries)
        if (h.operation == "LookupUser (verify before re-sending)" and "already in WMS" in h.summary)
        or (h.operation == "AcceptItem" and "Duplicate Item" in h.summary)
    ]
    assert verified and verified[0] > unknown, story
    # one AcceptItem answered per volume, but for the one whose answer was lost (found by the verification)
    assert story.count("borrow_received:AcceptItem:success") == volumes - 1 + (
        "Duplicate Item" in entries[verified[0]].summary
    )


# --- 2. clear attention items -----------------------------------------------------------------------------


CASES: dict[str, dict[str, Any]] = {
    "unmapped-pickup-location": {
        "pair": {"pickup_location_slug": "east-annex", "patron_barcode": "EAST-P-0001"},
        "item": "WEST-ITEM-0004",
        "reason": ["pickup location", "east-annex", "has no WMS branch"],
        "fix": ["pickup_branches"],
        "looked_up": None,  # found out before anything was asked of WMS
    },
    "unknown-patron": {
        "pair": {"pickup_location_slug": "east-main", "patron_barcode": "EAST-P-9999"},
        "item": "WEST-ITEM-0005",
        "reason": ["WMS does not know patron", "9999"],  # the barcode, masked as every history line has it
        "fix": ["correct the patron barcode in ReShare", "add the patron to WMS"],
        "looked_up": "borrow_received:SCIM patron look-up:problem",
    },
}


def notices(sb: Sandbox, hrid: str) -> list[dict[str, Any]]:
    """What staff's attention topic got about ``hrid`` so far (its SQS subscription in the sandbox)."""
    sqs = sb.boto3_client("sqs")
    url = sb.resources.inboxes["AttentionTopic"]  # type: ignore[union-attr]
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []
        if not messages:
            break
        for message in messages:
            _NOTICES.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [n for n in _NOTICES if n.get("Subject", "").startswith(f"{hrid}: ")]


_NOTICES: list[dict[str, Any]] = []


@pytest.mark.parametrize("case", list(CASES))
def test_a_request_wms_cannot_take_becomes_one_clear_attention_item(sandbox: Sandbox, case: str) -> None:
    sb = sandbox
    spec = CASES[case]
    pair = create_pair(sb, volumes=[{"item_barcode": spec["item"], "call_number": "PQ1 .A"}], **spec["pair"])
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    east, _ = ship_and_receive(sb, pair, [spec["item"]])

    # Then exactly one attention item, saying what is wrong, what to fix and how to retry
    [item] = attention_for("east", borrower_id)
    assert item.step == StepName.BORROW_RECEIVED.value and item.hrid == hrid
    for words in spec["reason"]:
        assert words.lower() in item.reason.lower(), item.reason
    for words in spec["fix"]:
        assert words.lower() in item.fix.lower(), item.fix
    retry = f"illbridge retry {hrid} --library east --step borrow_received"
    assert item.retry == retry
    assert "Traceback" not in item.reason + item.fix
    # the staff CLI lists the same single item
    listed = [a for a in illbridge_json("attention", "--library", "east") if a["request_id"] == borrower_id]
    assert [(a["reason"], a["fix"], a["retry"]) for a in listed] == [(item.reason, item.fix, item.retry)]
    # nothing was created in WMS (the problem is found before any AcceptItem), and the history says why
    assert temp_items(sb, hrid) == [] and holds_for(sb, [hrid]) == []
    store = current_services().store
    mapping = store.get_mapping("east", borrower_id)
    assert mapping is None or not any(i.created_in_wms for i in mapping.items)
    story = history("east", borrower_id)
    assert not any("AcceptItem" in line for line in story), story
    if spec["looked_up"]:
        assert spec["looked_up"] in story
    assert story[-1] == "borrow_received:attention raised:problem", story
    # the step FAILED (handled, not crashed), no message is dead or left in flight: nothing silently dropped
    record = store.get_step("east", borrower_id, StepName.BORROW_RECEIVED)
    assert record is not None and record.status == StepStatus.FAILED and record.attempt == 1
    assert dead_letters(sb) == {}
    assert step_queue_depth(sb) == 0
    assert east.state(borrower_id) == "REQ_CHECKED_IN"

    # When staff retry before fixing anything, Then the step runs again and fails the same way: still one item
    code, said = illbridge("retry", hrid, "--library", "east", "--step", "borrow_received", "--wait", "0")
    assert code == 0 and "borrow_received released" in said, said
    settle(sb)
    assert [a.reason for a in attention_for("east", borrower_id)] == [item.reason]
    assert history("east", borrower_id).count("borrow_received:attention raised:problem") == 2
    # and staff were told once, on the attention topic: "<hrid>: <reason>", the fix and the retry in the body;
    # the repeat of the same failure sent nothing more
    [notice] = notices(sb, hrid)
    assert notice["Subject"] == subject(item) and subject(item).startswith(f"{hrid}: {item.reason[:40]}")
    assert item.fix in notice["Message"] and item.retry in notice["Message"]

    # When staff fix the cause and run the retry (again within the hour: it is not taken for a duplicate)
    if case == "unmapped-pickup-location":
        fixed: contextlib.AbstractContextManager[None] = library_settings(
            sb, "east", pickup_branches={"east-annex": "262630"}
        )
        branch = "262630"
    else:
        sim(
            sb,
            "wms",
            "POST",
            "patrons",
            registry_id=EAST_REGISTRY,
            barcode="EAST-P-9999",
            expires="2030-12-31",
        )
        fixed, branch = contextlib.nullcontext(), EAST_REGISTRY
    with fixed:
        code, said = illbridge("retry", hrid, "--step", "borrow_received", "--wait", "0")
        assert code == 0 and "borrow_received released" in said, said
        settle(sb)

    # Then the temp item and its Pending hold exist, at the right branch, and the attention item is resolved
    [temp] = temp_items(sb, hrid)
    assert temp["barcode"] == hrid
    [hold] = holds_for(sb, [hrid])
    assert (hold["status"], hold["pickup_branch"], hold["patron_barcode"]) == (
        "Pending",
        branch,
        spec["pair"]["patron_barcode"],
    )
    assert attention_for("east", borrower_id) == []
    record = store.get_step("east", borrower_id, StepName.BORROW_RECEIVED)
    assert record is not None and record.status == StepStatus.SUCCEEDED
    assert history("east", borrower_id).count("borrow_received:AcceptItem:success") == 1
    assert dead_letters(sb) == {}
