"""Reconciliation: noticing WMS-side check-ins, since WMS has no callbacks (docs/wms.md#no-callbacks).

For each library, the open mappings whose next check is due (a sparse index: never a table scan) are probed
item by item with the library's check-in probe (``illbridge.wms.probe``); an item WMS shows as checked in
becomes a ``WmsItemCheckedIn`` event, the same event the WMS webhook emits. Each mapping's next check is
pushed back with backoff. One probe serves the whole run, so LookupUser (the default) costs one call per
patron or partner account, however many of its items are due.

When is an item "checked in"? The probe's verdict: lending items were checked out by the bridge, so anything
but on loan means returned; a borrowing temp item is not on loan while its hold waits for the patron, so it
counts only once reconciliation has seen it on loan (or, with LookupItem, once WMS shows the status a temp
item reaches only after its return: Unavailable, at its home branch).

When the library has no probe, WMS answers neither look-up, or the answer cannot tell (LookupUser no longer
lists a temp item whose loan reconciliation never saw), a WMS-first return cannot be noticed here. The bridge
then does what OCLC's desk workflow already tells staff ("Update ReShare request [Request ID]"): once
the lender's due date has passed and the mapping is still open, it puts that reminder on the attention list
(once), and checks again only at the ceiling interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from illbridge.announce import put_on_list
from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError
from illbridge.intake.polling import is_outage
from illbridge.intake.ports import ReconcilerPorts
from illbridge.models import AttentionItem, HistoryEntry, Mapping, Outcome, Side, StepName, WmsItemCheckedIn
from illbridge.models.events import AttentionRaised
from illbridge.observability import logger, metrics, redact
from illbridge.wms.probe import PROBE_OPERATION, CheckinProbe, probe_for
from illbridge.workflow.common import next_check_time
from illbridge.workflow.engine import describe_error
from illbridge.workflow.probing import probe_item


@dataclass
class ReconcileReport:
    library_id: str
    checked: int = 0
    checked_in: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    waiting: list[str] = field(
        default_factory=list
    )  # WMS unreachable: the check stays due, the next run asks
    calls: int = 0  # look-up calls the probe made to WMS in this run


def reconcile_library(ports: ReconcilerPorts, config: LibraryConfig, *, limit: int = 200) -> ReconcileReport:
    report = ReconcileReport(config.library_id)
    now = ports.clock()
    probe = probe_for(config.wms, ports.wms(config))
    for mapping in ports.store.due_for_reconciliation(config.reshare.tenant, now, limit=limit):
        try:
            events, decided = probe_mapping(ports, config, mapping, probe)
            ports.bus.put(events)  # first the events, then the next check: a failure re-probes
            report.checked_in += [e.item_barcode for e in events]
            if not decided and not events:
                remind_when_due(ports, config, mapping)
            else:
                schedule_next(ports, config, mapping)
            report.checked += 1
        except BridgeError as exc:
            logger.warning(
                "reconciliation of one request failed",
                extra={"hrid": mapping.hrid, "error": private_text(mapping, exc)},
            )
            (report.waiting if is_outage(exc) else report.errors).append(
                f"{mapping.hrid}: {private_text(mapping, exc)}"
            )
            record_failure(ports, mapping, exc, probe.name)
            if not exc.transient:  # a definite answer (e.g. WMS no longer knows the item): ask again later,
                schedule_next(ports, config, mapping)  # with backoff, not on every run
    report.calls = int(getattr(probe, "calls", 0))
    metrics.add_metric(name="ReconciledRequests", unit="Count", value=report.checked)
    return report


def probe_mapping(
    ports: ReconcilerPorts, config: LibraryConfig, mapping: Mapping, probe: CheckinProbe | None = None
) -> tuple[list[WmsItemCheckedIn], bool]:
    """The check-in events for the mapping's items, and whether the probe decided every item (False: WMS
    could not be asked, or its answer cannot tell, e.g. LookupUser no longer lists a temp item whose loan
    reconciliation never saw: returned, or its hold cancelled?)."""
    probe = probe or probe_for(config.wms, ports.wms(config))
    events = []
    decided = True
    for item in mapping.items:
        if not item.created_in_wms or item.checked_in:
            continue
        result = probe_item(ports, config, mapping, item, probe)
        decided = decided and result.supported and result.checked_in is not None
        if result.checked_in:
            events.append(
                WmsItemCheckedIn(
                    library_id=config.library_id,
                    registry_id=mapping.registry_id,
                    item_barcode=item.barcode,
                    checked_in_at=ports.clock(),
                    side=mapping.side.value,
                    tenant=mapping.tenant,
                    request_id=mapping.request_id,
                    source="reconciler",
                )
            )
    return events, decided


def remind_when_due(ports: ReconcilerPorts, config: LibraryConfig, mapping: Mapping) -> None:
    """WMS cannot tell: remind staff once the lender's due date has passed (OCLC's desk tells them the same).

    Before that date the next check is the due date itself (or the ceiling interval when there is none);
    after the reminder, the ceiling interval.
    """
    now = ports.clock()
    due = mapping.lender_due_date
    ceiling = now + timedelta(hours=config.reconcile_max_interval_hours)
    if due is None or due > now:
        mapping.next_check_at = min(due, ceiling) if due is not None and due > now else ceiling
        mapping.check_count += 1
        ports.store.save_mapping(mapping)
        return
    step = StepName.BORROW_WMS_RETURNED if mapping.side == Side.BORROWING else StepName.LEND_WMS_RETURNED
    existing = ports.store.get_attention(mapping.tenant, mapping.request_id, step.value)
    if existing is None or existing.resolved:
        action = (
            "mark it returned by patron in ReShare"
            if mapping.side == Side.BORROWING
            else "complete the request in ReShare"
        )
        item = AttentionItem(
            library_id=config.library_id,
            tenant=mapping.tenant,
            request_id=mapping.request_id,
            hrid=mapping.hrid,
            step=step.value,
            reason=f"Update ReShare request {mapping.hrid}",
            fix=(
                f"The lender's due date ({due.date()}) has passed and WMS cannot be asked whether the item was "
                f"checked in at the desk. If it was, {action}; otherwise follow up the overdue item."
            ),
            retry=f"illbridge status {mapping.hrid} --library {config.library_id}",
            raised_at=now,
        )
        put_on_list(ports.store, ports.topic, item, config.name)
        ports.bus.put([AttentionRaised(**item.model_dump(include=set(AttentionRaised.model_fields)))])
        ports.store.add_history(
            mapping.tenant,
            mapping.request_id,
            HistoryEntry(
                at=now,
                step="reconcile",
                system="bridge",
                operation="reminder (no check-in probe)",
                outcome=Outcome.PROBLEM,
                summary=item.reason,
                response={"lender_due_date": due.isoformat()},
            ),
        )
    mapping.next_check_at = ceiling
    mapping.check_count += 1
    ports.store.save_mapping(mapping)


def private_text(mapping: Mapping, exc: BridgeError) -> str:
    """The error as history and logs may show it: a patron barcode (the loan's holder) masked."""
    return str(redact(describe_error(exc)["message"], [mapping.patron_barcode or ""]))


def record_failure(
    ports: ReconcilerPorts, mapping: Mapping, exc: BridgeError, probe_name: str = "lookup_user"
) -> None:
    """A history line on the request, so `illbridge history` says why its check-in was not noticed."""
    ports.store.add_history(
        mapping.tenant,
        mapping.request_id,
        HistoryEntry(
            at=ports.clock(),
            step="reconcile",
            system="wms",
            operation=f"{PROBE_OPERATION.get(probe_name, probe_name)} (reconciliation)",
            outcome=Outcome.ERROR if exc.transient else Outcome.PROBLEM,
            summary=private_text(mapping, exc),
            response={"error": type(exc).__name__, "retry": "next run" if exc.transient else "next check"},
        ),
    )


def schedule_next(ports: ReconcilerPorts, config: LibraryConfig, mapping: Mapping) -> None:
    mapping.check_count += 1
    mapping.next_check_at = next_check_time(config, mapping.check_count, ports.clock())
    ports.store.save_mapping(mapping)


def reconcile_all(ports: ReconcilerPorts) -> list[ReconcileReport]:
    return [reconcile_library(ports, config) for config in ports.configs.all()]
