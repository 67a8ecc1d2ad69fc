"""Borrowing (steps 1-3, docs/architecture.md#the-workflow-steps): temp item + hold on receipt, check-in on
return, WMS-first returns."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from illbridge.errors import NeedsStaff, PatronNotFound, WmsProblem
from illbridge.models import (
    MappedItem,
    Mapping,
    Outcome,
    PatronRequest,
    ReShareRequestChanged,
    Side,
    StepName,
    StepStatus,
    WmsItemCheckedIn,
)
from illbridge.wms.ncip import DUPLICATE_ITEM
from illbridge.wms.probe import PROBE_OPERATION, NoProbe, probe_for
from illbridge.workflow.common import (
    calendar_day,
    check_in,
    end_of_library_day,
    fetch_request,
    mark_checked_in,
    masked,
    next_check,
    plain,
    save,
    skipped_by_configuration,
    wait_for,
)
from illbridge.workflow.engine import StepContext, StepResult, retry_command, run_for_change, run_step
from illbridge.workflow.notices import confirm_notice
from illbridge.workflow.services import Services

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


def on_item_received(services: Services, change: ReShareRequestChanged) -> StepResult:
    return run_for_change(services, change, StepName.BORROW_RECEIVED, create_temp_items)


def create_temp_items(ctx: StepContext) -> StepResult:
    if not ctx.config.steps.create_temp_item_on_received:
        return StepResult(skipped_by_configuration(ctx, "create_temp_item_on_received"))
    request = fetch_request(ctx)
    state = request.state.code
    if state in PAST_RECEIVED_STATES and ctx.services.store.get_mapping(ctx.tenant, ctx.request_id) is None:
        # A late (or out-of-order) delivery: the returned/closed steps may already have run and found nothing
        # to check in, so a temp item created now would keep its hold forever. Nothing was sent before (no
        # mapping), so there is nothing in WMS to account for.
        ctx.note("nothing to create", f"ReShare already shows {state}: no temp item or hold", Outcome.SKIPPED)
        return StepResult(StepStatus.SKIPPED, {"reshare_state": state})
    mapping = borrowing_mapping(ctx, request)
    check_patron(ctx, mapping)
    for barcode in [i.barcode for i in mapping.items if not i.created_in_wms]:
        item = mapping.item(barcode)
        assert item is not None
        if ctx.reclaimed and found_in_wms(ctx, mapping, item):
            item.created_in_wms = True
        else:
            accept_item(ctx, request, mapping, item)
        mapping = save(ctx, mapping)
    next_check(ctx, mapping)
    mapping = save(ctx, mapping)
    return StepResult(
        StepStatus.SUCCEEDED,
        {"temp_items": [i.barcode for i in mapping.items], "pickup_branch": mapping.pickup_branch},
    )


def borrowing_mapping(ctx: StepContext, request: PatronRequest) -> Mapping:
    """The request's mapping, created on first sight with the temp barcodes and the pickup branch."""
    store = ctx.services.store
    existing = store.get_mapping(ctx.tenant, ctx.request_id)
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
    mapping = Mapping(
        library_id=ctx.config.library_id,
        tenant=ctx.tenant,
        request_id=ctx.request_id,
        hrid=request.hrid or ctx.hrid,
        side=Side.BORROWING,
        registry_id=ctx.config.wms.registry_id,
        reshare_state=request.state.code,
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
        created_at=ctx.services.clock(),
    )
    if not mapping.patron_barcode:
        raise NeedsStaff(
            f"Request {ctx.hrid} has no patron barcode (patronIdentifier)",
            "Add the patron's barcode to the request in ReShare, then retry.",
        )
    return store.create_mapping(mapping)


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
    wms = ctx.services.wms(ctx.config)
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
        answer["summary"] = f"patron {masked(barcode)} found" + (f" ({', '.join(flags)})" if flags else "")
        answer["response"] = {"blocked": patron.blocked, "expired": "expired" in flags}


def _expired(ctx: StepContext, patron: object) -> bool:
    expires = getattr(patron, "expires", None)
    return bool(expires and expires < ctx.services.clock().date())


def found_in_wms(ctx: StepContext, mapping: Mapping, item: MappedItem) -> bool:
    """After an attempt whose outcome is unknown: does WMS already hold this temp item? (Verify first.)

    Asks the library's probe: LookupUser lists the temp item among the patron's requested items (its hold)
    once AcceptItem was applied; LookupItem finds the item. With no probe, or one WMS does not answer, the
    bridge re-sends, and the AcceptItem answer decides (``Duplicate Item`` for our own temp barcode).
    """
    probe = probe_for(ctx.config.wms, ctx.services.wms(ctx.config))
    if isinstance(probe, NoProbe):
        return False
    operation = f"{PROBE_OPERATION[probe.name]} (verify before re-sending)"
    with ctx.call("wms", operation, {"item_barcode": item.barcode}) as answer:
        result = probe.is_checked_in(item.barcode, holder=mapping.patron_barcode)
        answer["response"] = {"found": result.found, "status": result.circulation_status or result.detail}
        if not result.supported:
            answer["summary"] = f"WMS cannot be asked ({result.detail}): AcceptItem will be sent"
            return False
        if not result.found:
            answer["summary"] = f"{item.barcode} is not in WMS: AcceptItem will be sent"
            return False
        answer["summary"] = (
            f"{item.barcode} is already in WMS ({result.circulation_status or result.detail}): not sent again"
        )
        return True


def accept_item(ctx: StepContext, request: PatronRequest, mapping: Mapping, item: MappedItem) -> None:
    wms = ctx.services.wms(ctx.config)
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
    fields: dict[str, Any] = {
        "request_id": mapping.hrid,
        "temp_item_barcode": item.barcode,
        "lending_agency_id": agency_id,
        "lending_agency_scheme": config.wms.lending_agency_scheme,
        "patron_barcode": mapping.patron_barcode,
        "pickup_branch": mapping.pickup_branch,
        "date_for_return": mapping.date_for_return,
        "title": request.title,
        "author": request.author,
        "publisher": request.publisher,
        "publication_date": request.publication_date,
        "call_number": item.call_number,
    }
    logged = {**fields, "patron_barcode": masked(mapping.patron_barcode)}
    with ctx.call("wms", "AcceptItem", {k: plain(v) for k, v in logged.items()}) as answer:
        try:
            wms.accept_item(**fields)
            answer["summary"] = (
                f"temp item {item.barcode} and a hold for the patron at branch {mapping.pickup_branch} created"
            )
        except WmsProblem as problem:
            if problem.problem_type != DUPLICATE_ITEM:
                raise
            # Our own temp barcode (derived from this request's hrid): an earlier attempt created it.
            answer["summary"] = f"temp item {item.barcode} already exists in WMS (Duplicate Item): success"
            answer["response"] = {"problem_type": problem.problem_type}
    item.created_in_wms = True


# --- 3a. returned in ReShare first: check the temp items in --------------------------------------------


def on_item_returned(services: Services, change: ReShareRequestChanged) -> StepResult:
    return run_for_change(services, change, StepName.BORROW_RETURNED, check_in_temp_items)


def check_in_temp_items(ctx: StepContext) -> StepResult:
    if not ctx.config.steps.check_in_on_returned:
        return StepResult(skipped_by_configuration(ctx, "check_in_on_returned"))
    store = ctx.services.store
    if store.get_step(ctx.tenant, ctx.request_id, StepName.BORROW_RECEIVED) is None and (
        store.get_mapping(ctx.tenant, ctx.request_id) is None
    ):
        # Received and returned between two polls (or the received event is still on its way): ReShare is
        # already past receipt, so borrow_received will create nothing either (create_temp_items), and
        # waiting for it could only end in an attention item about nothing.
        ctx.note("nothing to check in", "returned before the bridge saw it received: no temp item was made")
        return StepResult(StepStatus.SUCCEEDED, {"checked_in": []})
    received = wait_for(ctx, StepName.BORROW_RECEIVED)
    mapping = store.get_mapping(ctx.tenant, ctx.request_id)
    created = [i for i in mapping.items if i.created_in_wms] if mapping else []
    if mapping is None or not created:
        ctx.note("nothing to check in", f"no temp item was created in WMS (received step {received})")
        return StepResult(StepStatus.SUCCEEDED, {"checked_in": []})
    for barcode in [i.barcode for i in created if not i.checked_in]:
        mapping = check_in(ctx, mapping, barcode, why="returned in ReShare")
    mapping.next_check_at = None  # nothing left for reconciliation to notice
    mapping = save(ctx, mapping)
    # If staff were asked to update ReShare after a WMS-first check-in, ReShare now shows it done.
    ctx.services.store.resolve_attention(ctx.tenant, ctx.request_id, StepName.BORROW_WMS_RETURNED.value)
    return StepResult(StepStatus.SUCCEEDED, {"checked_in": [i.barcode for i in created]})


# --- 3b. checked in at WMS first: update ReShare --------------------------------------------------------


def on_wms_check_in(services: Services, event: WmsItemCheckedIn) -> StepResult:
    confirmation = confirm_notice(
        services, event, StepName.BORROW_WMS_RETURNED
    )  # a webhook notice: ask WMS first
    if not confirmation.confirmed:
        assert confirmation.result is not None
        return confirmation.result
    mapping = mark_checked_in(services, event, Side.BORROWING)
    if mapping is None:
        return StepResult(StepStatus.SKIPPED, {"reason": "no open borrowing mapping for this item"})
    if not all(i.checked_in for i in mapping.items if i.created_in_wms):
        waiting = [i.barcode for i in mapping.items if i.created_in_wms and not i.checked_in]
        return StepResult(StepStatus.SKIPPED, {"reason": "waiting for other volumes", "waiting": waiting})
    return run_step(
        services,
        services.configs.get(mapping.library_id),
        tenant=mapping.tenant,
        request_id=mapping.request_id,
        hrid=mapping.hrid,
        step=StepName.BORROW_WMS_RETURNED,
        trigger=f"WmsItemCheckedIn {event.item_barcode}",
        act=update_reshare_after_wms_check_in,
    )


def update_reshare_after_wms_check_in(ctx: StepContext) -> StepResult:
    store = ctx.services.store
    mapping = store.get_mapping(ctx.tenant, ctx.request_id)
    if mapping is not None and mapping.next_check_at is not None:
        mapping.next_check_at = None
        save(ctx, mapping)
    request = fetch_request(ctx)
    state = request.state.code
    if state not in RECEIVED_STATES:
        ctx.note("ReShare already up to date", f"ReShare shows {state}: nothing to update")
        return StepResult(StepStatus.SUCCEEDED, {"reshare_state": state})
    if not ctx.config.steps.update_reshare_when_wms_checks_in_first:
        raise NeedsStaff(
            f"Update ReShare request {ctx.hrid}",
            f"The temp item was checked in at WMS; mark request {ctx.hrid} returned by patron in ReShare.",
        )
    reshare = ctx.services.reshare(ctx.config)
    with ctx.call("reshare", "performAction patronReturnedItem", {"from_state": state}) as answer:
        reshare.perform_action(ctx.request_id, "patronReturnedItem", {})
        answer["summary"] = f"{ctx.hrid} marked returned by patron in ReShare"
    return StepResult(StepStatus.SUCCEEDED, {"action": "patronReturnedItem"})
