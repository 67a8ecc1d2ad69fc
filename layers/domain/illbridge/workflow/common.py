"""Pieces the step rules share: mapping bookkeeping, sending per item, verifying with the probe, WMS check-in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from illbridge.config import LibraryConfig
from illbridge.errors import WmsProblem
from illbridge.models import MappedItem, Mapping, PatronRequest, Side, StepStatus, WmsItemCheckedIn
from illbridge.observability import mask
from illbridge.wms.messages import CheckInItem
from illbridge.wms.ncip import CHECK_IN_ALREADY_DONE
from illbridge.wms.probe import PROBE_OPERATION, NoProbe, probe_for
from illbridge.workflow.engine import StepContext, StepResult
from illbridge.workflow.ports import StorePort

# WMS answers to a check-in of something already checked in; the bridge counts them as success (docs/wms.md#checkinitem).
ALREADY_CHECKED_IN = CHECK_IN_ALREADY_DONE


def save(ctx: StepContext, mapping: Mapping) -> Mapping:
    ctx.keep_private(mapping.patron_barcode)
    return ctx.store.save_mapping(mapping)


def existing_mapping(ctx: StepContext) -> Mapping | None:
    return ctx.store.get_mapping(ctx.tenant, ctx.request_id)


def new_mapping(ctx: StepContext, request: PatronRequest, side: Side, **fields: Any) -> Mapping:
    """A first mapping of this request for ``side`` (the fields every side has, and the side's own)."""
    return Mapping(
        library_id=ctx.config.library_id,
        tenant=ctx.tenant,
        request_id=ctx.request_id,
        hrid=request.hrid or ctx.hrid,
        side=side,
        registry_id=ctx.config.wms.registry_id,
        reshare_state=request.state.code,
        created_at=ctx.clock(),
        **fields,
    )


def send_each(
    ctx: StepContext,
    mapping: Mapping,
    send: Callable[[Mapping, MappedItem], bool | None],
) -> Mapping:
    """Send the step's message for every item not yet done in WMS, saving progress item by item (a retry
    only does what is left). After an attempt whose outcome is unknown, the engine verifies each item first
    (``StepContext.already_done``): one WMS already has is not sent again. ``send`` answering False leaves
    the item as it was (a refusal the step collects), and the next items still go."""
    for barcode in [i.barcode for i in mapping.items if not i.created_in_wms]:
        item = mapping.item(barcode)
        assert item is not None
        if not ctx.already_done(mapping, item) and send(mapping, item) is False:
            continue
        item.created_in_wms = True
        mapping = save(ctx, mapping)
    next_check(ctx, mapping)
    return save(ctx, mapping)


def verify_with_probe(
    ctx: StepContext, mapping: Mapping, item: MappedItem, *, message: str, holder: str | None, lending: bool
) -> bool:
    """A verify-before-re-send hook: asks the library's check-in probe whether ``message`` for ``item`` was
    applied already (borrowing: the temp item exists in WMS; lending: the item is on loan to the account).
    With no probe, or one WMS does not answer, it says no: the message is sent again and WMS's answer decides.
    """
    # lending asks one probe for the whole run (LookupUser: one call covers every item of the account);
    # borrowing asks afresh for each temp item
    probe = ctx.cache.get("probe") if lending else None
    if probe is None:
        probe = probe_for(ctx.config.wms, ctx.wms)
        if lending:
            ctx.cache["probe"] = probe
    if isinstance(probe, NoProbe):
        return False
    operation = f"{PROBE_OPERATION[probe.name]} (verify before re-sending)"
    asked: dict[str, Any] = {"item_barcode": item.barcode}
    if lending:
        asked["account"] = masked(holder)
    with ctx.call("wms", operation, asked) as answer:
        result = probe.is_checked_in(
            item.barcode, holder=holder, **({"seen_on_loan": True} if lending else {})
        )
        status = result.circulation_status or result.detail
        done = result.on_loan if lending else result.found
        answer.response = {"on_loan": result.on_loan} if lending else {"found": result.found}
        answer.response["status"] = status
        where = f"on loan to {masked(holder)}" if lending else "in WMS"
        if not result.supported:
            answer.summary = f"WMS cannot be asked ({result.detail}): {message} will be sent"
        elif not done:
            answer.summary = f"{item.barcode} is not {where}: {message} will be sent"
        else:
            answer.summary = (
                f"{item.barcode} is already {where}"
                + ("" if lending else f" ({status})")
                + ": not sent again"
            )
            if lending:
                item.wms_due_date = result.due_date
            return True
        return False


def check_in(ctx: StepContext, mapping: Mapping, barcode: str, why: str) -> Mapping:
    """CheckInItem for one item; an item WMS already has checked in counts as success."""
    item = mapping.item(barcode)
    assert item is not None, barcode
    message = CheckInItem(item_barcode=item.barcode)
    with ctx.call("wms", message.operation, {**message.logged(), "why": why}) as answer:
        try:
            result = ctx.wms.check_in(message)
            answer.summary = f"checked in {item.barcode}" + (
                f", routed to {result.routing_to}" if getattr(result, "routing_to", None) else ""
            )
            answer.response = {"routing_to": getattr(result, "routing_to", None)}
        except WmsProblem as problem:
            if problem.problem_type not in ALREADY_CHECKED_IN:
                raise
            answer.summary = f"{item.barcode} was already checked in ({problem.problem_type})"
            answer.response = {"problem_type": problem.problem_type}
    item.checked_in = True
    return save(ctx, mapping)


def calendar_day(value: datetime | None) -> date | None:
    """A ReShare due date as its UTC calendar date: mod-rs keeps an instant (``2027-01-25T13:45:07Z``, the
    fill time + the loan period, or the staff's override) and its own overdue timer counts UTC days."""
    return value.astimezone(UTC).date() if value is not None else None


def library_day(config: LibraryConfig, value: datetime | None) -> date | None:
    """A WMS due date as the library's calendar date (its ``timezone``): an end-of-day local due date such as
    ``2026-12-28T23:59:59-05:00`` is the 28th, not the 29th it is in UTC."""
    return value.astimezone(ZoneInfo(config.timezone)).date() if value is not None else None


def end_of_library_day(config: LibraryConfig, day: date | None) -> datetime | None:
    """The last second of a calendar date in the library's time zone (what the bridge sends as a due date,
    so WMS lands on that date whether it keeps the time or rounds to its local end of day)."""
    if day is None:
        return None
    return datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(config.timezone))


def next_check_time(config: LibraryConfig, check_count: int, now: datetime) -> datetime:
    """When reconciliation should look again: the first interval, doubled per check, up to the ceiling."""
    minutes = min(
        config.reconcile_first_check_minutes * 2 ** min(check_count, 16),
        config.reconcile_max_interval_hours * 60,
    )
    return now + timedelta(minutes=minutes)


def next_check(ctx: StepContext, mapping: Mapping) -> None:
    """Schedule the next reconciliation check of an open mapping."""
    mapping.next_check_at = next_check_time(ctx.config, mapping.check_count, ctx.clock())


def plain(value: object) -> object:
    """A value as a history line stores it (dates as ISO text)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def mark_checked_in(store: StorePort, event: WmsItemCheckedIn, side: Side) -> Mapping | None:
    """Record on the mapping that WMS checked this item in; None if no mapping of that side uses it."""
    mapping = store.find_by_item(event.registry_id, event.item_barcode)
    if mapping is None or mapping.side != side:
        return None
    item = mapping.item(event.item_barcode)
    if item is not None and not item.checked_in:
        item.checked_in = True
        mapping = store.save_mapping(mapping)
    return mapping


def masked(barcode: str | None) -> str:
    return mask(barcode) or "(none)"


def state_after_wms_check_in(ctx: StepContext) -> str:
    """For a WMS-first step: stop reconciliation watching the request (WMS said it), then ReShare's state."""
    mapping = existing_mapping(ctx)
    if mapping is not None and mapping.next_check_at is not None:
        mapping.next_check_at = None
        save(ctx, mapping)
    return ctx.reshare_request().state.code


def perform(ctx: StepContext, action: str, state: str, summary: str) -> StepResult:
    """Perform a ReShare action on the request (``performAction``), with its history line."""
    reshare = ctx.reshare
    with ctx.call("reshare", f"performAction {action}", {"from_state": state}) as answer:
        reshare.perform_action(ctx.request_id, action, {})
        answer.summary = summary
    return StepResult(StepStatus.SUCCEEDED, {"action": action})
