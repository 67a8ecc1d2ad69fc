"""Cancelled, unfilled, closed or completed requests: end the mapping (check in what is left in WMS)."""

from illbridge.intake.queue import step_handler
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.steps import routes

_handle = step_handler(routes("request_closed"))  # the steps declared for this function (workflow.steps)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
