"""Running a workflow step from its SQS queue: one bus event per record, partial batch failures.

A record whose step hit a transient fault fails (and comes back after the visibility timeout: backoff); a
record that cannot be read at all fails too, so after the queue's receives it lands in the dead-letter
queue, whose alarm tells staff. Everything else is settled by the step itself (done, skipped, or an
attention item). Powertools idempotency drops duplicate deliveries of the same event cheaply; the step's
claim in DynamoDB is what makes the effect happen exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from illbridge.errors import BadInput
from illbridge.models import ReShareRequestChanged, WmsItemCheckedIn
from illbridge.observability import logger
from illbridge.settings import current_settings
from illbridge.workflow.engine import StepResult
from illbridge.workflow.services import Services, current_services

EVENT_MODELS: dict[str, type[BaseModel]] = {
    ReShareRequestChanged.DETAIL_TYPE: ReShareRequestChanged,
    WmsItemCheckedIn.DETAIL_TYPE: WmsItemCheckedIn,
}
Route = Callable[[Services, Any], StepResult]


def read_event(body: str) -> tuple[str, BaseModel]:
    """The detail-type and typed detail of the bus event an SQS record carries (EventBridge's envelope)."""
    try:
        envelope = json.loads(body)
        detail_type = envelope["detail-type"]
        return detail_type, EVENT_MODELS[detail_type].model_validate(envelope["detail"])
    except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        raise BadInput(f"not a bridge event: {exc}") from exc


@lru_cache(maxsize=1)
def idempotency_config() -> tuple[DynamoDBPersistenceLayer, IdempotencyConfig]:
    settings = current_settings()
    return (
        DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name),
        IdempotencyConfig(expires_after_seconds=3600, raise_on_no_idempotency_key=True),
    )


def step_handler(routes: dict[str, Route]) -> Callable[[dict, LambdaContext], dict]:
    """A Lambda handler for a queue-triggered step: ``routes`` maps a bus detail-type to the step function."""
    processor = BatchProcessor(event_type=EventType.SQS)

    def handle_event(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
        services = current_services()
        event = EVENT_MODELS[detail_type].model_validate(detail)
        result = routes[detail_type](services, event)
        return {"status": result.status.value, **{k: str(v) for k, v in result.detail.items()}}

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        detail_type, event = read_event(record.body)
        if detail_type not in routes:
            raise BadInput(f"this step does not handle {detail_type}")
        detail = event.model_dump(mode="json")
        if detail.get("source") == "ops":
            # a staff retry: the same event may be sent again within the hour on purpose, so it must not be
            # dropped as a duplicate here; the step's claim still makes its effect happen once
            result = handle_event(detail_type=detail_type, detail=detail)
        else:
            persistence, config = idempotency_config()
            once = idempotent_function(
                data_keyword_argument="detail", persistence_store=persistence, config=config
            )(handle_event)
            result = once(detail_type=detail_type, detail=detail)
        logger.info("record processed", extra={"detail_type": detail_type, "result": result})
        return result

    def handler(event: dict, context: LambdaContext) -> dict:
        _, config = idempotency_config()
        config.register_lambda_context(context)
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )

    return handler
