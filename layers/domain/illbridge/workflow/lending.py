"""Lending (steps 4-6, docs/architecture.md#the-workflow-steps): check-out to the borrowing institution on
shipment, check-in on return."""

from __future__ import annotations

from illbridge.errors import NeedsStaff, PatronNotFound, WmsProblem
from illbridge.models import MappedItem, Mapping, PatronRequest, Side, StepName, StepStatus
from illbridge.wms.messages import CheckOutItem
from illbridge.workflow import common
from illbridge.workflow.engine import StepContext, StepResult, raise_attention, retry_command

RETURNED_STATES = frozenset({"RES_ITEM_RETURNED", "RES_OVERDUE"})
CLOSED_STATES = frozenset({"RES_COMPLETE", "RES_CANCELLED", "RES_UNFILLED"})


# --- 4. shipped: check the item out to the borrowing institution's account ------------------------------


def check_out_to_borrower(ctx: StepContext) -> StepResult:
    """CheckOutItem per item (the engine has checked the switch and the late-delivery guard, and verifies each
    item before re-sending after an attempt whose outcome is unknown: ``verify_checked_out``)."""
    mapping = lending_mapping(ctx, ctx.reshare_request())
    check_account(ctx, mapping)
    refused: list[tuple[str, WmsProblem]] = []

    def send(mapping: Mapping, item: MappedItem) -> bool:
        try:
            check_out(ctx, mapping, item)
        except WmsProblem as problem:  # a definite no for this volume: the other volumes still go out
            refused.append((item.barcode, problem))
            return False
        return True

    mapping = common.send_each(ctx, mapping, send)
    differences = due_date_differences(ctx, mapping)
    if refused:
        raise NeedsStaff(
            refusal_reason(ctx, mapping, refused, differences), refusal_fix(ctx, mapping, refused)
        )
    if differences:
        raise_attention(
            ctx,
            f"WMS set a different due date than ReShare ({common.calendar_day(mapping.lender_due_date) or '-'}) "
            f"for request {ctx.hrid}: {'; '.join(differences)}",
            "Check the borrowing institution account's expiry and loan policy in WMS, or the due date in ReShare.",
        )
    return StepResult(
        StepStatus.SUCCEEDED,
        {"checked_out": [i.barcode for i in mapping.items], "account": mapping.borrowing_institution_account},
    )


def due_date_differences(ctx: StepContext, mapping: Mapping) -> list[str]:
    """The items whose due date in WMS is another calendar date (in the library's time zone) than ReShare's."""
    lender_day = common.calendar_day(mapping.lender_due_date)
    differences = []
    for item in mapping.items:
        wms_day = common.library_day(ctx.config, item.wms_due_date) if item.created_in_wms else None
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
        reason += (
            f"; WMS set a different due date than ReShare ({common.calendar_day(mapping.lender_due_date)}): "
        )
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
    existing = common.existing_mapping(ctx)
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
    mapping = common.new_mapping(
        ctx,
        request,
        Side.LENDING,
        items=[
            MappedItem(barcode=v.item_id or "", volume_id=v.id, call_number=v.call_number) for v in barcodes
        ],
        borrowing_institution_account=account,
        partner_symbol=request.requesting_institution_symbol,
        lender_due_date=request.lender_due_date,
    )
    return ctx.store.create_mapping(mapping)


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
    return common.save(ctx, mapping)


def check_account(ctx: StepContext, mapping: Mapping) -> None:
    """The borrowing institution's account must exist, be unblocked and unexpired (step 4,
    docs/architecture.md#the-workflow-steps)."""
    wms = ctx.wms
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
        answer.summary = f"account {account} found, expires {expires or 'never'}"
        answer.response = {"blocked": patron.blocked, "expires": str(expires) if expires else None}
    if patron.blocked:
        raise NeedsStaff(f"Borrowing-institution account {account!r} is blocked in WMS", fix)
    if expires and expires < ctx.clock().date():
        raise NeedsStaff(f"Borrowing-institution account {account!r} expired on {expires}", fix)


def verify_checked_out(ctx: StepContext, mapping: Mapping, item: MappedItem) -> bool:
    """Verify before re-sending CheckOutItem: is the item already on loan to the account?

    LookupUser lists the account's loans (one call covers every item of the request); LookupItem gives the
    item's status. Without an answer the bridge sends CheckOutItem again and WMS's answer decides.
    """
    return common.verify_with_probe(
        ctx, mapping, item, message="CheckOutItem", holder=mapping.borrowing_institution_account, lending=True
    )


def check_out(ctx: StepContext, mapping: Mapping, item: MappedItem) -> None:
    message = CheckOutItem(
        item_barcode=item.barcode,
        user_barcode=mapping.borrowing_institution_account,
        request_id=mapping.hrid,
        desired_date_due=common.end_of_library_day(ctx.config, common.calendar_day(mapping.lender_due_date)),
        shipped_at=ctx.clock(),
    )
    with ctx.call("wms", message.operation, message.logged()) as answer:
        result = ctx.wms.check_out(message)
        item.wms_due_date = result.due_date
        answer.summary = (
            f"{item.barcode} checked out to {common.masked(mapping.borrowing_institution_account)}, "
            f"due {result.due_date.date() if result.due_date else 'per WMS policy'}"
        )
        answer.response = {"due_date": common.plain(result.due_date)}
    item.created_in_wms = True


# --- 5. complete: check the item in ---------------------------------------------------------------------


def check_in_lent_items(ctx: StepContext) -> StepResult:
    store = ctx.store
    mapping = common.existing_mapping(ctx)
    if mapping is None:
        ctx.note("nothing to check in", "the bridge never checked this request's item out")
        return StepResult(StepStatus.SUCCEEDED, {"checked_in": []})
    done = []
    for barcode in [i.barcode for i in mapping.items if not i.checked_in]:
        mapping = common.check_in(ctx, mapping, barcode, why="request complete in ReShare")
        done.append(barcode)
    mapping.open = False
    mapping.next_check_at = None
    common.save(ctx, mapping)
    store.resolve_attention(ctx.tenant, ctx.request_id, StepName.LEND_WMS_RETURNED.value)
    return StepResult(StepStatus.SUCCEEDED, {"checked_in": done})


# --- 6. checked in at WMS first: complete the ReShare request --------------------------------------------


def complete_after_wms_check_in(ctx: StepContext) -> StepResult:
    state = common.state_after_wms_check_in(ctx)
    if state == "RES_COMPLETE":
        ctx.note("ReShare already up to date", "ReShare shows RES_COMPLETE")
        mapping = common.existing_mapping(ctx)
        if mapping is not None and mapping.open:  # e.g. check_in_on_complete off: staff checked it in at WMS
            mapping.open = False
            common.save(ctx, mapping)
        return StepResult(StepStatus.SUCCEEDED, {"reshare_state": state})
    if state not in RETURNED_STATES or not ctx.config.steps.update_reshare_when_wms_checks_in_first:
        raise NeedsStaff(
            f"Update ReShare request {ctx.hrid}",
            f"The lent item was checked in at WMS while ReShare shows {state}; complete the request in ReShare "
            "once the item is really back.",
        )
    return common.perform(ctx, "supplierCheckOutOfReshare", state, f"{ctx.hrid} completed in ReShare")
