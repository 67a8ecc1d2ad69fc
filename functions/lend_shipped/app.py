"""Lent item shipped (RES_ITEM_SHIPPED, or first seen in RES_AWAITING_RETURN_SHIPPING / RES_OVERDUE): check it
out in WMS to the borrowing institution's account."""

from illbridge.intake.queue import step_handler
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.steps import routes

_handle = step_handler(routes("lend_shipped"))  # the steps declared for this function (workflow.steps)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
