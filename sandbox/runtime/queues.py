"""SQS event sources, as Lambda's event source mapping runs them.

A poll receives up to ``BatchSize`` messages (waiting up to ``MaximumBatchingWindowInSeconds`` to fill the
batch), builds the SQS batch event exactly as Lambda does, and invokes the function. Afterwards:
- success without ``ReportBatchItemFailures``: every message is deleted;
- success with it: every message not listed in ``batchItemFailures`` is deleted (an invalid answer, e.g. an
  ``itemIdentifier`` that is empty or not in the batch, fails the whole batch, as Lambda does);
- a handler exception (or timeout): nothing is deleted.
A message not deleted stays invisible until the queue's VisibilityTimeout expires and is received again; after
``maxReceiveCount`` receives SQS itself (moto too) moves it to the dead-letter queue of its RedrivePolicy.
``ScalingConfig.MaximumConcurrency`` is the number of pollers (so of concurrent invocations) per mapping.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .functions import EventSource, Functions, HandlerError

log = logging.getLogger("sandbox.runtime")

LAMBDA_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    # only present for FIFO queues / traced messages / redriven messages, as with Lambda
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)
DEFAULT_CONCURRENCY = 2  # no ScalingConfig: Lambda would scale far higher; two pollers are plenty here


@dataclass
class QueueSource:
    """One SQS event source mapping: which queue feeds which function, and how."""

    function: str
    event: str
    queue_logical_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window: float
    report_failures: bool
    max_concurrency: int
    enabled: bool

    @classmethod
    def from_event(cls, source: EventSource, queues_by_arn: dict[str, Any]) -> QueueSource:
        props = source.properties
        arn = str(props["Queue"])
        queue = queues_by_arn.get(arn)
        if queue is None:
            raise ValueError(f"{source.function}.{source.name}: queue {arn} is not a queue of the template")
        scaling = props.get("ScalingConfig") or {}
        return cls(
            function=source.function,
            event=source.name,
            queue_logical_id=queue.logical_id,
            queue_url=queue.url,
            queue_arn=arn,
            batch_size=int(props.get("BatchSize", 10)),
            batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
            max_concurrency=int(scaling.get("MaximumConcurrency", DEFAULT_CONCURRENCY)),
            enabled=bool(props.get("Enabled", True)),
        )


def sqs_record(message: dict[str, Any], source_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, from a ReceiveMessage message."""
    attributes = message.get("Attributes") or {}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: attributes[k] for k in LAMBDA_RECORD_ATTRIBUTES if k in attributes},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        out["binaryValue"] = base64.b64encode(raw if isinstance(raw, bytes) else str(raw).encode()).decode()
    return out


def failed_ids(response: Any, message_ids: set[str]) -> set[str] | None:
    """The message ids a ReportBatchItemFailures answer lists; None = the answer fails the whole batch."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        return set()  # Lambda treats an answer that is not a batch response as "no failures"
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            return None
        ids.add(identifier)
    return ids


@dataclass
class Redelivery:
    """A switch: every event reaches its step queue ``copies`` times, each copy after a random delay.

    EventBridge delivers to its targets at least once and a standard SQS queue at least once and in no
    particular order (AWS: EventBridge "at-least-once event delivery to targets"; SQS standard queues "at-least-
    once delivery", "best-effort ordering"); the sandbox's moto delivers each event once, in order. With this
    switch on, the first time a poller receives a message body it has not seen, the message is deleted and
    ``copies`` copies of it (same body and attributes) are sent to the same queue, each with a ``DelaySeconds``
    drawn from ``random.Random(seed)`` in [0, ``max_delay``]; copies, and the bridge's own re-sends of a
    message (``send_again``: the same body), are delivered as they come. So every event arrives at least twice,
    and out of order with the events around it (the chaos suite: bench/chaos.py).
    """

    copies: int = 2
    max_delay: int = 300
    seed: int | None = None
    made: int = 0  # copies sent
    _seen: set[bytes] = field(default_factory=set, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.copies < 1 or not 0 <= self.max_delay <= 900:
            raise ValueError("copies must be >= 1 and max_delay between 0 and 900 (SQS's longest delay)")
        self._rng.seed(self.seed)

    def intercept(self, sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages to process now; each one seen for the first time is replaced by its delayed copies."""
        now: list[dict[str, Any]] = []
        for message in messages:
            key = hashlib.sha256(message.get("Body", "").encode()).digest()
            with self._lock:
                first = key not in self._seen
                self._seen.add(key)
                delays = [self._rng.randint(0, self.max_delay) for _ in range(self.copies)] if first else []
            if not first:
                now.append(message)
                continue
            for delay in delays:
                kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
                if message.get("MessageAttributes"):
                    kwargs["MessageAttributes"] = {
                        name: {
                            k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")
                        }
                        for name, value in message["MessageAttributes"].items()
                    }
                sqs.send_message(DelaySeconds=delay, **kwargs)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            with self._lock:
                self.made += len(delays)
        return now


@dataclass
class BatchOutcome:
    received: int
    deleted: int
    failed: int
    error: HandlerError | None = None


class QueuePoller:
    """Polls one mapping's queue and invokes its function; ``poll_once`` for tests, ``start`` for threads."""

    def __init__(self, source: QueueSource, functions: Functions, sqs: Any, region: str) -> None:
        self.source = source
        self.functions = functions
        self.sqs = sqs
        self.region = region
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.redelivery: Redelivery | None = None  # Sandbox.redeliver() switches it on

    def receive(self, wait_seconds: int = 0, batching_window: bool = True) -> list[dict[str, Any]]:
        """Up to BatchSize messages; with ``batching_window``, wait up to the window to fill the batch."""
        source = self.source
        window = source.batching_window if batching_window else 0.0
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + window
        while len(messages) < source.batch_size:
            answer = self.sqs.receive_message(
                QueueUrl=source.queue_url,
                MaxNumberOfMessages=min(10, source.batch_size - len(messages)),
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=wait_seconds if not messages else 0,
            )
            got = answer.get("Messages") or []
            messages.extend(got)
            if not messages:
                break  # nothing at all: do not hold an empty batch open
            if not got and (window <= 0 or time.monotonic() >= deadline):
                break
            if not got:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return messages

    def poll_once(self, wait_seconds: int = 0, batching_window: bool = True) -> BatchOutcome:
        messages = self.receive(wait_seconds, batching_window)
        if not messages:
            return BatchOutcome(0, 0, 0)
        if self.redelivery is not None:
            received = len(messages)
            messages = self.redelivery.intercept(self.sqs, self.source.queue_url, messages)
            if not messages:  # all replaced by their copies: received, none processed
                return BatchOutcome(received, received, 0)
        return self.process(messages)

    def process(self, messages: list[dict[str, Any]]) -> BatchOutcome:
        source = self.source
        event = {"Records": [sqs_record(m, source.queue_arn, self.region) for m in messages]}
        ids = {m["MessageId"] for m in messages}
        error: HandlerError | None = None
        try:
            response = self.functions.invoke(source.function, event)
        except HandlerError as exc:
            error, failed = exc, ids
        else:
            if source.report_failures:
                listed = failed_ids(response, ids)
                if listed is None:
                    log.error("%s: invalid batchItemFailures answer, the whole batch failed", source.function)
                    failed = ids
                else:
                    failed = listed
            else:
                failed = set()
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        if failed:
            log.warning(
                "%s: %d of %d message(s) failed; they come back after the visibility timeout",
                source.function,
                len(failed),
                len(messages),
            )
        return BatchOutcome(len(messages), len(done), len(failed), error)

    # --- background ---------------------------------------------------------------------------------------

    def start(self) -> None:
        for n in range(max(1, self.source.max_concurrency)):
            thread = threading.Thread(
                target=self._run, name=f"sandbox-sqs-{self.source.function}-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception as exc:  # moto gone during shutdown, or a bug here: keep the runtime alive
                if self._stop.is_set():
                    return
                log.error("poller of %s: %s", self.source.function, exc, exc_info=exc)
                self._stop.wait(1)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
