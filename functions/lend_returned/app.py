"""Lent item back: check it in at WMS (RES_COMPLETE), or complete the ReShare request (WMS first)."""

from illbridge.models import ReShareRequestChanged, WmsItemCheckedIn
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.lending import on_request_complete, on_wms_check_in
from illbridge.workflow.queue import step_handler

_handle = step_handler(
    {
        ReShareRequestChanged.DETAIL_TYPE: on_request_complete,
        WmsItemCheckedIn.DETAIL_TYPE: on_wms_check_in,
    }
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return _handle(event, context)
