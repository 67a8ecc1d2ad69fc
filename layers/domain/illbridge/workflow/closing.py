"""Cancelled, unfilled, closed and completed requests end their mapping cleanly (docs/architecture.md#the-workflow-steps).

A temp item that was created is checked in, so no hold is left dangling on a patron's list without a
record of why; a lent item still checked out to a borrowing institution is checked in too.
"""

from __future__ import annotations

from illbridge.models import ReShareRequestChanged, Side, StepName, StepStatus
from illbridge.workflow.common import PENDING, WaitingForEarlierStep, check_in, save
from illbridge.workflow.engine import StepContext, StepResult, run_for_change
from illbridge.workflow.services import Services

# The step that puts things into WMS for each side: closing waits for it when it is still going to run.
CREATING_STEP = {Side.BORROWING: StepName.BORROW_RECEIVED, Side.LENDING: StepName.LEND_SHIPPED}


def on_request_closed(services: Services, change: ReShareRequestChanged) -> StepResult:
    return run_for_change(
        services,
        change,
        StepName.REQUEST_CLOSED,
        lambda ctx: end_mapping(ctx, Side(change.side), change.state),
    )


def end_mapping(ctx: StepContext, side: Side, state: str) -> StepResult:
    store = ctx.services.store
    creating = store.get_step(ctx.tenant, ctx.request_id, CREATING_STEP[side])
    if creating is not None and creating.status in PENDING:
        raise WaitingForEarlierStep(f"{CREATING_STEP[side].value} of {ctx.hrid} is still running")
    mapping = store.get_mapping(ctx.tenant, ctx.request_id)
    if mapping is None:
        ctx.note("request closed", f"{ctx.hrid} ended as {state}; nothing of it is in WMS")
        return StepResult(StepStatus.SUCCEEDED, {"checked_in": []})
    checked_in = []
    for barcode in [i.barcode for i in mapping.items if i.created_in_wms and not i.checked_in]:
        mapping = check_in(ctx, mapping, barcode, why=f"request ended as {state}")
        checked_in.append(barcode)
    mapping.open = False
    mapping.next_check_at = None
    mapping.reshare_state = state
    save(ctx, mapping)
    ctx.note("mapping closed", f"{ctx.hrid} ended as {state}; checked in: {', '.join(checked_in) or 'none'}")
    return StepResult(StepStatus.SUCCEEDED, {"checked_in": checked_in, "final_state": state})
