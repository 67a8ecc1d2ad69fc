"""The tenant's outbox (``OUTBOX#<tenant>``): bus events recorded in the same transaction as the change they
announce, until PutEvents has them (WMS check-in notices: ``claim_webhook(event=...)``; ReShare transitions need
none, ``illbridge.intake.seen``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import uuid4

from pydantic import BaseModel

from illbridge.store import keys
from illbridge.store.dynamo import DynamoTable, _dynamodb
from illbridge.timeutil import to_utc


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An outbox entry: a bus event recorded with its change and not yet known to be on the bus."""

    tenant: str
    sk: str
    detail_type: str
    detail: str  # the event's JSON, put on the bus exactly as recorded (duplicates stay identical)
    recorded_at: datetime


class OutboxRecords(DynamoTable):
    def _outbox_put(self, tenant: str, event: BaseModel) -> tuple[dict[str, Any], PendingEvent]:
        """The TransactWriteItems action that adds ``event`` to the tenant's outbox, and the entry it adds."""
        now = self._now()
        row = {
            "pk": keys.outbox_pk(tenant),
            "sk": keys.outbox_sk(now, uuid4().hex),
            "kind": "outbox",
            "detail_type": str(getattr(event, "DETAIL_TYPE", type(event).__name__)),
            "detail": event.model_dump_json(),
            "recorded_at": keys.timestamp(now),
        }
        pending = PendingEvent(tenant, row["sk"], row["detail_type"], row["detail"], now)
        put = {"TableName": self.table_name, "Item": row, "ConditionExpression": "attribute_not_exists(pk)"}
        return {"Put": put}, pending

    def pending_events(self, tenant: str, limit: int | None = None) -> list[PendingEvent]:
        """The tenant's outbox, oldest first: events recorded but not yet known to be on the bus."""
        return [
            PendingEvent(
                tenant=tenant,
                sk=str(row["sk"]),
                detail_type=str(row["detail_type"]),
                detail=str(row["detail"]),
                recorded_at=cast(datetime, to_utc(str(row["recorded_at"]))),
            )
            for row in self._query(
                limit=limit,
                **self._partition_params(keys.outbox_pk(tenant), keys.OUTBOX_PREFIX),
            )
        ]

    def forget_event(self, tenant: str, sk: str) -> None:
        """The bus has this outbox event: remove it (a no-op if another worker already did)."""
        with _dynamodb("DeleteItem"):
            self._table.delete_item(Key=self._key(keys.outbox_pk(tenant), sk))
