"""Has this state been seen? The way every ReShare change comes in (the poller and the ReShare webhook alike):
a real transition's ``ReShareRequestChanged`` is put on the bus FIRST, and only then is the request's state
recorded as seen on its stored last-seen state (``SEEN``, one conditional ``UpdateItem``).

ReShare itself is the durable record: a transition that is not recorded as seen is listed again by the next
poll (the poller holds its cursor at the earliest one, ``Transitions.earliest_unrecorded``), so nothing needs
to be kept in an outbox. Whatever fails between the put and the record (a ``ClientError``, a read timeout on a
PutEvents that did arrive, a partial ``FailedEntryCount``, the process dying) costs at most a second copy of
the event, which the step's claim drops. Two observers of one transition (two overlapping polls, or a poll
and the webhook) may both put it for the same reason, and exactly one of them records it
(docs/architecture.md, "Noticing changes").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from illbridge.config import LibraryConfig
from illbridge.errors import BridgeError, EventsNotDelivered
from illbridge.intake.ports import Outbox
from illbridge.models import PatronRequest, ReShareRequestChanged
from illbridge.observability import logger, metrics
from illbridge.store.seen import SeenState
from illbridge.timeutil import epoch_ms


@dataclass(frozen=True, slots=True)
class Transition:
    """A transition observed and not yet recorded: its event, and the last-seen state read before it."""

    event: ReShareRequestChanged
    stored: SeenState | None

    def seen(self) -> SeenState:
        """What the stored last-seen state becomes once this transition is recorded."""
        state, at, stored = self.event.state, self.event.last_updated, self.stored
        if stored is not None and epoch_ms(stored.last_updated) == epoch_ms(at):
            return SeenState(state, at, stored.states_at | {state})  # a second change inside one second
        return SeenState(state, at, frozenset({state}))


@dataclass
class Transitions:
    """Transitions observed, whose events are not yet on the bus (``pending``), and those not recorded as seen
    after a flush (``unrecorded``: the bus refused them, or recording failed)."""

    pending: list[Transition] = field(default_factory=list)
    unrecorded: list[Transition] = field(default_factory=list)
    _latest: dict[str, SeenState] = field(default_factory=dict)  # pending ones, by request id

    def observe(self, ports: Outbox, config: LibraryConfig, request: PatronRequest, source: str) -> bool:
        """Whether the request's state is a real transition against its stored last-seen state (or one still
        pending here); if so its event is kept pending, to be put on the bus and then recorded by ``flush``."""
        assert request.last_updated is not None
        tenant = config.reshare.tenant
        before = self._latest.get(request.id) or ports.store.seen_state(tenant, request.id)
        if before is not None and before.covers(request.state.code, request.last_updated):
            # seen already (the cursor's overlap re-reads it) or a stale read: record_state_change would refuse
            # it too, so nothing is put; the common case of a repeat poll costs one read
            return False
        event = ReShareRequestChanged(
            library_id=config.library_id,
            tenant=tenant,
            side=request.side,
            request_id=request.id,
            hrid=request.hrid or request.id,
            state=request.state.code,
            previous_state=before.state if before is not None else None,
            last_updated=request.last_updated,
            source=source,
        )
        transition = Transition(event, before)
        self.pending.append(transition)
        self._latest[request.id] = transition.seen()
        return True

    def flush(self, ports: Outbox) -> int:
        """Put the pending events on the bus (10 per PutEvents), then record as seen exactly those the bus took.

        Raises ``EventsNotDelivered`` (transient) when the bus did not take them all, or the store's error when
        recording failed; either way what is not recorded is in ``unrecorded`` and ReShare lists it again.
        Returns how many transitions were recorded (an observer that lost the race to another records none).
        """
        pending, self.pending, self._latest = self.pending, [], {}
        if not pending:
            return 0
        items = [(t, ReShareRequestChanged.DETAIL_TYPE, t.event.model_dump_json()) for t in pending]
        put, not_put, reason = ports.bus.send(items)
        metrics.add_metric(name="EventsDelivered", unit="Count", value=len(put))
        recorded = 0
        failure: BridgeError | None = None
        for n, transition in enumerate(put):
            try:
                recorded += self._record(ports, transition)
            except BridgeError as exc:  # on the bus, not recorded: the next poll puts it again (a copy)
                self.unrecorded += put[n:]
                failure = exc
                break
        if not_put:
            self.unrecorded += not_put
            metrics.add_metric(name="EventsRefused", unit="Count", value=len(not_put))
            logger.warning(
                "events the bus refused are not recorded as seen: ReShare lists them again",
                extra={"refused": len(not_put), "reason": reason},
            )
            raise EventsNotDelivered(not_put, reason)
        if failure is not None:
            raise failure
        return recorded

    def earliest_unrecorded(self) -> datetime | None:
        """The earliest ``lastUpdated`` of a transition observed and not recorded: the cursor stays at it."""
        return min((t.event.last_updated for t in self.unrecorded), default=None)

    @staticmethod
    def _record(ports: Outbox, transition: Transition) -> int:
        event = transition.event
        change = ports.store.record_state_change(
            event.tenant, event.request_id, event.state, event.last_updated, stored=transition.stored
        )
        return int(change.changed)
