"""The ReShare poller: ReShare has no webhooks (docs/reshare.md#events), so the bridge asks for changes.

Per library and side: list requests with ``lastUpdated >= cursor - overlap`` in ``lastUpdated`` order (ISO-8601
UTC, to the second, as mod-rs takes and renders dates), keep only
real transitions (a conditional "did the state change" write on the stored last-seen state: exactly one of two
overlapping pollers wins, and notes or messages, which move ``lastUpdated`` but not the state, are ignored).
That same write (one DynamoDB transaction) adds the transition's ``ReShareRequestChanged`` to the tenant's
outbox, so a transition is never recorded as seen without its event; the cursor then moves. The events are
put on the bus 10 per call as the listing goes (so memory does not grow with the changes), and every run
first delivers whatever is still pending in the outbox (``illbridge.intake.outbox``): whatever fails between
"seen" and "on the bus", the next poll delivers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError, EventsNotDelivered, ReShareError, WmsError
from illbridge.intake.checks import require_manual_integration
from illbridge.intake.outbox import deliver_pending
from illbridge.intake.ports import PollerPorts
from illbridge.intake.seen import Transitions
from illbridge.models import Side
from illbridge.observability import logger, metrics
from illbridge.reshare.client import Listing

OVERLAP = timedelta(minutes=2)  # re-read a little before the cursor: clocks and commits are not instant
FIRST_LOOKBACK = timedelta(days=1)  # how far back a brand-new deployment looks
BATCH = 10
DELIVERY = "delivery"  # the "side" of a poll report about the outbox's delivery


@dataclass
class PollReport:
    library_id: str
    side: str
    seen: int = 0
    transitions: int = 0
    cursor: datetime | None = None
    error: str | None = None
    outage: bool = False  # the error is ReShare (or WMS) being unreachable: the next run waits it out


def poll_side(ports: PollerPorts, config: LibraryConfig, side: Side) -> PollReport:
    """Record one side's transitions (and their events, in the outbox); then put them on the bus.

    The cursor moves once the transitions are recorded: their events are safe in the outbox even if the bus
    refuses them now (then ``EventsNotDelivered`` fails the run, and the next poll delivers them).
    """
    store = ports.store
    tenant = config.reshare.tenant
    report = PollReport(config.library_id, side.value)
    cursor = store.get_cursor(tenant, side.value)
    since = cursor - OVERLAP if cursor else ports.clock() - FIRST_LOOKBACK
    highest = cursor
    recorded = Transitions()
    reshare = ports.reshare(config)
    listing = Listing()
    undelivered: EventsNotDelivered | None = None
    for request in reshare.changed_since(is_requester=side == Side.BORROWING, since=since, listing=listing):
        report.seen += 1
        if request.last_updated is None:
            continue
        if recorded.observe(ports, config, request, source="poller"):
            report.transitions += 1
            if len(recorded.pending) >= BATCH:  # on the bus as it goes: memory stays flat however many
                try:
                    recorded.flush(ports)
                except EventsNotDelivered as exc:  # they wait in the outbox; the run fails at its end
                    undelivered = undelivered or exc
        if highest is None or request.last_updated > highest:
            highest = request.last_updated
    if highest is not None and listing.unsure_from is not None and listing.unsure_from < highest:
        # more changes in one second than fit a page, read in no stable order: read that second again
        logger.warning(
            "ReShare listing paged through one second by offset: keeping the cursor there",
            extra={"library_id": config.library_id, "side": side.value, "second": listing.unsure_from},
        )
        highest = listing.unsure_from
    if highest is not None and (cursor is None or highest > cursor):
        # a quiet run (only the overlap re-read) makes no write: the cursor moves only forward
        store.advance_cursor(tenant, side.value, highest)
    report.cursor = highest
    metrics.add_metric(name="TransitionsSeen", unit="Count", value=report.transitions)
    recorded.flush(ports)
    if undelivered is not None:
        raise undelivered
    return report


def poll_all(ports: PollerPorts) -> list[PollReport]:
    """Every configured library, both sides; one library's failure does not stop the others."""
    sides = (Side.BORROWING, Side.LENDING)
    reports = []
    for library_id in ports.configs.library_ids():
        try:
            config = ports.configs.get(library_id)
            require_manual_integration(ports, config)  # else ReShare and the bridge both act in WMS
        except BridgeError as exc:  # neither side can be polled
            reports += [_poll_failed(library_id, side, exc) for side in sides]
            continue
        try:  # what an earlier run (or a webhook) recorded and could not put on the bus
            deliver_pending(ports, config.reshare.tenant)
        except BridgeError as exc:
            reports.append(_poll_failed(library_id, DELIVERY, exc))
        for side in sides:
            try:
                reports.append(poll_side(ports, config, side))
            except BridgeError as exc:
                reports.append(_poll_failed(library_id, side, exc))
    return reports


def _poll_failed(library_id: str, side: Side | str, exc: BridgeError) -> PollReport:
    name = side.value if isinstance(side, Side) else side
    outage = is_outage(exc)
    (logger.warning if outage else logger.error)(
        "poll failed",
        extra={"library_id": library_id, "side": name, "error": str(exc), "outage": outage},
    )
    metrics.add_metric(name="PollFailures", unit="Count", value=1)
    return PollReport(library_id, name, error=str(exc), outage=outage)


def is_outage(exc: BaseException) -> bool:
    """ReShare or WMS unreachable (a transient fault of theirs), as opposed to the bridge's own faults."""
    return isinstance(exc, ReShareError | WmsError) and bool(getattr(exc, "transient", False))
