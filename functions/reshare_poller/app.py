"""Scheduled: poll every library's ReShare tenant (both sides) and put ReShareRequestChanged events."""

from illbridge.errors import PollFailed
from illbridge.intake.polling import poll_all
from illbridge.observability import OUTAGE_METRIC, logger, metrics, tracer
from illbridge.wiring import current_ports


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    reports = poll_all(current_ports())
    waiting = [r for r in reports if r.error and r.outage]
    failed = [r for r in reports if r.error and not r.outage]
    summary = {
        "polled": len(reports),
        "transitions": sum(r.transitions for r in reports),
        "failed": len(failed),
        "waiting": len(waiting),
    }
    logger.info("poll done", extra=summary)
    if waiting:  # ReShare unreachable: the next run polls again from the same cursor; OutageAlarm tells staff
        metrics.add_metric(name=OUTAGE_METRIC, unit="Count", value=len(waiting))
    if failed:  # Lambda retries the run (EventInvokeConfig), then sends it to ScheduleDeadLetterQueue (alarm)
        raise PollFailed("; ".join(f"{r.library_id}/{r.side}: {r.error}" for r in failed))
    return summary
