"""Borrowed item received (REQ_CHECKED_IN): temp item + hold in WMS, per volume."""

from illbridge.intake.queue import step_handler
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.steps import routes

_handle = step_handler(routes("borrow_received"))  # the steps declared for this function (workflow.steps)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
