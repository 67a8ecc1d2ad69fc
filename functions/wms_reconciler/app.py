"""Scheduled: ask WMS about open mappings whose next check is due; put WmsItemCheckedIn events."""

from illbridge.errors import ReconcileFailed
from illbridge.intake.reconcile import reconcile_all
from illbridge.observability import OUTAGE_METRIC, logger, metrics, tracer
from illbridge.wiring import current_ports


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    reports = reconcile_all(current_ports())
    errors = [e for r in reports for e in r.errors]
    waiting = [e for r in reports for e in r.waiting]
    summary = {
        "checked": sum(r.checked for r in reports),
        "checked_in": [b for r in reports for b in r.checked_in],
        "errors": errors,
        "waiting": waiting,
    }
    logger.info("reconciliation done", extra=summary)
    if waiting:  # WMS unreachable: those checks stay due for the next run; OutageAlarm tells staff
        metrics.add_metric(name=OUTAGE_METRIC, unit="Count", value=len(waiting))
    if errors:  # Lambda retries the run (EventInvokeConfig), then ScheduleDeadLetterQueue alarms
        raise ReconcileFailed(f"{len(errors)} request(s) not reconciled: " + "; ".join(errors))
    return summary
