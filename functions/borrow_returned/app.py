"""Borrowed item returned: check temp items in at WMS (ReShare first) or update ReShare (WMS first)."""

from illbridge.models import ReShareRequestChanged, WmsItemCheckedIn
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.borrowing import on_item_returned, on_wms_check_in
from illbridge.workflow.queue import step_handler

_handle = step_handler(
    {
        ReShareRequestChanged.DETAIL_TYPE: on_item_returned,
        WmsItemCheckedIn.DETAIL_TYPE: on_wms_check_in,
    }
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
