"""Scheduled: poll every library's ReShare tenant (both sides) and put ReShareRequestChanged events."""

from illbridge.errors import BridgeError
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow.polling import poll_all
from illbridge.workflow.services import current_services


class PollFailed(BridgeError):
    transient = True


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    reports = poll_all(current_services())
    failed = [r for r in reports if r.error]
    summary = {
        "polled": len(reports),
        "transitions": sum(r.transitions for r in reports),
        "failed": len(failed),
    }
    logger.info("poll done", extra=summary)
    if failed:  # Lambda retries the run (EventInvokeConfig), then sends it to ScheduleDeadLetterQueue (alarm)
        raise PollFailed("; ".join(f"{r.library_id}/{r.side}: {r.error}" for r in failed))
    return summary
