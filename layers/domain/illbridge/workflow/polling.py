"""The ReShare poller: ReShare has no webhooks (docs/reshare.md#events), so the bridge asks for changes.

Per library and side: list requests with ``lastUpdated >= cursor - overlap`` in ``lastUpdated`` order (ISO-8601
UTC, to the second, as mod-rs takes and renders dates), keep only
real transitions (a conditional "did the state change" write on the stored last-seen state: exactly one of two
overlapping pollers wins, and notes or messages, which move ``lastUpdated`` but not the state, are ignored),
put one ``ReShareRequestChanged`` per transition on the bus (10 per call), and only then advance the cursor.
If the bus refuses an event, its last-seen state is put back so the next poll finds the transition again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from illbridge.bus import EventsNotDelivered
from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError, ReShareError, WmsError
from illbridge.models import PatronRequest, ReShareRequestChanged, Side
from illbridge.observability import logger, metrics
from illbridge.reshare.client import Listing
from illbridge.store.repository import SeenState
from illbridge.workflow.checks import require_manual_integration
from illbridge.workflow.services import Services

OVERLAP = timedelta(minutes=2)  # re-read a little before the cursor: clocks and commits are not instant
FIRST_LOOKBACK = timedelta(days=1)  # how far back a brand-new deployment looks
BATCH = 10


@dataclass
class PollReport:
    library_id: str
    side: str
    seen: int = 0
    transitions: int = 0
    cursor: datetime | None = None
    error: str | None = None
    outage: bool = False  # the error is ReShare (or WMS) being unreachable: the next run waits it out


@dataclass
class Transitions:
    """Transitions recorded as seen but not yet on the bus, with what was seen before (to put it back)."""

    events: list[ReShareRequestChanged] = field(default_factory=list)
    previous: dict[str, SeenState | None] = field(default_factory=dict)

    def observe(self, services: Services, config: LibraryConfig, request: PatronRequest, source: str) -> bool:
        """Record the request's state as seen; if that is a real transition, queue its event. Returns whether."""
        assert request.last_updated is not None
        store = services.store
        tenant = config.reshare.tenant
        before = store.seen_state(tenant, request.id)
        if before is not None and before.covers(request.state.code, request.last_updated):
            # seen already (the cursor's overlap re-reads it) or a stale read: record_state_change would refuse
            # it too, so skip its conditional writes; the common case of a repeat poll costs one read
            return False
        change = store.record_state_change(tenant, request.id, request.state.code, request.last_updated)
        if not change.changed:
            return False
        self.previous[request.id] = before
        self.events.append(
            ReShareRequestChanged(
                library_id=config.library_id,
                tenant=tenant,
                side=request.side,
                request_id=request.id,
                hrid=request.hrid or request.id,
                state=request.state.code,
                previous_state=change.previous_state,
                last_updated=request.last_updated,
                source=source,
            )
        )
        return True

    def flush(self, services: Services, tenant: str) -> int:
        """Put the queued events on the bus; what the bus refuses has its last-seen state put back."""
        if not self.events:
            return 0
        events, self.events = self.events, []
        try:
            return services.bus.put(events)
        except EventsNotDelivered as exc:
            for event in exc.failed:
                assert isinstance(event, ReShareRequestChanged)
                services.store.revert_state_change(
                    tenant,
                    event.request_id,
                    event.state,
                    event.last_updated,
                    self.previous.get(event.request_id),
                )
            raise


def poll_side(services: Services, config: LibraryConfig, side: Side) -> PollReport:
    store = services.store
    tenant = config.reshare.tenant
    report = PollReport(config.library_id, side.value)
    cursor = store.get_cursor(tenant, side.value)
    since = cursor - OVERLAP if cursor else services.clock() - FIRST_LOOKBACK
    highest = cursor
    pending = Transitions()
    reshare = services.reshare(config)
    listing = Listing()
    for request in reshare.changed_since(is_requester=side == Side.BORROWING, since=since, listing=listing):
        report.seen += 1
        if request.last_updated is None:
            continue
        pending.observe(services, config, request, source="poller")
        if len(pending.events) >= BATCH:
            report.transitions += pending.flush(services, tenant)
        if highest is None or request.last_updated > highest:
            highest = request.last_updated
    report.transitions += pending.flush(services, tenant)
    if highest is not None and listing.unsure_from is not None and listing.unsure_from < highest:
        # more changes in one second than fit a page, read in no stable order: read that second again
        logger.warning(
            "ReShare listing paged through one second by offset: keeping the cursor there",
            extra={"library_id": config.library_id, "side": side.value, "second": listing.unsure_from},
        )
        highest = listing.unsure_from
    if highest is not None:
        store.advance_cursor(tenant, side.value, highest)
    report.cursor = highest
    metrics.add_metric(name="TransitionsSeen", unit="Count", value=report.transitions)
    return report


def poll_all(services: Services) -> list[PollReport]:
    """Every configured library, both sides; one library's failure does not stop the others."""
    sides = (Side.BORROWING, Side.LENDING)
    reports = []
    for library_id in services.configs.library_ids():
        try:
            config = services.configs.get(library_id)
            require_manual_integration(services, config)  # else ReShare and the bridge both act in WMS
        except BridgeError as exc:  # neither side can be polled
            reports += [_poll_failed(library_id, side, exc) for side in sides]
            continue
        for side in sides:
            try:
                reports.append(poll_side(services, config, side))
            except BridgeError as exc:
                reports.append(_poll_failed(library_id, side, exc))
    return reports


def _poll_failed(library_id: str, side: Side, exc: BridgeError) -> PollReport:
    outage = is_outage(exc)
    (logger.warning if outage else logger.error)(
        "poll failed",
        extra={"library_id": library_id, "side": side.value, "error": str(exc), "outage": outage},
    )
    metrics.add_metric(name="PollFailures", unit="Count", value=1)
    return PollReport(library_id, side.value, error=str(exc), outage=outage)


def is_outage(exc: BaseException) -> bool:
    """ReShare or WMS unreachable (a transient fault of theirs), as opposed to the bridge's own faults."""
    return isinstance(exc, ReShareError | WmsError) and bool(getattr(exc, "transient", False))
