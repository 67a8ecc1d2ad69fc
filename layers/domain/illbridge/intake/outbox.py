"""Delivering the outbox: bus events recorded together with the change they announce, until the bus has them.

The outbox is for what the bridge cannot read again from its source: a WMS check-in notice enters the outbox
in the same transaction that takes its ``webhook-id`` (``BridgeStore.claim_webhook(event=...)``), since once
the delivery is answered nothing else will tell the bridge about it. (ReShare transitions need no outbox:
ReShare is their durable record, so they are put on the bus first and recorded as seen after,
``illbridge.intake.seen``; a transition not recorded is listed again by the next poll.) Whoever recorded an
entry tries to put it on the bus at once, and every poll run puts whatever is still pending
(``deliver_pending``). An entry leaves the outbox only after PutEvents said it has it, so whatever fails in
between (a ClientError, a connection error or read timeout, a partial ``FailedEntryCount``, the process dying)
leaves it there for the next poll.

The price is at-least-once: a process that dies after PutEvents and before the entry is removed, or a read
timeout on a PutEvents that did arrive, puts the same event again (the same ``detail`` byte for byte: the
outbox stores the JSON). The step's own claim stops the second copy: it finds the step done, failed or claimed
(``SUCCEEDED`` is final), for one refused conditional write and no call to WMS or ReShare (a check-in notice's
step reads its record before asking WMS, ``workflow.notices``): nothing here relies on any other idempotency
record.
"""

from __future__ import annotations

from illbridge.errors import EventsNotDelivered
from illbridge.intake.ports import Outbox
from illbridge.observability import logger, metrics
from illbridge.store import PendingEvent

DRAIN_PAGE = 100  # outbox entries read per Query while draining


def deliver(ports: Outbox, pending: list[PendingEvent]) -> int:
    """Put these outbox entries on the bus and remove those the bus took; raises ``EventsNotDelivered``
    (transient) naming what is still pending. Returns how many went out."""
    if not pending:
        return 0
    put, not_put, reason = ports.bus.send([(p, p.detail_type, p.detail) for p in pending])
    for entry in put:
        ports.store.forget_event(entry.tenant, entry.sk)
    metrics.add_metric(name="EventsDelivered", unit="Count", value=len(put))
    if not_put:
        metrics.add_metric(name="EventsPending", unit="Count", value=len(not_put))
        logger.warning("events left in the outbox for the next poll", extra={"pending": len(not_put)})
        raise EventsNotDelivered(not_put, reason)
    return len(put)


def deliver_pending(ports: Outbox, tenant: str) -> int:
    """Put everything still in the tenant's outbox on the bus, oldest first; how many went out.

    Stops at the first page the bus does not take entirely (``EventsNotDelivered``): the rest waits for the
    next poll rather than hammering a bus that is refusing.
    """
    delivered = 0
    while True:
        page = ports.store.pending_events(tenant, limit=DRAIN_PAGE)
        if not page:
            return delivered
        delivered += deliver(ports, page)
        if len(page) < DRAIN_PAGE:
            return delivered
