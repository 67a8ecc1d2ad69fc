"""Mapping records: the MAPPING item of a request and its ITEM rows (the ``by-item-barcode`` index), and the
sparse reconciliation attributes, written together so they never disagree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from illbridge.errors import StaleMapping
from illbridge.models.mapping import Mapping
from illbridge.store import keys
from illbridge.store.dynamo import (
    DynamoTable,
    _ConditionFailed,
    _decode,
    _encode,
    _Expression,
)


class MappingRecords(DynamoTable):
    def get_mapping(self, tenant: str, request_id: str) -> Mapping | None:
        row = self._get(keys.request_pk(tenant, request_id), keys.MAPPING_SK)
        return _mapping_from_row(row) if row else None

    def create_mapping(self, mapping: Mapping) -> Mapping:
        """Store a new mapping; if one exists already, return that one unchanged (never overwrite)."""
        pk = keys.request_pk(mapping.tenant, mapping.request_id)
        put = {
            "TableName": self.table_name,
            "Item": _mapping_row(mapping),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        items = [self._item_put(pk, mapping, barcode) for barcode in _barcodes(mapping)]
        try:
            self._put_with("create_mapping", put, items)
        except _ConditionFailed as exc:
            existing = self.get_mapping(mapping.tenant, mapping.request_id)
            if existing is None:  # deleted in between: nothing sensible to return
                raise StaleMapping(f"mapping {mapping.tenant}/{mapping.request_id} vanished") from exc
            return existing
        return mapping

    def save_mapping(self, mapping: Mapping) -> Mapping:
        """Write ``mapping`` as version + 1 if the stored version is still ``mapping.version``.

        The same write keeps the item rows (``by-item-barcode``) and the sparse reconciliation
        attributes in step with the mapping. Raises ``StaleMapping`` when someone saved in between.
        """
        tenant, request_id = mapping.tenant, mapping.request_id
        pk = keys.request_pk(tenant, request_id)
        saved = mapping.model_copy(
            deep=True, update={"version": mapping.version + 1, "updated_at": self._now()}
        )

        expr = _Expression()
        version = expr.n("version")
        if mapping.version == 0:  # create-or-update of a mapping nobody saved yet
            condition = f"attribute_not_exists(pk) OR {version} = {expr.v(0)}"
        else:
            condition = f"{version} = {expr.v(mapping.version)}"
        put = {
            "TableName": self.table_name,
            "Item": _mapping_row(saved),
            "ConditionExpression": condition,
            **expr.params(),
        }

        stored_items = {row["sk"]: row.get("item_key") for row in self._partition(pk, keys.ITEM_PREFIX)}
        wanted = {keys.item_sk(b): b for b in _barcodes(saved)}
        changes: list[dict[str, Any]] = [
            self._item_put(pk, saved, barcode)
            for sk, barcode in wanted.items()
            if stored_items.get(sk) != keys.item_key(saved.registry_id, barcode)
        ]
        changes += [
            {"Delete": {"TableName": self.table_name, "Key": self._key(pk, sk)}}
            for sk in stored_items
            if sk not in wanted
        ]
        try:
            self._put_with("save_mapping", put, changes)
        except _ConditionFailed as exc:
            current = self.get_mapping(tenant, request_id)
            stored = "absent" if current is None else f"at version {current.version}"
            raise StaleMapping(
                f"mapping {tenant}/{request_id} is {stored}; this write was based on version {mapping.version}"
            ) from exc
        return saved

    def _item_put(self, pk: str, mapping: Mapping, barcode: str) -> dict[str, Any]:
        row = {
            "pk": pk,
            "sk": keys.item_sk(barcode),
            "kind": "item",
            "item_key": keys.item_key(mapping.registry_id, barcode),
            "tenant": mapping.tenant,
            "request_id": mapping.request_id,
            "registry_id": mapping.registry_id,
            "barcode": barcode,
        }
        return {"Put": {"TableName": self.table_name, "Item": row}}

    def find_by_item(self, registry_id: str, barcode: str) -> Mapping | None:
        """The mapping that uses this WMS item (an open one first, then the most recently updated)."""
        expr = _Expression()
        condition = f"{expr.n('item_key')} = {expr.v(keys.item_key(registry_id, barcode))}"
        found: dict[tuple[str, str], Mapping] = {}
        for row in self._query(IndexName=keys.ITEM_INDEX, KeyConditionExpression=condition, **expr.params()):
            ref = (str(row["tenant"]), str(row["request_id"]))
            if ref in found:
                continue
            mapping = self.get_mapping(*ref)
            # the index is eventually consistent: trust only what the mapping itself says
            if mapping and mapping.registry_id == registry_id and mapping.item(barcode) is not None:
                found[ref] = mapping
        if not found:
            return None
        return max(found.values(), key=lambda m: (m.open, m.updated_at))

    def due_for_reconciliation(self, tenant: str, now: datetime, limit: int = 100) -> list[Mapping]:
        """Open mappings of ``tenant`` whose next WMS check is due at ``now``, the longest-waiting first."""
        expr = _Expression()
        condition = (
            f"{expr.n('open_key')} = {expr.v(keys.open_key(tenant))}"
            f" AND {expr.n('next_check_at')} <= {expr.v(keys.timestamp(now))}"
        )
        rows = self._query(
            limit=limit,
            IndexName=keys.RECONCILIATION_INDEX,
            KeyConditionExpression=condition,
            ScanIndexForward=True,
            **expr.params(),
        )
        return [_mapping_from_row(row) for row in rows]


def _barcodes(mapping: Mapping) -> list[str]:
    return list(dict.fromkeys(item.barcode for item in mapping.items))


def _mapping_row(mapping: Mapping) -> dict[str, Any]:
    """The MAPPING item: the model under ``data``, and the attributes the indexes and conditions use.

    The model lives under ``data`` because its ``next_check_at`` must not leak into the reconciliation
    index: that index's attributes exist only while the mapping is open and has a next check.
    """
    row: dict[str, Any] = {
        "pk": keys.request_pk(mapping.tenant, mapping.request_id),
        "sk": keys.MAPPING_SK,
        "kind": "mapping",
        "tenant": mapping.tenant,
        "request_id": mapping.request_id,
        "hrid": mapping.hrid,
        "open": mapping.open,
        "version": mapping.version,
        "updated_at": keys.timestamp(mapping.updated_at),
        "data": _encode(mapping.model_dump(mode="python")),
    }
    if mapping.open and mapping.next_check_at is not None:
        row["open_key"] = keys.open_key(mapping.tenant)
        row["next_check_at"] = keys.timestamp(mapping.next_check_at)
    return row


def _mapping_from_row(row: dict[str, Any]) -> Mapping:
    data = _decode(row["data"])
    data["version"] = _decode(row["version"])
    return Mapping.model_validate(data)
