"""Lending (steps 4-6, docs/architecture.md#the-workflow-steps): check-out to the borrowing institution on
shipment, check-in on return."""

from __future__ import annotations

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
from illbridge.wms.probe import PROBE_OPERATION, CheckinProbe, NoProbe, probe_for
from illbridge.workflow.common import (
    PENDING,
    WaitingForEarlierStep,
    calendar_day,
    check_in,
    end_of_library_day,
    fetch_request,
    library_day,
    mark_checked_in,
    masked,
    next_check,
    plain,
    save,
    skipped_by_configuration,
)
from illbridge.workflow.engine import (
    StepContext,
    StepResult,
    raise_attention,
    retry_command,
    run_for_change,
    run_step,
)
from illbridge.workflow.notices import confirm_notice
from illbridge.workflow.services import Services

RETURNED_STATES = frozenset({"RES_ITEM_RETURNED", "RES_OVERDUE"})
CLOSED_STATES = frozenset({"RES_COMPLETE", "RES_CANCELLED", "RES_UNFILLED"})


# --- 4. shipped: check the item out to the borrowing institution's account ------------------------------


def on_item_shipped(services: Services, change: ReShareRequestChanged) -> StepResult:
    return run_for_change(services, change, StepName.LEND_SHIPPED, check_out_to_borrower)


def check_out_to_borrower(ctx: StepContext) -> StepResult:
    if not ctx.config.steps.check_out_on_shipped:
        return StepResult(skipped_by_configuration(ctx, "check_out_on_shipped"))
    request = fetch_request(ctx)
    state = request.state.code
    if state in CLOSED_STATES and ctx.services.store.get_mapping(ctx.tenant, ctx.request_id) is None:
        # A late (or out-of-order) delivery: the complete step may already have run and found nothing to
        # check in, so a check-out now would leave the item on loan for good. Nothing was sent before.
        ctx.note(
            "nothing to check out",
            f"ReShare already shows {state}: the item is not checked out",
            Outcome.SKIPPED,
        )
        return StepResult(StepStatus.SKIPPED, {"reshare_state": state})
    mapping = lending_mapping(ctx, request)
    check_account(ctx, mapping)
    refused: list[tuple[str, WmsProblem]] = []
    probe = probe_for(ctx.config.wms, ctx.services.wms(ctx.config))
    for barcode in [i.barcode for i in mapping.items if not i.created_in_wms]:
        item = mapping.item(barcode)
        assert item is not None
        if not (ctx.reclaimed and on_loan_in_wms(ctx, mapping, item, probe)):
            try:
                check_out(ctx, mapping, item)
            except WmsProblem as problem:  # a definite no for this volume: the other volumes still go out
                refused.append((barcode, problem))
                continue
        mapping = save(ctx, mapping)
    next_check(ctx, mapping)
    mapping = save(ctx, mapping)
    differences = due_date_differences(ctx, mapping)
    if refused:
        raise NeedsStaff(
            refusal_reason(ctx, mapping, refused, differences), refusal_fix(ctx, mapping, refused)
        )
    if differences:
        raise_attention(
            ctx,
            f"WMS set a different due date than ReShare ({calendar_day(mapping.lender_due_date) or '-'}) "
            f"for request {ctx.hrid}: {'; '.join(differences)}",
            "Check the borrowing institution account's expiry and loan policy in WMS, or the due date in ReShare.",
        )
    return StepResult(
        StepStatus.SUCCEEDED,
        {"checked_out": [i.barcode for i in mapping.items], "account": mapping.borrowing_institution_account},
    )


def due_date_differences(ctx: StepContext, mapping: Mapping) -> list[str]:
    """The items whose due date in WMS is another calendar date (in the library's time zone) than ReShare's."""
    lender_day = calendar_day(mapping.lender_due_date)
    differences = []
    for item in mapping.items:
        wms_day = library_day(ctx.config, item.wms_due_date) if item.created_in_wms else None
        if lender_day and wms_day and wms_day != lender_day:
            differences.append(f"{item.barcode}: WMS due {wms_day}")
    return differences


# What a lender's staff do about each NCIP Problem WMS answers a CheckOutItem with (docs/operations.md#lending).
CHECK_OUT_FIXES = {
    "Unknown Item": "add the item to WMS under the barcode ReShare has (or correct the barcode in WMS)",
    "Resource Cannot Be Provided": (
        "check the item in at WMS (it is on loan or on hold to someone else there) or clear the hold"
    ),
    "User Blocked": "unblock the borrowing-institution account {account} in WMS",
    "User Ineligible To Check Out This Item": "renew or unblock the borrowing-institution account {account} in WMS",
    "Unknown User": "add the borrowing-institution account {account} to WMS (or map the partner to another one)",
}


def refusal_reason(
    ctx: StepContext, mapping: Mapping, refused: list[tuple[str, WmsProblem]], differences: list[str]
) -> str:
    account = mapping.borrowing_institution_account
    said = "; ".join(
        f"{barcode}: {problem.problem_type}" + (f" ({problem.detail})" if problem.detail else "")
        for barcode, problem in refused
    )
    out = [i.barcode for i in mapping.items if i.created_in_wms]
    reason = f"WMS would not check out {len(refused)} of {len(mapping.items)} item(s) of request {ctx.hrid} "
    reason += f"to {account}: {said}"
    if out:
        reason += f"; checked out: {', '.join(out)}"
    if differences:
        reason += f"; WMS set a different due date than ReShare ({calendar_day(mapping.lender_due_date)}): "
        reason += "; ".join(differences)
    return reason


def refusal_fix(ctx: StepContext, mapping: Mapping, refused: list[tuple[str, WmsProblem]]) -> str:
    account = mapping.borrowing_institution_account or "(none)"
    generic = "fix the item or the account in WMS (or check the item out to {account} by hand in WMS)"
    fixes = []
    for _, problem in refused:
        fix = CHECK_OUT_FIXES.get(problem.problem_type, generic).format(account=account)
        if fix not in fixes:
            fixes.append(fix)
    text = "; ".join(fixes)
    return (
        f"{text[:1].upper()}{text[1:]}, then retry (only the items not checked out are sent) with: "
        + retry_command(ctx.config.library_id, ctx.hrid, ctx.step)
    )


def lending_mapping(ctx: StepContext, request: PatronRequest) -> Mapping:
    store = ctx.services.store
    existing = store.get_mapping(ctx.tenant, ctx.request_id)
    if existing is not None:
        return remapped(ctx, existing)
    barcodes = [v for v in (request.volumes or []) if v.item_id]
    if not barcodes:
        raise NeedsStaff(
            f"Request {ctx.hrid} has no item barcodes (volumes' itemId) to check out",
            "Fill the request with the item's barcode in ReShare, then retry.",
        )
    account = ctx.config.account_for_partner(request.requesting_institution_symbol)
    if not account:
        raise NeedsStaff(
            f"No WMS account for borrowing institution {request.requesting_institution_symbol!r}",
            "Add the partner to partner_accounts (or set default_partner_account), then retry with: "
            + retry_command(ctx.config.library_id, ctx.hrid, ctx.step),
        )
    mapping = Mapping(
        library_id=ctx.config.library_id,
        tenant=ctx.tenant,
        request_id=ctx.request_id,
        hrid=request.hrid or ctx.hrid,
        side=Side.LENDING,
        registry_id=ctx.config.wms.registry_id,
        reshare_state=request.state.code,
        items=[
            MappedItem(barcode=v.item_id or "", volume_id=v.id, call_number=v.call_number) for v in barcodes
        ],
        borrowing_institution_account=account,
        partner_symbol=request.requesting_institution_symbol,
        lender_due_date=request.lender_due_date,
        created_at=ctx.services.clock(),
    )
    return store.create_mapping(mapping)


def remapped(ctx: StepContext, mapping: Mapping) -> Mapping:
    """A retry after staff mapped the partner to another account: while nothing is checked out yet, the
    account is the one the library's settings name now (once an item is out, the others follow it there)."""
    account = ctx.config.account_for_partner(mapping.partner_symbol)
    if not account or account == mapping.borrowing_institution_account:
        return mapping
    if any(i.created_in_wms for i in mapping.items):
        return mapping
    ctx.note(
        "account changed",
        f"partner {mapping.partner_symbol} now maps to {account} (was {mapping.borrowing_institution_account})",
    )
    mapping.borrowing_institution_account = account
    return save(ctx, mapping)


def check_account(ctx: StepContext, mapping: Mapping) -> None:
    """The borrowing institution's account must exist, be unblocked and unexpired (step 4,
    docs/architecture.md#the-workflow-steps)."""
    wms = ctx.services.wms(ctx.config)
    account = mapping.borrowing_institution_account or ""
    fix = (
        "Renew or unblock the account in WMS (or map the partner to another account), then retry with: "
        + retry_command(ctx.config.library_id, ctx.hrid, ctx.step)
    )
    with ctx.call("wms", "SCIM account look-up", {"account": account}) as answer:
        try:
            patron = wms.lookup_patron(account)
        except PatronNotFound as exc:
            raise NeedsStaff(f"WMS has no borrowing-institution account {account!r}", fix) from exc
        expires = getattr(patron, "expires", None)
        answer["summary"] = f"account {account} found, expires {expires or 'never'}"
        answer["response"] = {"blocked": patron.blocked, "expires": str(expires) if expires else None}
    if patron.blocked:
        raise NeedsStaff(f"Borrowing-institution account {account!r} is blocked in WMS", fix)
    if expires and expires < ctx.services.clock().date():
        raise NeedsStaff(f"Borrowing-institution account {account!r} expired on {expires}", fix)


def on_loan_in_wms(ctx: StepContext, mapping: Mapping, item: MappedItem, probe: CheckinProbe) -> bool:
    """After an attempt whose outcome is unknown: is the item already on loan to the account? (Verify first.)

    LookupUser lists the account's loans (one call covers every item of the request); LookupItem gives the
    item's status. Without an answer the bridge sends CheckOutItem again and WMS's answer decides.
    """
    if isinstance(probe, NoProbe):
        return False
    account = mapping.borrowing_institution_account
    operation = f"{PROBE_OPERATION[probe.name]} (verify before re-sending)"
    with ctx.call("wms", operation, {"item_barcode": item.barcode, "account": masked(account)}) as answer:
        result = probe.is_checked_in(item.barcode, seen_on_loan=True, holder=account)
        answer["response"] = {"on_loan": result.on_loan, "status": result.circulation_status or result.detail}
        if not result.supported or not result.on_loan:
            answer["summary"] = (
                f"{item.barcode} is not on loan to {masked(account)}: CheckOutItem will be sent"
                if result.supported
                else f"WMS cannot be asked ({result.detail}): CheckOutItem will be sent"
            )
            return False
        item.created_in_wms = True
        item.wms_due_date = result.due_date
        answer["summary"] = f"{item.barcode} is already on loan to {masked(account)}: not sent again"
        return True


def check_out(ctx: StepContext, mapping: Mapping, item: MappedItem) -> None:
    wms = ctx.services.wms(ctx.config)
    fields: dict[str, Any] = {
        "item_barcode": item.barcode,
        "user_barcode": mapping.borrowing_institution_account,
        "request_id": mapping.hrid,
        "desired_date_due": end_of_library_day(ctx.config, calendar_day(mapping.lender_due_date)),
        "shipped_at": ctx.services.clock(),
    }
    with ctx.call("wms", "CheckOutItem", {k: plain(v) for k, v in fields.items()}) as answer:
        result = wms.check_out_item(**fields)
        item.wms_due_date = result.due_date
        answer["summary"] = (
            f"{item.barcode} checked out to {masked(mapping.borrowing_institution_account)}, "
            f"due {result.due_date.date() if result.due_date else 'per WMS policy'}"
        )
        answer["response"] = {"due_date": plain(result.due_date)}
    item.created_in_wms = True


# --- 5. complete: check the item in ---------------------------------------------------------------------


def on_request_complete(services: Services, change: ReShareRequestChanged) -> StepResult:
    return run_for_change(services, change, StepName.LEND_RETURNED, check_in_lent_items)


def check_in_lent_items(ctx: StepContext) -> StepResult:
    if not ctx.config.steps.check_in_on_complete:
        return StepResult(skipped_by_configuration(ctx, "check_in_on_complete"))
    store = ctx.services.store
    shipped = store.get_step(ctx.tenant, ctx.request_id, StepName.LEND_SHIPPED)
    if shipped is not None and shipped.status in PENDING:
        raise WaitingForEarlierStep(f"{StepName.LEND_SHIPPED.value} of {ctx.hrid} is still running")
    mapping = store.get_mapping(ctx.tenant, ctx.request_id)
    if mapping is None:
        ctx.note("nothing to check in", "the bridge never checked this request's item out")
        return StepResult(StepStatus.SUCCEEDED, {"checked_in": []})
    done = []
    for barcode in [i.barcode for i in mapping.items if not i.checked_in]:
        mapping = check_in(ctx, mapping, barcode, why="request complete in ReShare")
        done.append(barcode)
    mapping.open = False
    mapping.next_check_at = None
    save(ctx, mapping)
    store.resolve_attention(ctx.tenant, ctx.request_id, StepName.LEND_WMS_RETURNED.value)
    return StepResult(StepStatus.SUCCEEDED, {"checked_in": done})


# --- 6. checked in at WMS first: complete the ReShare request --------------------------------------------


def on_wms_check_in(services: Services, event: WmsItemCheckedIn) -> StepResult:
    confirmation = confirm_notice(
        services, event, StepName.LEND_WMS_RETURNED
    )  # a webhook notice: ask WMS first
    if not confirmation.confirmed:
        assert confirmation.result is not None
        return confirmation.result
    mapping = mark_checked_in(services, event, Side.LENDING)
    if mapping is None:
        return StepResult(StepStatus.SKIPPED, {"reason": "no open lending mapping for this item"})
    if not all(i.checked_in for i in mapping.items):
        return StepResult(StepStatus.SKIPPED, {"reason": "waiting for other volumes"})
    return run_step(
        services,
        services.configs.get(mapping.library_id),
        tenant=mapping.tenant,
        request_id=mapping.request_id,
        hrid=mapping.hrid,
        step=StepName.LEND_WMS_RETURNED,
        trigger=f"WmsItemCheckedIn {event.item_barcode}",
        act=complete_after_wms_check_in,
    )


def complete_after_wms_check_in(ctx: StepContext) -> StepResult:
    mapping = ctx.services.store.get_mapping(ctx.tenant, ctx.request_id)
    if mapping is not None and mapping.next_check_at is not None:
        mapping.next_check_at = None
        save(ctx, mapping)
    request = fetch_request(ctx)
    state = request.state.code
    if state == "RES_COMPLETE":
        ctx.note("ReShare already up to date", "ReShare shows RES_COMPLETE")
        if mapping is not None and mapping.open:  # e.g. check_in_on_complete off: staff checked it in at WMS
            mapping.open = False
            save(ctx, mapping)
        return StepResult(StepStatus.SUCCEEDED, {"reshare_state": state})
    if state not in RETURNED_STATES or not ctx.config.steps.update_reshare_when_wms_checks_in_first:
        raise NeedsStaff(
            f"Update ReShare request {ctx.hrid}",
            f"The lent item was checked in at WMS while ReShare shows {state}; complete the request in ReShare "
            "once the item is really back.",
        )
    reshare = ctx.services.reshare(ctx.config)
    with ctx.call("reshare", "performAction supplierCheckOutOfReshare", {"from_state": state}) as answer:
        reshare.perform_action(ctx.request_id, "supplierCheckOutOfReshare", {})
        answer["summary"] = f"{ctx.hrid} completed in ReShare"
    return StepResult(StepStatus.SUCCEEDED, {"action": "supplierCheckOutOfReshare"})


__all__ = ["WmsProblem", "on_item_shipped", "on_request_complete", "on_wms_check_in"]
