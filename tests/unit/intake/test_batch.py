"""An SQS batch's records are handled on their own and side by side, and Lambda is told which ones failed."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest

from illbridge.intake.batch import BatchFailed, QueuedRecord, process_batch

ARN = "arn:aws:sqs:eu-west-1:123456789012:LendShippedQueue"


def sqs_event(*bodies: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"r-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": attributes or {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": ARN,
                "awsRegion": "eu-west-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def fails_on(word: str) -> Any:
    def handle(record: QueuedRecord) -> str:
        if word in record.body:
            raise RuntimeError(f"cannot take {record.body}")
        return record.body

    return handle


@pytest.mark.parametrize("workers", [1, 10])
def test_only_the_failed_records_are_named_in_their_order(workers: int) -> None:
    answer = process_batch(sqs_event("ok", "bad 1", "ok", "bad 2"), fails_on("bad"), workers=workers)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-3"}]}


@pytest.mark.parametrize("workers", [1, 10])
def test_a_batch_that_all_succeeds_names_none(workers: int) -> None:
    assert process_batch(sqs_event("ok", "ok"), fails_on("bad"), workers=workers) == {"batchItemFailures": []}


@pytest.mark.parametrize("workers", [1, 10])
def test_a_batch_that_all_fails_fails_the_invocation(workers: int) -> None:
    with pytest.raises(BatchFailed, match="All records failed") as failed:
        process_batch(sqs_event("bad 1", "bad 2"), fails_on("bad"), workers=workers)
    assert sorted(failed.value.failures) == ["m-0", "m-1"]
    assert all(isinstance(exc, RuntimeError) for exc in failed.value.failures.values())


def test_an_empty_batch_names_nothing() -> None:
    assert process_batch({"Records": []}, fails_on("bad")) == {"batchItemFailures": []}


def test_a_record_carries_its_body_queue_and_message_attributes() -> None:
    attributes = {
        "bridge-waits": {"stringValue": "3", "dataType": "Number"},
        "bridge-waiting-since": {"stringValue": "2026-11-30T10:00:00+00:00", "dataType": "String"},
    }
    seen: list[QueuedRecord] = []
    process_batch(sqs_event('{"a": 1}', attributes=attributes), seen.append)
    (record,) = seen
    assert (record.message_id, record.body, record.event_source_arn) == ("m-0", '{"a": 1}', ARN)
    assert record.message_attributes["bridge-waits"].string_value == "3"
    assert record.message_attributes["bridge-waits"].data_type == "Number"
    assert record.message_attributes.get("absent") is None


def test_the_records_run_side_by_side_each_in_the_invocations_context() -> None:
    # Given four records that each wait at a rendezvous of all four (one after another, the first would wait
    # until the safety net breaks it and fails), and a context variable set by the invocation
    request = contextvars.ContextVar("request", default="none")
    request.set("invocation-1")
    rendezvous = threading.Barrier(4)
    seen: list[tuple[str, str]] = []

    def handle(record: QueuedRecord) -> None:
        rendezvous.wait(60)  # a safety net only: the other records release it
        seen.append((record.message_id, request.get()))

    # When the batch is processed with up to ten workers
    answer = process_batch(sqs_event("a", "b", "c", "d"), handle, workers=10)
    # Then all four met (they ran at the same time), each saw the invocation's context, and none failed
    assert not rendezvous.broken
    assert sorted(seen) == [(f"m-{n}", "invocation-1") for n in range(4)]
    assert answer == {"batchItemFailures": []}


def test_one_worker_runs_the_records_one_after_another_in_order() -> None:
    order: list[str] = []
    process_batch(sqs_event("a", "b", "c"), lambda record: order.append(record.body), workers=1)
    assert order == ["a", "b", "c"]


def test_copies_in_a_batch_run_one_after_the_other_and_other_records_alongside() -> None:
    # Given a batch: a message, another one, and a copy of the first (SQS or the bus delivered it twice)
    order: list[str] = []
    lock = threading.Lock()
    alongside = threading.Barrier(2)  # the first message and the other one must be in flight together
    copy_started = threading.Event()

    def handle(record: QueuedRecord) -> str:
        with lock:
            order.append(f"start {record.message_id}")
        if record.message_id == "m-2":
            copy_started.set()
        if record.message_id in ("m-0", "m-1"):
            alongside.wait(30)  # a safety net only: the other record is what releases it
        if record.message_id == "m-0":
            copy_started.wait(1)  # a copy run alongside would start meanwhile; one run after cannot
        with lock:
            order.append(f"end {record.message_id}")
        if record.message_id == "m-2":
            raise RuntimeError("the copy fails on its own")
        return record.body

    # When it is processed
    answer = process_batch(sqs_event('{"n": 1}', '{"n": 2}', '{"n": 1}'), handle, workers=10)
    # Then the two messages overlapped (the barrier held), the copy began only after the first copy ended,
    # and the copy's failure is its own
    assert not alongside.broken
    assert order.index("start m-2") > order.index("end m-0")
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
