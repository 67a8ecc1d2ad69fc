"""Execution environments: each concurrent invocation of a function runs in one of its own (its own handler
module and module globals), free environments are reused, and the handler replaced on ``spec.module`` is the
handler of every environment."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

import illbridge.intake.queue as step_queue
from illbridge.errors import BadInput
from illbridge.models import StepStatus
from illbridge.workflow.engine import StepResult
from sandbox.runtime import HandlerError, Sandbox

BLOCKING = "block until the other batch is done"
# a real bridge event (the lend_shipped sample): it parses, so its record is processed
VALID = json.loads(
    (Path(__file__).resolve().parents[3] / "events/lend_shipped/item-shipped.json").read_text()
)["Records"][0]["body"]


def sqs_event(sb: Sandbox, queue: str, bodies: list[str]) -> dict[str, Any]:
    arn = f"arn:aws:sqs:eu-west-1:123456789012:{sb.physical_name(queue)}"
    return {
        "Records": [
            {
                "messageId": f"{queue}-{n}-{body[:5]}",
                "receiptHandle": f"handle-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "eu-west-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def failures(answer: Any) -> list[str]:
    return sorted(f["itemIdentifier"] for f in answer["batchItemFailures"])


def test_two_overlapping_batches_of_one_function_keep_their_own_failures(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the real LendShipped handler (its batch of records, intake.batch), where a record that parses succeeds
    # (the step itself is replaced: only the batch bookkeeping is under test), one that does not fails, and
    # one record of batch A stays in the middle of being processed until batch B has been processed
    a_is_processing, b_is_done = threading.Event(), threading.Event()

    def step_succeeds(route: Any, event: Any) -> StepResult:
        return StepResult(StepStatus.SUCCEEDED)

    monkeypatch.setattr(step_queue, "run_route", step_succeeds)
    read_event = step_queue.read_event

    def slow_read_event(body: str) -> Any:
        if body == BLOCKING:
            a_is_processing.set()
            b_is_done.wait(60)  # a safety net only: B's end is what releases it
            raise BadInput("not a bridge event: " + body)
        return read_event(body)

    monkeypatch.setattr(step_queue, "read_event", slow_read_event)
    batch_a = sqs_event(sb, "LendShippedQueue", [VALID, "not json A", BLOCKING])
    batch_b = sqs_event(sb, "LendShippedQueue", ["not json B", VALID])
    answers: dict[str, Any] = {}
    errors: list[BaseException] = []

    def invoke_a() -> None:
        try:
            answers["A"] = sb.invoke("LendShippedFunction", batch_a)
        except BaseException as exc:
            errors.append(exc)
            a_is_processing.set()

    # When A starts, and B is invoked and answered while A is still processing its second record
    thread = threading.Thread(target=invoke_a)
    thread.start()
    assert a_is_processing.wait(60) and not errors
    answers["B"] = sb.invoke("LendShippedFunction", batch_b)
    b_is_done.set()
    thread.join(60)
    # Then each batch reports exactly its own failed records (none is lost, so none would be deleted)
    assert not errors
    assert failures(answers["A"]) == sorted(r["messageId"] for r in batch_a["Records"] if r["body"] != VALID)
    assert failures(answers["B"]) == sorted(r["messageId"] for r in batch_b["Records"] if r["body"] != VALID)
    # and the two ran in two environments of the function, each with its own handler module
    environments = sb.function("LendShippedFunction").environments
    assert len(environments) >= 2
    assert len({id(module) for module in environments}) == len(environments)
    assert len({id(vars(module)["_handle"]) for module in environments}) == len(environments)


def test_a_free_environment_is_reused_rather_than_a_new_one_made(sb: Sandbox) -> None:
    # Given a function invoked once
    spec = sb.function("RequestClosedFunction")
    batch = sqs_event(sb, "RequestClosedQueue", ["not json", "nor this"])
    with pytest.raises(HandlerError, match="All records failed"):
        sb.invoke("RequestClosedFunction", batch)
    made = len(spec.environments)
    # When it is invoked again, one invocation at a time
    for _ in range(3):
        with pytest.raises(HandlerError, match="All records failed"):
            sb.invoke("RequestClosedFunction", batch)
    # Then no new environment was made (warm starts)
    assert len(spec.environments) == made == 1


def test_a_handler_replaced_on_the_function_module_runs_in_every_environment(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function with two environments (two overlapping invocations made the second)
    spec = sb.function("BorrowReceivedFunction")
    inside, release = threading.Event(), threading.Event()

    def slow(event: Any, context: Any) -> str:
        inside.set()
        release.wait(60)
        return "slow"

    monkeypatch.setattr(spec.module, "handler", slow)
    thread = threading.Thread(target=sb.invoke, args=("BorrowReceivedFunction", {}))
    thread.start()
    assert inside.wait(60)
    # When a test replaces the handler while one environment is busy
    monkeypatch.setattr(spec.module, "handler", lambda event, context: "replaced")
    # Then the other environment runs the replacement too
    assert sb.invoke("BorrowReceivedFunction", {}) == "replaced"
    release.set()
    thread.join(60)
    assert len(spec.environments) >= 2


def test_the_records_of_one_batch_overlap_and_a_failed_one_is_still_reported(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the real LendShipped handler where each valid record waits at a rendezvous of all three valid
    # records of the batch (they pass it only if all three are being processed at the same time; one after
    # another, the first would wait there until the safety net breaks the rendezvous and it fails), and a
    # fourth record that is not a bridge event
    rendezvous = threading.Barrier(3)
    in_flight: list[int] = []
    lock = threading.Lock()
    now = [0]

    def step_succeeds(route: Any, event: Any) -> StepResult:
        return StepResult(StepStatus.SUCCEEDED)

    monkeypatch.setattr(step_queue, "run_route", step_succeeds)
    read_event = step_queue.read_event

    def meeting_read_event(body: str) -> Any:
        if body.startswith("{"):
            with lock:
                now[0] += 1
                in_flight.append(now[0])
            rendezvous.wait(60)  # a safety net only: the other two records are what releases it
            with lock:
                now[0] -= 1
        return read_event(body)

    monkeypatch.setattr(step_queue, "read_event", meeting_read_event)
    batch = sqs_event(sb, "LendShippedQueue", [VALID, VALID + " ", "not json", VALID + "  "])
    # When the batch is invoked once
    answer = sb.invoke("LendShippedFunction", batch)
    # Then the three valid records were processed at the same time, and succeeded
    assert max(in_flight) == 3
    assert not rendezvous.broken
    # and the record that is not a bridge event is reported failed, alone (partial batch failure)
    assert failures(answer) == [batch["Records"][2]["messageId"]]
