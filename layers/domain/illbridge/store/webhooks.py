"""Webhook deliveries taken (``WEBHOOK#<endpoint>#<library>#<webhook-id>``): replay protection, with the
delivery's event put into the outbox in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from illbridge.errors import StoreError
from illbridge.store import keys
from illbridge.store.dynamo import _Cancelled, _ConditionFailed, _dynamodb, _Expression
from illbridge.store.outbox import OutboxRecords, PendingEvent

WEBHOOK_MEMORY = timedelta(days=7)  # how long a delivered webhook id is remembered (duplicate deliveries)


@dataclass(frozen=True, slots=True)
class WebhookClaim:
    """What ``claim_webhook`` decided: ``taken`` for exactly one delivery of a webhook id."""

    taken: bool
    pending: PendingEvent | None = None  # the outbox entry written with it (``event=``)


class WebhookRecords(OutboxRecords):
    def webhook_seen(self, endpoint: str, library_id: str, webhook_id: str) -> bool:
        """Whether this endpoint already took a delivery with this id from this library (a cheap early answer;
        ``claim_webhook`` decides)."""
        row = self._get(keys.webhook_pk(endpoint, library_id, webhook_id), keys.WEBHOOK_SK)
        if row is None:
            return False
        # TTL deletion lags behind: an expired row counts as forgotten
        return int(row.get(keys.TTL_ATTRIBUTE, 0)) > self._now().timestamp()

    def _webhook_put(self, endpoint: str, library_id: str, webhook_id: str) -> dict[str, Any]:
        now = self._now()
        expr = _Expression()
        ttl = expr.n(keys.TTL_ATTRIBUTE)
        row: dict[str, Any] = {
            "pk": keys.webhook_pk(endpoint, library_id, webhook_id),
            "sk": keys.WEBHOOK_SK,
            "kind": "webhook",
            "endpoint": endpoint,
            "received_at": keys.timestamp(now),
            keys.TTL_ATTRIBUTE: int((now + WEBHOOK_MEMORY).timestamp()),
        }
        return {
            "TableName": self.table_name,
            "Item": row,
            # absent, or remembered so long ago that TTL should have removed it already
            "ConditionExpression": f"attribute_not_exists(pk) OR {ttl} <= {expr.v(int(now.timestamp()))}",
            **expr.params(),
        }

    def claim_webhook(
        self,
        endpoint: str,
        library_id: str,
        webhook_id: str,
        *,
        event: BaseModel | None = None,
        tenant: str | None = None,
    ) -> WebhookClaim:
        """Remember a delivery's ``webhook-id`` for ``WEBHOOK_MEMORY``: ``taken`` for the one delivery that does.

        One conditional write per endpoint and library decides, so of parallel copies exactly one wins and
        the others are replays. With ``event``, the event enters ``tenant``'s outbox in the same transaction:
        the delivery is taken together with what it announces, or not at all.
        """
        put = self._webhook_put(endpoint, library_id, webhook_id)
        pending = None
        try:
            if event is None:
                with _dynamodb("PutItem"):
                    self._table.put_item(**put)
            else:
                if not tenant:
                    raise StoreError("claim_webhook: an event needs the tenant whose outbox takes it")
                outbox, pending = self._outbox_put(tenant, event)
                self._transact("claim_webhook", [{"Put": put}, outbox])
        except _ConditionFailed:
            return WebhookClaim(False)
        except _Cancelled as cancelled:
            if cancelled.condition_failed_first:
                return WebhookClaim(False)
            raise cancelled.as_error() from cancelled
        return WebhookClaim(True, pending)


# --- rows <-> models -----------------------------------------------------------------------------------
