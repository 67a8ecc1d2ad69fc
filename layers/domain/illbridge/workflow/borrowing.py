"""Borrowing (steps 1-3, docs/architecture.md#the-workflow-steps): temp item + hold on receipt, check-in on
return, WMS-first returns."""

from __future__ import annotations

import re
from datetime import timedelta

from illbridge.errors import NeedsStaff, PatronNotFound, WmsProblem
from illbridge.models import MappedItem, Mapping, PatronRequest, Side, StepName, StepStatus
from illbridge.wms.messages import AcceptItem
from illbridge.wms.ncip import DUPLICATE_ITEM
from illbridge.workflow.common import (
    calendar_day,
    check_in,
    end_of_library_day,
    existing_mapping,
    masked,
    new_mapping,
    perform,
    save,
    send_each,
    state_after_wms_check_in,
    verify_with_probe,
)
from illbridge.workflow.engine import StepContext, StepResult, retry_command

RECEIVED_STATES = frozenset({"REQ_CHECKED_IN", "REQ_OVERDUE"})  # patron may still have it
# The patron is done with the item (returned, shipped back) or the request ended: no temp item any more.
PAST_RECEIVED_STATES = frozenset(
    {
        "REQ_AWAITING_RETURN_SHIPPING",
        "REQ_SHIPPED_TO_SUPPLIER",
        "REQ_REQUEST_COMPLETE",
        "REQ_CANCELLED",
        "REQ_END_OF_ROTA",
        "REQ_END_OF_ROTA_REVIEWED",
        "REQ_FILLED_LOCALLY",
    }
)
BRANCH_ID = re.compile(r"^\d{6}$")


# --- 1. received: temp item + hold ---------------------------------------------------------------------


def create_temp_items(ctx: StepContext) -> StepResult:
    """AcceptItem per volume (the engine has checked the switch and the late-delivery guard, and verifies each
    item before re-sending after an attempt whose outcome is unknown: ``verify_accepted``)."""
    request = ctx.reshare_request()
    mapping = borrowing_mapping(ctx, request)
    check_patron(ctx, mapping)
    mapping = send_each(ctx, mapping, lambda mapping, item: accept_item(ctx, request, mapping, item))
    return StepResult(
        StepStatus.SUCCEEDED,
        {"temp_items": [i.barcode for i in mapping.items], "pickup_branch": mapping.pickup_branch},
    )


def borrowing_mapping(ctx: StepContext, request: PatronRequest) -> Mapping:
    """The request's mapping, created on first sight with the temp barcodes and the pickup branch."""
    existing = existing_mapping(ctx)
    if existing is not None:
        return existing
    try:
        temp_items = request.temp_item_barcodes()
    except ValueError as exc:
        raise NeedsStaff(
            f"Request {ctx.hrid} has no usable volumes for temporary barcodes: {exc}",
            "Check the request's volumes (item barcodes) in ReShare, then retry.",
        ) from exc
    lender_due = request.lender_due_date
    lender_day = calendar_day(lender_due)
    # The lender's date, less the buffer, as the end of that day in the library's time zone: WMS lands on the
    # same calendar date whether it keeps the time or rounds to its local end of day.
    date_for_return = (
        end_of_library_day(ctx.config, lender_day - timedelta(days=ctx.config.return_buffer_days))
        if lender_day is not None
        else None
    )
    mapping = new_mapping(
        ctx,
        request,
        Side.BORROWING,
        items=[
            MappedItem(
                barcode=barcode,
                volume_id=volume.id if volume else None,
                call_number=(volume.call_number if volume else None) or request.local_call_number,
                lender_item_id=volume.item_id if volume else None,
            )
            for volume, barcode in temp_items
        ],
        patron_barcode=request.patron_identifier,
        partner_symbol=request.supplying_institution_symbol,
        pickup_branch=pickup_branch(ctx, request),
        lender_due_date=lender_due,
        date_for_return=date_for_return,
    )
    if not mapping.patron_barcode:
        raise NeedsStaff(
            f"Request {ctx.hrid} has no patron barcode (patronIdentifier)",
            "Add the patron's barcode to the request in ReShare, then retry.",
        )
    return ctx.store.create_mapping(mapping)


def pickup_branch(ctx: StepContext, request: PatronRequest) -> str:
    """The WMS branch for the request's pickup location: the library's map first, then ReShare's LMS code."""
    resolved = request.resolved_pickup_location
    code = resolved.lms_location_code if resolved else None
    branch = ctx.config.branch_for(request.pickup_location_slug, request.pickup_location, code)
    if branch is None and code and BRANCH_ID.match(code):
        branch = code
    if branch is None:
        where = request.pickup_location or request.pickup_location_slug or "(none)"
        raise NeedsStaff(
            f"Pickup location {where!r} (slug {request.pickup_location_slug!r}) of request {ctx.hrid} "
            "has no WMS branch",
            "Add the pickup location to the library's pickup_branches (a 6-digit branch registry id), "
            "or give it an LMS location code in ReShare; then retry with: "
            + retry_command(ctx.config.library_id, ctx.hrid, ctx.step),
        )
    return branch


def check_patron(ctx: StepContext, mapping: Mapping) -> None:
    """Make sure WMS knows the patron before creating anything (a clear message beats a Problem later)."""
    wms = ctx.wms
    barcode = mapping.patron_barcode or ""
    with ctx.call("wms", "SCIM patron look-up", {"patron_barcode": masked(barcode)}) as answer:
        try:
            patron = wms.lookup_patron(barcode)
        except PatronNotFound as exc:
            raise NeedsStaff(
                f"WMS does not know patron {masked(barcode)} of request {ctx.hrid}",
                "Correct the patron barcode in ReShare or add the patron to WMS, then retry with: "
                + retry_command(ctx.config.library_id, ctx.hrid, ctx.step),
            ) from exc
        flags = [flag for flag, on in (("blocked", patron.blocked), ("expired", _expired(ctx, patron))) if on]
        answer.summary = f"patron {masked(barcode)} found" + (f" ({', '.join(flags)})" if flags else "")
        answer.response = {"blocked": patron.blocked, "expired": "expired" in flags}


def _expired(ctx: StepContext, patron: object) -> bool:
    expires = getattr(patron, "expires", None)
    return bool(expires and expires < ctx.clock().date())


def verify_accepted(ctx: StepContext, mapping: Mapping, item: MappedItem) -> bool:
    """Verify before re-sending AcceptItem: does WMS already hold this temp item?

    Asks the library's probe: LookupUser lists the temp item among the patron's requested items (its hold)
    once AcceptItem was applied; LookupItem finds the item. With no probe, or one WMS does not answer, the
    bridge re-sends, and the AcceptItem answer decides (``Duplicate Item`` for our own temp barcode).
    """
    return verify_with_probe(
        ctx, mapping, item, message="AcceptItem", holder=mapping.patron_barcode, lending=False
    )


def accept_item(ctx: StepContext, request: PatronRequest, mapping: Mapping, item: MappedItem) -> None:
    config = ctx.config
    agency_id = config.lending_agency_id(mapping.partner_symbol)
    if agency_id is None:
        raise NeedsStaff(
            f"No WMS agency id for lender {mapping.partner_symbol or '(no symbol on the request)'} of request "
            f"{ctx.hrid} ({config.wms.lending_agency_scheme} scheme)",
            "Add the lender's registry id to the library's partner_agency_ids (illbridge check-config "
            "lists every partner without one), then retry with: "
            + retry_command(ctx.config.library_id, ctx.hrid, ctx.step),
        )
    message = AcceptItem(
        request_id=mapping.hrid,
        temp_item_barcode=item.barcode,
        lending_agency_id=agency_id,
        lending_agency_scheme=config.wms.lending_agency_scheme,
        patron_barcode=mapping.patron_barcode or "",
        pickup_branch=mapping.pickup_branch or "",
        date_for_return=mapping.date_for_return,
        title=request.title,
        author=request.author,
        publisher=request.publisher,
        publication_date=request.publication_date,
        call_number=item.call_number,
    )
    with ctx.call("wms", message.operation, message.logged()) as answer:
        try:
            ctx.wms.accept(message)
            answer.summary = f"temp item {item.barcode} and a hold for the patron at branch {mapping.pickup_branch} created"
        except WmsProblem as problem:
            if problem.problem_type != DUPLICATE_ITEM:
                raise
            # Our own temp barcode (derived from this request's hrid): an earlier attempt created it.
            answer.summary = f"temp item {item.barcode} already exists in WMS (Duplicate Item): success"
            answer.response = {"problem_type": problem.problem_type}
    item.created_in_wms = True


# --- 3a. returned in ReShare first: check the temp items in --------------------------------------------


def check_in_temp_items(ctx: StepContext) -> StepResult:
    store = ctx.store
    received = store.get_step(ctx.tenant, ctx.request_id, StepName.BORROW_RECEIVED)
    mapping = existing_mapping(ctx)
    if received is None and mapping is None:
        # Received and returned between two polls (or the received event is still on its way): ReShare is
        # already past receipt, so borrow_received will create nothing either (its late-delivery guard), and
        # waiting for it could only end in an attention item about nothing.
        ctx.note("nothing to check in", "returned before the bridge saw it received: no temp item was made")
        return StepResult(StepStatus.SUCCEEDED, {"checked_in": []})
    created = [i for i in mapping.items if i.created_in_wms] if mapping else []
    if mapping is None or not created:
        status = received.status if received else None
        ctx.note("nothing to check in", f"no temp item was created in WMS (received step {status})")
        return StepResult(StepStatus.SUCCEEDED, {"checked_in": []})
    for barcode in [i.barcode for i in created if not i.checked_in]:
        mapping = check_in(ctx, mapping, barcode, why="returned in ReShare")
    mapping.next_check_at = None  # nothing left for reconciliation to notice
    mapping = save(ctx, mapping)
    # If staff were asked to update ReShare after a WMS-first check-in, ReShare now shows it done.
    ctx.store.resolve_attention(ctx.tenant, ctx.request_id, StepName.BORROW_WMS_RETURNED.value)
    return StepResult(StepStatus.SUCCEEDED, {"checked_in": [i.barcode for i in created]})


# --- 3b. checked in at WMS first: update ReShare --------------------------------------------------------


def update_reshare_after_wms_check_in(ctx: StepContext) -> StepResult:
    state = state_after_wms_check_in(ctx)
    if state not in RECEIVED_STATES:
        ctx.note("ReShare already up to date", f"ReShare shows {state}: nothing to update")
        return StepResult(StepStatus.SUCCEEDED, {"reshare_state": state})
    if not ctx.config.steps.update_reshare_when_wms_checks_in_first:
        raise NeedsStaff(
            f"Update ReShare request {ctx.hrid}",
            f"The temp item was checked in at WMS; mark request {ctx.hrid} returned by patron in ReShare.",
        )
    return perform(ctx, "patronReturnedItem", state, f"{ctx.hrid} marked returned by patron in ReShare")
