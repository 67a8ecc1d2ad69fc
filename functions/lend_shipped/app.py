"""Lent item shipped (RES_ITEM_SHIPPED, or first seen in RES_AWAITING_RETURN_SHIPPING / RES_OVERDUE): check it
out in WMS to the borrowing institution's account."""

from illbridge.models import ReShareRequestChanged
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.lending import on_item_shipped
from illbridge.workflow.queue import step_handler

_handle = step_handler({ReShareRequestChanged.DETAIL_TYPE: on_item_shipped})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
