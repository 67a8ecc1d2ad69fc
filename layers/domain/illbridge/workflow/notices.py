"""WMS check-in notices are claims, not facts: WMS confirms each before the bridge acts on it.

A ``WmsItemCheckedIn`` event from the WMS webhook (``source="webhook"``) says only that someone holding a
library's webhook secret claims the item was checked in. ReShare events are always re-read from ReShare; a
WMS notice is checked the same way, by asking WMS through the library's check-in probe (the one the
reconciler uses, ``probing.probe_item``). Events from the reconciler have just been confirmed by that probe,
and ``ops`` events are staff's word (``illbridge retry``), so both are acted on as they are.

- WMS confirms the check-in -> the step runs (the item is marked checked in, ReShare is updated);
- WMS shows the item still on loan (or held), lost or missing -> the notice is recorded in the request's
  history and ignored: nothing changes in either system; reconciliation keeps watching the item;
- the library has no probe (``checkin_probe: none``), WMS does not answer the probe's service, or the answer
  cannot tell (WMS does not know the item; LookupUser no longer lists a temp item whose loan was never seen) -> the notice
  cannot be confirmed: recorded in the history, and the request goes on the attention list (the step is failed
  with "confirm in WMS, then retry"): a person looks in WMS and runs ``illbridge retry``, whose event is trusted;
- WMS cannot be reached -> a transient fault: the record comes back through the queue and asks again.

Before asking WMS, the step's record is read (``settled_step``, one read): a step already done, or failed since
the check-in (an earlier copy of the same notice, shown to staff), leaves nothing to ask; a step claimed by
another attempt puts the notice off. A notice WMS refuted is kept on the mapping's item (``refuted_notice_at``,
in the save that keeps what WMS said), so a copy of it is not asked about again. So a repeated copy of a notice
makes no WMS call and no write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from illbridge.errors import NeedsStaff, StepDeferred
from illbridge.models import HistoryEntry, Mapping, Outcome, Side, StepName, StepStatus, WmsItemCheckedIn
from illbridge.observability import logger, mask, metrics
from illbridge.workflow.common import mark_checked_in
from illbridge.workflow.declaration import StepDeclaration
from illbridge.workflow.engine import (
    MAX_DELAY_SECONDS,
    StepContext,
    StepResult,
    retry_command,
    run_declared,
    run_step,
)
from illbridge.workflow.ports import StepPorts
from illbridge.workflow.probing import probe_item


@dataclass(frozen=True)
class Confirmation:
    confirmed: bool
    result: StepResult | None = None  # what the step answers when the notice is not acted on


def confirm_notice(ports: StepPorts, event: WmsItemCheckedIn, step: StepName) -> Confirmation:
    """Whether to act on a check-in event; for a webhook notice, WMS is asked first (see the module)."""
    if event.source != "webhook":
        return Confirmation(True)
    mapping = ports.store.find_by_item(event.registry_id, event.item_barcode)
    item = mapping.item(event.item_barcode) if mapping is not None else None
    if mapping is None or item is None or not mapping.open:
        return Confirmation(True)  # nothing to act on: the step skips it as it always did
    if item.checked_in:
        return Confirmation(True)  # already confirmed (a duplicate notice): nothing new happens
    if item.refuted_notice_at is not None and aware(event.checked_in_at) <= aware(item.refuted_notice_at):
        metrics.add_metric(name="DuplicateDeliveries", unit="Count", value=1)
        summary = f"check-in notice for {mask(event.item_barcode)} already refuted by WMS"
        return Confirmation(False, StepResult(StepStatus.SKIPPED, {"reason": summary, "duplicate": True}))
    settled = settled_step(ports, mapping, event, step)
    if settled is not None:
        return Confirmation(False, settled)
    config = ports.configs.get(mapping.library_id)
    result = probe_item(ports, config, mapping, item)
    if result.supported and result.checked_in is False:  # refuted: a copy of this notice is not asked again
        item.refuted_notice_at = max(
            event.checked_in_at, item.refuted_notice_at or event.checked_in_at, key=aware
        )
    ports.store.save_mapping(mapping)  # what WMS said (wms_status, seen_on_loan), as reconciliation keeps it
    barcode = mask(event.item_barcode)
    if result.checked_in:
        _note(ports, mapping, step, Outcome.SUCCESS, f"WMS confirms {barcode} was checked in", result)
        metrics.add_metric(name="CheckInNoticesConfirmed", unit="Count", value=1)
        return Confirmation(True)
    if result.supported and result.checked_in is False:
        shows = result.circulation_status or result.detail or "no status"
        summary = f"check-in notice for {barcode} ignored: WMS shows {shows}, not a check-in"
        _note(ports, mapping, step, Outcome.SKIPPED, summary, result)
        logger.warning("WMS check-in notice not confirmed", extra={"hrid": mapping.hrid, "wms": shows})
        metrics.add_metric(name="CheckInNoticesRefuted", unit="Count", value=1)
        return Confirmation(False, StepResult(StepStatus.SKIPPED, {"reason": summary}))
    # no probe, WMS does not offer the probe's service, or its answer cannot tell (LookupUser no longer lists a
    # temp item whose loan was never seen): nobody but a person can confirm it
    reason = (
        f"a WMS check-in notice for {barcode} cannot be confirmed ({result.detail or 'no check-in probe'})"
    )
    _note(ports, mapping, step, Outcome.PROBLEM, reason, result)
    metrics.add_metric(name="CheckInNoticesUnconfirmable", unit="Count", value=1)

    def needs_staff(ctx: StepContext) -> StepResult:
        raise NeedsStaff(
            reason,
            f"Look the item up in WMS. If it is checked in, run "
            f"`{retry_command(ctx.config.library_id, ctx.hrid, step)}`; if it is still on loan, resolve this item "
            f"(`illbridge resolve {ctx.hrid} --library {ctx.config.library_id} --step {step.value}`).",
        )

    outcome = run_step(
        ports,
        config,
        tenant=mapping.tenant,
        request_id=mapping.request_id,
        hrid=mapping.hrid,
        step=step,
        trigger=f"WmsItemCheckedIn {barcode} (unconfirmed)",
        act=needs_staff,
        force=True,  # every unconfirmable notice is shown to staff, even after one was set aside
    )
    return Confirmation(False, outcome)


def settled_step(
    ports: StepPorts, mapping: Mapping, event: WmsItemCheckedIn, step: StepName
) -> StepResult | None:
    """Before WMS is asked to confirm a notice, the step's record (one read): a step already done, or failed
    since the check-in the notice reports (an earlier copy of this notice, found unconfirmable and shown to
    staff), leaves nothing for this notice to do: no probe, no write. A step claimed by another attempt is put
    off until its lease could be over. None: ask WMS. (Staff's retry, ``source="ops"``, is never asked.)"""
    record = ports.store.get_step(mapping.tenant, mapping.request_id, step)
    if record is None or record.status == StepStatus.RETRYABLE:
        return None
    if record.status == StepStatus.IN_PROGRESS:
        now = ports.clock()
        if record.lease_until is None or record.lease_until < now:
            return None  # its lease ran out: the claim takes it over
        raise StepDeferred(
            f"{step.value} of {mapping.hrid} is in progress",
            min(MAX_DELAY_SECONDS, max(1, math.ceil((record.lease_until - now).total_seconds()))),
        )
    if record.status == StepStatus.FAILED and aware(record.updated_at) < aware(event.checked_in_at):
        return None  # a check-in since the failure: a new notice (shown to staff again if unconfirmable)
    logger.info("check-in notice for a settled step", extra={"step": step.value, "hrid": mapping.hrid})
    metrics.add_metric(name="DuplicateDeliveries", unit="Count", value=1)
    return StepResult(
        StepStatus.SKIPPED, {"reason": f"{step.value} is {record.status.value}", "duplicate": True}
    )


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _note(
    ports: StepPorts, mapping: Mapping, step: StepName, outcome: Outcome, summary: str, result: object
) -> None:
    ports.store.add_history(
        mapping.tenant,
        mapping.request_id,
        HistoryEntry(
            at=ports.clock(),
            step=step.value,
            system="wms",
            operation="check-in notice: confirm with WMS",
            outcome=outcome,
            summary=summary,
            request={"item_barcode": mask(getattr(result, "barcode", None))},
            response={
                "circulation_status": getattr(result, "circulation_status", None),
                "checked_in": getattr(result, "checked_in", None),
                "supported": getattr(result, "supported", None),
            },
        ),
    )


def on_wms_check_in(ports: StepPorts, event: WmsItemCheckedIn, declaration: StepDeclaration) -> StepResult:
    """The entry of a WMS-first step (``borrow_wms_returned``, ``lend_wms_returned``): a webhook notice is
    confirmed with WMS first; the check-in is marked on the mapping; once every item the bridge put into WMS
    is checked in, the engine runs the declared step."""
    side = declaration.triggers[0].side
    confirmation = confirm_notice(ports, event, declaration.name)
    if not confirmation.confirmed:
        assert confirmation.result is not None
        return confirmation.result
    mapping = mark_checked_in(ports.store, event, side)
    if mapping is None:
        return StepResult(StepStatus.SKIPPED, {"reason": f"no open {side.value} mapping for this item"})
    # a temp item that was never created cannot come back; a lent item is in WMS from the start
    waiting = [
        i.barcode for i in mapping.items if (i.created_in_wms or side == Side.LENDING) and not i.checked_in
    ]
    if waiting:
        return StepResult(StepStatus.SKIPPED, {"reason": "waiting for other volumes", "waiting": waiting})
    return run_declared(
        ports,
        declaration,
        ports.configs.get(mapping.library_id),
        tenant=mapping.tenant,
        request_id=mapping.request_id,
        hrid=mapping.hrid,
        trigger=f"WmsItemCheckedIn {event.item_barcode}",
    )
