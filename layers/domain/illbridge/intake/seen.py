"""Has this state been seen? The one write every way a ReShare change comes in goes through (the poller and the
ReShare webhook alike): the request's state is recorded as seen on its stored last-seen state (``SEEN``), and
only a real transition enters the outbox, in the same transaction, as a ``ReShareRequestChanged``. Of two
observers of one transition exactly one records it (docs/architecture.md, "Noticing changes")."""

from __future__ import annotations

from dataclasses import dataclass, field

from illbridge.config import LibraryConfig
from illbridge.intake.outbox import deliver
from illbridge.intake.ports import Outbox
from illbridge.models import PatronRequest, ReShareRequestChanged
from illbridge.store import PendingEvent


@dataclass
class Transitions:
    """Transitions recorded as seen (each with its event in the outbox) and not yet put on the bus."""

    pending: list[PendingEvent] = field(default_factory=list)

    def observe(self, ports: Outbox, config: LibraryConfig, request: PatronRequest, source: str) -> bool:
        """Record the request's state as seen; if that is a real transition, its event enters the outbox in
        the same write. Returns whether it was a transition."""
        assert request.last_updated is not None
        store = ports.store
        tenant = config.reshare.tenant
        before = store.seen_state(tenant, request.id)
        if before is not None and before.covers(request.state.code, request.last_updated):
            # seen already (the cursor's overlap re-reads it) or a stale read: record_state_change would refuse
            # it too, so skip its writes; the common case of a repeat poll costs one read
            return False
        previous = before.state if before is not None else None
        event = ReShareRequestChanged(
            library_id=config.library_id,
            tenant=tenant,
            side=request.side,
            request_id=request.id,
            hrid=request.hrid or request.id,
            state=request.state.code,
            previous_state=previous,
            last_updated=request.last_updated,
            source=source,
        )
        change = store.record_state_change(
            tenant,
            request.id,
            request.state.code,
            request.last_updated,
            event=event,
            previous_state=previous,
            stored=before,
        )
        if not change.changed:
            return False
        assert change.pending is not None
        self.pending.append(change.pending)
        return True

    def flush(self, ports: Outbox) -> int:
        """Put the recorded transitions' events on the bus; what the bus does not take stays in the outbox
        (``EventsNotDelivered``) for the next poll."""
        pending, self.pending = self.pending, []
        return deliver(ports, pending)
