"""The ReShare poller: ReShare has no webhooks (docs/reshare.md#events), so the bridge asks for changes.

Per library and side: list requests with ``lastUpdated >= cursor - overlap`` in ``lastUpdated`` order (ISO-8601
UTC, to the second, as mod-rs takes and renders dates) and keep only real transitions against the stored
last-seen state (notes or messages, which move ``lastUpdated`` but not the state, are none). Each transition's
``ReShareRequestChanged`` is put on the bus first, 10 per call as the listing goes (so memory does not grow
with the changes), and only the transitions the bus took are then recorded as seen (one conditional write
each: of two overlapping pollers exactly one records it, ``illbridge.intake.seen``).

ReShare is the durable record, so there is no outbox for these: the cursor never moves past a transition that
is not recorded. It stays at the earliest unrecorded transition's ``lastUpdated`` (and at an unsure second of
the listing), so the next poll lists it again and puts it again; the run fails visibly
(``EventsNotDelivered``, transient). Whatever fails between the put and the record costs at most a second copy
of the event, which the step's claim drops. Every run also first drains the outbox that other ways in still
use (WMS check-in notices, ``illbridge.intake.outbox``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError, ReShareError, WmsError
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
    """Put one side's transitions on the bus and record them as seen; then move the cursor, never past a
    transition that is not recorded.

    The first batch the bus (or the store) does not fully take stops the listing: what follows would be
    listed again anyway, as the cursor stays at the earliest unrecorded transition. The run then fails with
    that error (``EventsNotDelivered``: the next poll puts those transitions again).
    """
    store = ports.store
    tenant = config.reshare.tenant
    report = PollReport(config.library_id, side.value)
    cursor = store.get_cursor(tenant, side.value)
    since = cursor - OVERLAP if cursor else ports.clock() - FIRST_LOOKBACK
    highest = cursor
    transitions = Transitions()
    reshare = ports.reshare(config)
    listing = Listing()
    failure: BridgeError | None = None
    for request in reshare.changed_since(is_requester=side == Side.BORROWING, since=since, listing=listing):
        report.seen += 1
        if request.last_updated is None:
            continue
        if highest is None or request.last_updated > highest:
            highest = request.last_updated
        if transitions.observe(ports, config, request, source="poller"):
            report.transitions += 1
            if len(transitions.pending) >= BATCH:  # on the bus as it goes: memory stays flat however many
                try:
                    transitions.flush(ports)
                except BridgeError as exc:
                    failure = exc
                    break
    if failure is None:
        try:
            transitions.flush(ports)
        except BridgeError as exc:
            failure = exc
    highest = _held(config, side, highest, listing, transitions)
    if highest is not None and (cursor is None or highest > cursor):
        # a quiet run (only the overlap re-read) makes no write: the cursor moves only forward
        store.advance_cursor(tenant, side.value, highest)
    report.cursor = highest
    metrics.add_metric(name="TransitionsSeen", unit="Count", value=report.transitions)
    if failure is not None:
        raise failure
    return report


def _held(
    config: LibraryConfig, side: Side, highest: datetime | None, listing: Listing, transitions: Transitions
) -> datetime | None:
    """Where the cursor may go: the highest ``lastUpdated`` read, held at an unsure second of the listing and
    at the earliest transition not recorded as seen (both are read again by the next poll, which lists
    ``lastUpdated >= cursor - overlap``: the whole second, as mod-rs renders it to the second)."""
    extra = {"library_id": config.library_id, "side": side.value}
    if highest is not None and listing.unsure_from is not None and listing.unsure_from < highest:
        # more changes in one second than fit a page, read in no stable order: read that second again
        logger.warning(
            "ReShare listing paged through one second by offset: keeping the cursor there",
            extra={**extra, "second": listing.unsure_from},
        )
        highest = listing.unsure_from
    unrecorded = transitions.earliest_unrecorded()
    if highest is not None and unrecorded is not None and unrecorded < highest:
        logger.warning(
            "transitions not recorded as seen: keeping the cursor at the earliest",
            extra={**extra, "unrecorded": len(transitions.unrecorded), "second": unrecorded},
        )
        highest = unrecorded
    return highest


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
