"""Reconciliation: noticing WMS-side check-ins, since WMS has no callbacks (wms.md §4).

For each library, the open mappings whose next check is due (a sparse index: never a table scan) are probed
item by item; an item WMS shows as checked in becomes a ``WmsItemCheckedIn`` event, the same event the WMS
webhook emits. Each mapping's next check is pushed back with backoff.

When is an item "checked in"? Lending: we checked it out, so it is checked in once WMS no longer shows it on
loan. Borrowing: a temp item is not on loan while its hold waits for the patron, so it counts as checked in
only once reconciliation has seen it on loan and no longer does, or WMS shows it in a state a temp item only
reaches after its return (routed home, Unavailable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError, WmsProblem
from illbridge.models import MappedItem, Mapping, Side, WmsItemCheckedIn
from illbridge.observability import logger, metrics
from illbridge.workflow.common import ALREADY_CHECKED_IN, next_check_time
from illbridge.workflow.services import Services

ON_LOAN = frozenset({"On Loan"})
# Statuses a borrowing temp item only reaches after the patron's loan ended (routed to its home branch).
TEMP_ITEM_RETURNED = frozenset({"Unavailable", "Returned"})


@dataclass
class ReconcileReport:
    library_id: str
    checked: int = 0
    checked_in: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def is_checked_in(side: Side, item: MappedItem, status: str) -> bool:
    if status in ON_LOAN:
        return False
    if side == Side.LENDING:
        return True
    return item.seen_on_loan or status in TEMP_ITEM_RETURNED


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
    metrics.add_metric(name="ReconciledRequests", unit="Count", value=report.checked)
    return report


def probe_mapping(services: Services, config: LibraryConfig, mapping: Mapping) -> list[WmsItemCheckedIn]:
    wms = services.wms(config)
    events = []
    for item in mapping.items:
        if not item.created_in_wms or item.checked_in:
            continue
        try:
            status = wms.lookup_item(item.barcode).circulation_status
        except WmsProblem as problem:
            if problem.problem_type not in ALREADY_CHECKED_IN:
                raise
            status = problem.problem_type
        if status in ON_LOAN:
            item.seen_on_loan = True
        item.wms_status = status
        if is_checked_in(mapping.side, item, status):
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


def schedule_next(services: Services, config: LibraryConfig, mapping: Mapping) -> None:
    mapping.check_count += 1
    mapping.next_check_at = next_check_time(config, mapping.check_count, services.clock())
    services.store.save_mapping(mapping)


def reconcile_all(services: Services) -> list[ReconcileReport]:
    return [reconcile_library(services, config) for config in services.configs.all()]
