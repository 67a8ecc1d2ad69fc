"""Running a workflow step from its SQS queue: one bus event per record, partial batch failures.

A record whose step has to wait (an outage, an earlier step still running: ``StepDeferred``, or any other
transient fault) is sent back to its own queue with a delay (exponential backoff, at most SQS's 15 minutes)
and counts as processed: waiting uses no SQS receives, so a long outage does not push messages into the
dead-letter queue. A transient fault outside a step is waited out the same way, up to the library's
``outage_deadline_hours`` (the copies carry when the waiting began); after that, and for a record that cannot
be read at all or a crash, the record fails, so after the queue's receives it lands in the dead-letter queue,
whose alarm tells staff. Everything else is settled by the step itself (done, skipped, or an attention item).
A duplicate delivery of an event (SQS delivers at least once; the poller may put the same event again) is
stopped by the step itself: it reads or claims its ``STEP#`` record before any WMS or ReShare call, and a step
already ``SUCCEEDED``, ``SKIPPED`` or ``FAILED`` stops there, a step claimed by another attempt whose lease is
not over is put off (``StepDeferred``), for at most one refused conditional write and no other
(docs/architecture.md#exactly-once-against-systems-that-are-not-idempotent). There is no separate
idempotency record (it cost two writes on every record to do what the claim does), and so a staff retry
(``source == "ops"``) needs no special case either: ``staff.retry`` releases the failed step before it sends the
event, so the claim lets it run; the step's record, not the event, says whether something is left to do.

The records of a batch run side by side (``intake.batch.process_batch``, one thread per record): a step spends
its time waiting on WMS and ReShare, so a batch of five takes about as long as its slowest record rather than
the sum. Each record still takes its own claim and is reported on its own (partial batch failures); copies
of one message in a batch run one after the other, so the second finds what the first did. The
template's ``BatchSize`` (5) times the mapping's ``MaximumConcurrency`` (``StepConcurrency``) is how many
records of one step are at WMS and ReShare at once (docs/performance.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from illbridge.errors import BadInput, BridgeError, StepDeferred
from illbridge.intake.batch import QueuedRecord, process_batch
from illbridge.models import ReShareRequestChanged, WmsItemCheckedIn
from illbridge.observability import OUTAGE_METRIC, logger, metrics
from illbridge.wiring import current_ports
from illbridge.workflow.engine import MAX_DELAY_SECONDS, StepResult, retry_delay
from illbridge.workflow.ports import StepPorts

EVENT_MODELS: dict[str, type[BaseModel]] = {
    ReShareRequestChanged.DETAIL_TYPE: ReShareRequestChanged,
    WmsItemCheckedIn.DETAIL_TYPE: WmsItemCheckedIn,
}
Route = Callable[[StepPorts, Any], StepResult]


def read_event(body: str) -> tuple[str, BaseModel]:
    """The detail-type and typed detail of the bus event an SQS record carries (EventBridge's envelope)."""
    try:
        envelope = json.loads(body)
        detail_type = envelope["detail-type"]
        return detail_type, EVENT_MODELS[detail_type].model_validate(envelope["detail"])
    except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        raise BadInput(f"not a bridge event: {exc}") from exc


WORKERS = 10  # records of one batch run side by side (the template's BatchSize is 5)
WAITS = "bridge-waits"
WAITING_SINCE = "bridge-waiting-since"


@lru_cache(maxsize=1)
def _sqs() -> Any:
    return boto3.client("sqs")


@lru_cache(maxsize=16)
def _queue_url(queue_arn: str) -> str:
    *_, account, name = queue_arn.split(":")
    return str(_sqs().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def send_again(record: QueuedRecord, delay: int, attributes: dict[str, Any]) -> None:
    """The record's message, back on its own queue after ``delay`` seconds (at most SQS's 900)."""
    _sqs().send_message(
        QueueUrl=_queue_url(record.event_source_arn),
        MessageBody=record.body,
        DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay))),
        **({"MessageAttributes": attributes} if attributes else {}),
    )


def _waiting(record: QueuedRecord) -> tuple[int, datetime | None]:
    """How often a record outside any step was put off already, and since when (its copies carry both)."""
    attributes = record.message_attributes
    waits = attributes.get(WAITS)
    since = attributes.get(WAITING_SINCE)
    try:
        count = int(waits.string_value) if waits is not None and waits.string_value else 0
        began = (
            datetime.fromisoformat(since.string_value) if since is not None and since.string_value else None
        )
    except ValueError:
        return 0, None
    return count, began


def _deadline_hours(record: QueuedRecord) -> float | None:
    """The library's outage deadline for this record's event; None when the event names no known library."""
    try:
        _, event = read_event(record.body)
        return float(current_ports().configs.get(str(getattr(event, "library_id", ""))).outage_deadline_hours)
    except BridgeError:
        return None


def run_route(route: Route, event: BaseModel) -> StepResult:
    """One record's step, with this function instance's ports. A duplicate and a staff retry (``source`` "ops")
    go the same way: the step's own record decides what is left to do (the module's docstring)."""
    return route(current_ports(), event)


def step_handler(routes: dict[str, Route]) -> Callable[[dict, LambdaContext], dict]:
    """A Lambda handler for a queue-triggered step: ``routes`` maps a bus detail-type to the step function."""

    def handle_event(detail_type: str, event: BaseModel) -> dict[str, Any]:
        result = run_route(routes[detail_type], event)
        return {"status": result.status.value, **{k: str(v) for k, v in result.detail.items()}}

    def record_handler(record: QueuedRecord) -> dict[str, Any]:
        try:
            return run_record(record)
        except StepDeferred as deferred:  # the step keeps its own waiting time (engine.run_step)
            return defer(record, deferred.delay_seconds, str(deferred))
        except BridgeError as exc:
            if not exc.transient:
                raise
            waits, since = _waiting(record)
            deadline = _deadline_hours(record)
            now = current_ports().clock()
            if deadline is None or now - (since or now) >= timedelta(hours=deadline):
                raise  # waited long enough: the queue's receives, then its dead-letter queue and alarm
            metrics.add_metric(name=OUTAGE_METRIC, unit="Count", value=1)
            return defer(record, retry_delay(waits + 1), str(exc), waits=waits + 1, since=since or now)

    def run_record(record: QueuedRecord) -> dict[str, Any]:
        detail_type, event = read_event(record.body)
        if detail_type not in routes:
            raise BadInput(f"this step does not handle {detail_type}")
        result = handle_event(detail_type, event)
        logger.info("record processed", extra={"detail_type": detail_type, "result": result})
        return result

    def defer(
        record: QueuedRecord, delay: int, why: str, *, waits: int | None = None, since: datetime | None = None
    ) -> dict[str, Any]:
        attributes = {}
        if waits is not None and since is not None:
            attributes = {
                WAITS: {"DataType": "Number", "StringValue": str(waits)},
                WAITING_SINCE: {"DataType": "String", "StringValue": since.isoformat()},
            }
        send_again(record, delay, attributes)
        logger.info("record deferred", extra={"retry_in_seconds": delay, "why": why})
        metrics.add_metric(name="RecordsDeferred", unit="Count", value=1)
        return {"status": "deferred", "retry_in_seconds": str(delay)}

    def handler(event: dict, context: LambdaContext) -> dict:
        current_ports()  # built once, before the records' threads share it
        return process_batch(event, record_handler, workers=WORKERS)

    return handler
