"""An SQS batch's records, each handled on its own and side by side; the failed ones reported to Lambda.

What Lambda's SQS event source mapping asks of a function with ``ReportBatchItemFailures`` (template.yaml,
``FunctionResponseTypes``): an answer naming the ``messageId`` of every record that failed,
``{"batchItemFailures": [{"itemIdentifier": id}]}``; the records not named are deleted from the queue. When every
record failed the invocation raises instead (``BatchFailed``), so it counts as an error in the function's
metrics and the whole batch comes back, as Powertools' ``BatchProcessor`` does by default.

The records run side by side, one thread each (up to ``workers``), each in a copy of the invoking thread's
context (the logger's per-invocation keys live in context variables): a step spends its time waiting on WMS and
ReShare, so a batch takes about as long as its slowest record rather than the sum. Copies of one message in a
batch (the same body: SQS or the bus delivered an event twice) run one after the other in one thread, so the
second finds what the first did (its step done, its item marked checked in) and stops at the step's record
rather than racing the first to its claim and to WMS.

Written here rather than taken from Powertools' batch utility, which did the same: importing that utility builds
the pydantic models of every event source it knows (its parser models) and imports every event data class and
asyncio, about 85 ms of CPU at each step function's cold start (docs/performance.md#cold-start), for what is
below.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from illbridge.observability import logger


@dataclass(frozen=True)
class MessageAttribute:
    """One SQS message attribute as Lambda hands it over (``stringValue``, ``dataType``)."""

    data_type: str
    string_value: str | None = None


@dataclass(frozen=True)
class QueuedRecord:
    """One SQS message of a batch, as Lambda's event carries it (the fields the bridge reads)."""

    message_id: str
    body: str
    event_source_arn: str
    message_attributes: dict[str, MessageAttribute] = field(default_factory=dict)

    @classmethod
    def from_event(cls, raw: dict[str, Any]) -> QueuedRecord:
        attributes = {
            name: MessageAttribute(
                data_type=str(value.get("dataType", "String")), string_value=value.get("stringValue")
            )
            for name, value in (raw.get("messageAttributes") or {}).items()
            if isinstance(value, dict)
        }
        return cls(
            message_id=str(raw["messageId"]),
            body=str(raw.get("body", "")),
            event_source_arn=str(raw.get("eventSourceARN", "")),
            message_attributes=attributes,
        )


class BatchFailed(Exception):
    """Every record of the batch failed: the invocation fails, and Lambda returns the whole batch to the queue."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        super().__init__(f"All records failed ({len(failures)}): " + "; ".join(map(repr, failures.values())))
        self.failures = failures


def process_batch(
    event: dict[str, Any], handle: Callable[[QueuedRecord], Any], *, workers: int = 10
) -> dict[str, list[dict[str, str]]]:
    """Handle every record of Lambda's SQS ``event`` (side by side up to ``workers``); the partial batch response.

    A record fails when ``handle`` raises; the failure is logged with its message id and the record is named in
    ``batchItemFailures``. ``BatchFailed`` when every record failed.
    """
    raw_records = event.get("Records") or []
    records = [QueuedRecord.from_event(raw) for raw in raw_records]

    def run(record: QueuedRecord) -> BaseException | None:
        try:
            handle(record)
        except Exception as exc:  # each record's failure is its own: the others still run and are reported
            logger.exception("record failed", extra={"message_id": record.message_id})
            return exc
        return None

    if workers <= 1 or len(records) <= 1:
        outcomes = [run(record) for record in records]
    else:
        copies: dict[str, list[int]] = {}  # body -> the records carrying it, in the batch's order
        for index, record in enumerate(records):
            copies.setdefault(record.body, []).append(index)
        groups = list(copies.values())
        outcomes = [None] * len(records)

        def run_copies(group: list[int]) -> None:
            for index in group:
                outcomes[index] = run(records[index])

        contexts = [contextvars.copy_context() for _ in groups]
        with ThreadPoolExecutor(max_workers=min(workers, len(groups)), thread_name_prefix="record") as pool:
            list(pool.map(lambda pair: pair[0].run(run_copies, pair[1]), zip(contexts, groups, strict=True)))
    failures = {
        record.message_id: outcome
        for record, outcome in zip(records, outcomes, strict=True)
        if outcome is not None
    }
    if records and len(failures) == len(records):
        raise BatchFailed(failures)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
