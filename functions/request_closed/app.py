"""Cancelled, unfilled, closed or completed requests: end the mapping (check in what is left in WMS)."""

from illbridge.models import ReShareRequestChanged
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.closing import on_request_closed
from illbridge.workflow.queue import step_handler

_handle = step_handler({ReShareRequestChanged.DETAIL_TYPE: on_request_closed})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
