"""Cancelled, unfilled, closed and completed requests end their mapping cleanly (docs/architecture.md#the-workflow-steps).

A temp item that was created is checked in, so no hold is left dangling on a patron's list without a
record of why; a lent item still checked out to a borrowing institution is checked in too. Whether WMS cancels
a temp item's hold at that check-in is not documented: the bridge looks (the check-in probe); a hold WMS kept is
cancelled with NCIP CancelRequestItem (OCLC lists it for WMS), looked at again, and only a hold still there (or
one WMS would not cancel) goes to staff.
"""

from __future__ import annotations

from illbridge.errors import WmsError, WmsProblem
from illbridge.models import Mapping, Outcome, Side, StepStatus
from illbridge.wms.messages import CancelRequestItem
from illbridge.wms.probe import PROBE_OPERATION, REQUESTED, NoProbe, holder_of, normalize_status, probe_for
from illbridge.workflow.common import check_in, existing_mapping, save
from illbridge.workflow.engine import StepContext, StepResult, outcome_of, raise_attention


def end_mapping(ctx: StepContext) -> StepResult:
    """End the request's mapping (the engine has waited for the step that puts things into WMS for its side,
    ``borrow_received`` or ``lend_shipped``, when that is still going to run)."""
    state = ctx.trigger
    mapping = existing_mapping(ctx)
    if mapping is None:
        ctx.note("request closed", f"{ctx.hrid} ended as {state}; nothing of it is in WMS")
        return StepResult(StepStatus.SUCCEEDED, {"checked_in": []})
    checked_in = []
    for barcode in [i.barcode for i in mapping.items if i.created_in_wms and not i.checked_in]:
        mapping = check_in(ctx, mapping, barcode, why=f"request ended as {state}")
        checked_in.append(barcode)
    held = still_held(ctx, mapping, checked_in) if mapping.side == Side.BORROWING else []
    if held:
        held = cancel_holds(ctx, mapping, held)
    mapping.open = False
    mapping.next_check_at = None
    mapping.reshare_state = state
    save(ctx, mapping)
    ctx.note("mapping closed", f"{ctx.hrid} ended as {state}; checked in: {', '.join(checked_in) or 'none'}")
    if held:
        raise_attention(
            ctx,
            f"Temp item(s) {', '.join(held)} of request {ctx.hrid} still have the patron's hold in WMS",
            "WMS kept the hold when the bridge checked the temp item in, and CancelRequestItem did not remove "
            "it (see the request's history): cancel the hold in WMS and send the item back to the lender.",
        )
    return StepResult(StepStatus.SUCCEEDED, {"checked_in": checked_in, "final_state": state, "held": held})


def still_held(ctx: StepContext, mapping: Mapping, barcodes: list[str]) -> list[str]:
    """The temp items WMS still holds for the patron after the check-in (verified, not assumed).

    What a check-in of a held, never-borrowed temp item does to its hold is not documented (simulator switch
    ``checkin_of_held_temp_item``): WMS may cancel the hold or put the item back on the hold shelf. The
    library's probe tells (LookupUser: the patron's requested items); with no probe, nothing can be said.
    """
    if not barcodes:
        return []
    probe = probe_for(ctx.config.wms, ctx.wms)
    if isinstance(probe, NoProbe):
        return []
    held = []
    with ctx.call(
        "wms", f"{PROBE_OPERATION[probe.name]} (hold left after check-in?)", {"items": barcodes}
    ) as answer:
        for barcode in barcodes:
            result = probe.is_checked_in(barcode, holder=holder_of(mapping))
            if result.supported and (
                result.circulation_status == REQUESTED
                or normalize_status(result.circulation_status) == "available for pickup"
            ):
                held.append(barcode)
        answer.summary = f"still held: {', '.join(held)}" if held else "no hold left"
    return held


# What WMS may answer to a CancelRequestItem for a hold that is gone already: the look that follows decides.
HOLD_ALREADY_GONE = frozenset({"Unknown Request", "Request Already Processed"})


def cancel_holds(ctx: StepContext, mapping: Mapping, barcodes: list[str]) -> list[str]:
    """Cancel the patron's hold on each temp item WMS kept (CancelRequestItem by ILL request id and item),
    then look again: the temp items still held, or whose cancel WMS refused or did not answer (what staff must
    see to; a retry of this step would not find them again, since they are checked in already)."""
    patron = mapping.patron_barcode
    if not patron:
        return barcodes
    failed: list[str] = []
    for barcode in barcodes:
        message = CancelRequestItem(request_id=mapping.hrid, patron_barcode=patron, item_barcode=barcode)
        logged = {k: v for k, v in message.logged().items() if k != "patron_barcode"}
        with ctx.call("wms", message.operation, {**logged, "why": "WMS kept the hold at check-in"}) as answer:
            try:
                result = ctx.wms.cancel(message)
            except WmsProblem as problem:
                answer.response = {"problem_type": problem.problem_type, "detail": problem.detail}
                if problem.problem_type in HOLD_ALREADY_GONE:
                    answer.summary = f"no hold left to cancel on {barcode} ({problem.problem_type})"
                    continue
                answer.outcome = Outcome.PROBLEM
                answer.summary = f"WMS refused to cancel the hold on {barcode}: {problem.problem_type}"
                failed.append(barcode)
                continue
            except WmsError as exc:  # a fault: not retried here, staff are told (and the history shows it)
                answer.outcome = outcome_of(exc)
                answer.summary = f"cancelling the hold on {barcode} failed: {exc}"
                failed.append(barcode)
                continue
            answer.summary = result.summary()
            answer.response = {"request_id": result.request_id, "item": result.item_barcode}
    left = (
        still_held(ctx, mapping, [b for b in barcodes if b not in failed])
        if len(failed) < len(barcodes)
        else []
    )
    return [b for b in barcodes if b in failed or b in left]
