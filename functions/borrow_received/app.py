"""Borrowed item received (REQ_CHECKED_IN): temp item + hold in WMS, per volume."""

from illbridge.models import ReShareRequestChanged
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.borrowing import on_item_received
from illbridge.workflow.queue import step_handler

_handle = step_handler({ReShareRequestChanged.DETAIL_TYPE: on_item_received})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
