"""Reconciliation: noticing WMS-side check-ins, since WMS has no callbacks (docs/wms.md#no-callbacks).

For each library, the open mappings whose next check is due (a sparse index: never a table scan) are probed
item by item; an item WMS shows as checked in becomes a ``WmsItemCheckedIn`` event, the same event the WMS
webhook emits. Each mapping's next check is pushed back with backoff.

When is an item "checked in"? The probe's verdict (``illbridge.wms.probe``): lending items were checked out
by the bridge, so any status but on loan means returned; a borrowing temp item is not on loan while its hold
waits for the patron, so it counts only once reconciliation has seen it on loan, or once WMS shows the status
a temp item reaches only after its return (Unavailable, at its home branch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError
from illbridge.models import HistoryEntry, Mapping, Outcome, Side, WmsItemCheckedIn
from illbridge.models.mapping import MappedItem
from illbridge.observability import logger, metrics
from illbridge.wms.probe import ProbeResult, probe_for
from illbridge.workflow.common import next_check_time
from illbridge.workflow.services import Services


@dataclass
class ReconcileReport:
    library_id: str
    checked: int = 0
    checked_in: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def reconcile_library(services: Services, config: LibraryConfig, *, limit: int = 200) -> ReconcileReport:
    report = ReconcileReport(config.library_id)
    if config.wms.checkin_probe == "none":
        return report
    now = services.clock()
    for mapping in services.store.due_for_reconciliation(config.reshare.tenant, now, limit=limit):
        try:
            events = probe_mapping(services, config, mapping)
            services.bus.put(events)  # first the events, then the next check: a failure re-probes
            report.checked_in += [e.item_barcode for e in events]
            schedule_next(services, config, mapping)
            report.checked += 1
        except BridgeError as exc:
            logger.warning(
                "reconciliation of one request failed", extra={"hrid": mapping.hrid, "error": str(exc)}
            )
            report.errors.append(f"{mapping.hrid}: {exc}")
            record_failure(services, mapping, exc)
            if not exc.transient:  # a definite answer (e.g. WMS no longer knows the item): ask again later,
                schedule_next(services, config, mapping)  # with backoff, not on every run
    metrics.add_metric(name="ReconciledRequests", unit="Count", value=report.checked)
    return report


def probe_item(services: Services, config: LibraryConfig, mapping: Mapping, item: MappedItem) -> ProbeResult:
    """Ask WMS, through the library's check-in probe, whether one item was checked in; kept on the item.

    Used by reconciliation and to confirm WMS check-in notices (``workflow.notices``). Transient faults raise.
    """
    probe = probe_for(config.wms, services.wms(config))
    seen_on_loan = item.seen_on_loan or mapping.side == Side.LENDING
    result = probe.is_checked_in(item.barcode, seen_on_loan=seen_on_loan)
    item.wms_status = result.circulation_status or result.detail
    item.seen_on_loan = item.seen_on_loan or result.on_loan
    return result


def probe_mapping(services: Services, config: LibraryConfig, mapping: Mapping) -> list[WmsItemCheckedIn]:
    events = []
    for item in mapping.items:
        if not item.created_in_wms or item.checked_in:
            continue
        result = probe_item(services, config, mapping, item)
        if result.checked_in:
            events.append(
                WmsItemCheckedIn(
                    library_id=config.library_id,
                    registry_id=mapping.registry_id,
                    item_barcode=item.barcode,
                    checked_in_at=services.clock(),
                    side=mapping.side.value,
                    tenant=mapping.tenant,
                    request_id=mapping.request_id,
                    source="reconciler",
                )
            )
    return events


def record_failure(services: Services, mapping: Mapping, exc: BridgeError) -> None:
    """A history line on the request, so `ops show` says why its check-in was not noticed."""
    services.store.add_history(
        mapping.tenant,
        mapping.request_id,
        HistoryEntry(
            at=services.clock(),
            step="reconcile",
            system="wms",
            operation="LookupItem (reconciliation)",
            outcome=Outcome.ERROR if exc.transient else Outcome.PROBLEM,
            summary=str(exc),
            response={"error": type(exc).__name__, "retry": "next run" if exc.transient else "next check"},
        ),
    )


def schedule_next(services: Services, config: LibraryConfig, mapping: Mapping) -> None:
    mapping.check_count += 1
    mapping.next_check_at = next_check_time(config, mapping.check_count, services.clock())
    services.store.save_mapping(mapping)


def reconcile_all(services: Services) -> list[ReconcileReport]:
    return [reconcile_library(services, config) for config in services.configs.all()]
