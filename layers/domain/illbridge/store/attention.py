"""The attention list: one ``ATTN#<step>`` item per request and step, on the sparse ``attention`` index while
unresolved."""

from __future__ import annotations

from datetime import datetime

from illbridge.models.mapping import AttentionItem
from illbridge.store import keys
from illbridge.store.dynamo import (
    DynamoTable,
    _decode,
    _dynamodb,
    _Expression,
    _fields,
    _name,
)


class AttentionRecords(DynamoTable):
    def raise_attention(self, item: AttentionItem) -> AttentionItem:
        """Put (or replace) the request's attention item for this step on the tenant's list."""
        row = {
            "pk": keys.request_pk(item.tenant, item.request_id),
            "sk": keys.attention_sk(item.step),
            "kind": "attention",
            **_fields(item),
        }
        if not item.resolved:
            row["attention_key"] = keys.attention_key(item.tenant)
            row["attention_at"] = keys.timestamp(item.raised_at)
        with _dynamodb("PutItem"):
            self._table.put_item(Item=row)
        return item

    def resolve_attention(
        self, tenant: str, request_id: str, step: str, *, raised_before: datetime | None = None
    ) -> bool:
        """Take the item off the list (it stays on the request, resolved); whether one was open.

        ``raised_before``: only an item raised before then (a step that succeeds resolves what earlier attempts
        raised, not a warning it raised itself in this run).

        The item is read first (a strongly consistent GetItem): a step that succeeds mostly has nothing to
        resolve, and a read costs less than a conditional write DynamoDB refuses (docs/performance.md). The
        write keeps its condition, so an item resolved meanwhile by someone else is not resolved twice.
        """
        key = self._key(keys.request_pk(tenant, request_id), keys.attention_sk(_name(step)))
        with _dynamodb("GetItem"):  # read first: a step that succeeds mostly has nothing to resolve
            row = self._table.get_item(
                Key=key, ConsistentRead=True, ProjectionExpression="attention_key, attention_at"
            ).get("Item")
        if not row or "attention_key" not in row:
            return False
        if raised_before is not None and str(row.get("attention_at", "")) >= keys.timestamp(raised_before):
            return False
        expr = _Expression()
        condition = f"attribute_exists({expr.n('attention_key')})"
        if raised_before is not None:
            condition += f" AND {expr.n('attention_at')} < {expr.v(keys.timestamp(raised_before))}"
        expr.set("resolved", True).set("resolved_at", self._now()).remove("attention_key", "attention_at")
        return self._updated_if(key, expr, condition)

    def get_attention(self, tenant: str, request_id: str, step: str) -> AttentionItem | None:
        """The request's attention item for this step (resolved or not), if there is one."""
        row = self._get(keys.request_pk(tenant, request_id), keys.attention_sk(_name(step)))
        return AttentionItem.model_validate(_decode(row)) if row is not None else None

    def list_attention(self, tenant: str, limit: int = 100) -> list[AttentionItem]:
        """The tenant's unresolved attention items, newest first."""
        expr = _Expression()
        condition = f"{expr.n('attention_key')} = {expr.v(keys.attention_key(tenant))}"
        rows = self._query(
            limit=limit,
            IndexName=keys.ATTENTION_INDEX,
            KeyConditionExpression=condition,
            ScanIndexForward=False,
            **expr.params(),
        )
        return [AttentionItem.model_validate(_decode(row)) for row in rows]
