"""Borrowed item returned: check temp items in at WMS (ReShare first) or update ReShare (WMS first)."""

from illbridge.intake.queue import step_handler
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.steps import routes

_handle = step_handler(routes("borrow_returned"))  # the steps declared for this function (workflow.steps)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
