"""Pieces every workflow step shares: reading the request, mapping bookkeeping, WMS check-in."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from illbridge.config import LibraryConfig
from illbridge.errors import StaleMapping, WmsProblem
from illbridge.models import Mapping, Outcome, PatronRequest, Side, StepName, StepStatus, WmsItemCheckedIn
from illbridge.observability import mask
from illbridge.wms.ncip import CHECK_IN_ALREADY_DONE
from illbridge.workflow.engine import StepContext
from illbridge.workflow.services import Services

# WMS answers to a check-in of something already checked in; the bridge counts them as success (docs/wms.md#checkinitem).
ALREADY_CHECKED_IN = CHECK_IN_ALREADY_DONE
# Steps that are still going to happen (a later step must wait for them rather than skip their work).
PENDING = frozenset({StepStatus.IN_PROGRESS, StepStatus.RETRYABLE})


class WaitingForEarlierStep(StaleMapping):
    """An earlier step of this request has not finished: try again later (events arrived out of order)."""


def fetch_request(ctx: StepContext) -> PatronRequest:
    """Re-read the full request from ReShare (never trust an event's payload)."""
    reshare = ctx.services.reshare(ctx.config)
    with ctx.call("reshare", "GET patron request", {"id": ctx.request_id}) as answer:
        request = reshare.get_request(ctx.request_id)
        ctx.keep_private(request.patron_identifier)
        answer["summary"] = f"{request.hrid} is {request.state.code}"
        answer["response"] = {"state": request.state.code, "volumes": len(request.volumes or [])}
    return request


def save(ctx: StepContext, mapping: Mapping) -> Mapping:
    ctx.keep_private(mapping.patron_barcode)
    return ctx.services.store.save_mapping(mapping)


def wait_for(ctx: StepContext, step: StepName) -> StepStatus | None:
    """The status of an earlier step; raise (transient) while it is still going to run."""
    record = ctx.services.store.get_step(ctx.tenant, ctx.request_id, step)
    if record is None or record.status in PENDING:
        raise WaitingForEarlierStep(f"{step.value} has not finished for {ctx.hrid} yet")
    return record.status


def check_in(ctx: StepContext, mapping: Mapping, barcode: str, why: str) -> Mapping:
    """CheckInItem for one item; an item WMS already has checked in counts as success."""
    item = mapping.item(barcode)
    assert item is not None, barcode
    wms = ctx.services.wms(ctx.config)
    with ctx.call("wms", "CheckInItem", {"item_barcode": item.barcode, "why": why}) as answer:
        try:
            result = wms.check_in_item(item_barcode=item.barcode)
            answer["summary"] = f"checked in {item.barcode}" + (
                f", routed to {result.routing_to}" if getattr(result, "routing_to", None) else ""
            )
            answer["response"] = {"routing_to": getattr(result, "routing_to", None)}
        except WmsProblem as problem:
            if problem.problem_type not in ALREADY_CHECKED_IN:
                raise
            answer["summary"] = f"{item.barcode} was already checked in ({problem.problem_type})"
            answer["response"] = {"problem_type": problem.problem_type}
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
    mapping.next_check_at = next_check_time(ctx.config, mapping.check_count, ctx.services.clock())


def skipped_by_configuration(ctx: StepContext, switch: str) -> StepStatus:
    ctx.note("skipped by configuration", f"the library's switch {switch} is off", Outcome.SKIPPED)
    return StepStatus.SKIPPED


def plain(value: object) -> object:
    """A value as a history line stores it (dates as ISO text)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def mark_checked_in(services: Services, event: WmsItemCheckedIn, side: Side) -> Mapping | None:
    """Record on the mapping that WMS checked this item in; None if no mapping of that side uses it."""
    store = services.store
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
