"""moto's ``TransactWriteItems`` without a deep copy of every table it touches (the sandbox's speed, not its
behaviour).

moto 5 backs up each table a transaction names with ``copy.deepcopy(table)`` before applying it, so it can put
the table back if the transaction is cancelled (moto/dynamodb/models/__init__.py, ``transact_write_items``).
That copies every item of the table on every transaction: the cost grows with the table, and the bridge
writes a mapping with its item rows, and a check-in notice's webhook-id with its outbox entry, in one
transaction (and, before issue 17, every ReShare transition with its outbox entry). Measured in the sandbox:
300 recordings took 34.7 s against 4.2 s of plain writes, and a chaos run of 300 request pairs slowed down as
its table filled.

Only the items a transaction names can change, so the backup made here is the table object with its item
index copied one level (the item objects shared) and only the named items deep-copied. moto's own code then
runs unchanged, rollback included (it puts the backup in the table's place): same answers, same cancellation
reasons, same all-or-nothing outcome (``tests/integration/runtime/test_motofix.py`` checks a cancelled
transaction leaves every item as it was). The backups are let go when the transaction is over (``_forget``:
moto keeps every model instance it makes, copies too).
"""

from __future__ import annotations

import copy
import threading
import types
from collections import defaultdict
from typing import Any

_named = threading.local()  # the (table name, hash, range) keys of the transaction this thread is applying


def _keys(backend: Any, transact_items: list[dict[str, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    keys: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.tables[op["TableName"]]
            key = op["Item"] if op_type == "Put" else op["Key"]
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            keys[op["TableName"]].append((DynamoType(key[table.hash_key_attr]), range_value))
        except (KeyError, TypeError, AttributeError, StopIteration):
            continue  # moto's own validation answers for a malformed entry
    return keys


def _backup(table: Any) -> Any:
    """The table as it is now, for rollback: the named items deep-copied, every other item shared."""
    named = getattr(_named, "keys", {}).get(table.name, [])
    clone = copy.copy(table)
    items: Any = defaultdict(dict)
    for hash_value, stored in table.items.items():
        items[hash_value] = dict(stored) if table.has_range_key else stored
    for hash_value, range_value in named:
        if hash_value not in items:
            continue
        if table.has_range_key:
            if range_value in items[hash_value]:
                items[hash_value][range_value] = copy.deepcopy(items[hash_value][range_value])
        else:
            items[hash_value] = copy.deepcopy(items[hash_value])
    clone.items = items
    clones = getattr(_named, "clones", None)
    if clones is not None:
        clones.append(clone)
    return clone


def _forget(backend: Any, clones: list[Any]) -> None:
    """Let the backups go once the transaction is over. moto's ``BaseModel.__new__`` keeps every instance it
    makes in its class's ``instances_tracked`` list, copies included, so each backup would live as long as the
    process: one table's item index per transaction, memory growing with transactions x items (10,000 changes
    polled made the sandbox grow past 10 GB). A backup that rollback made the table is kept."""
    live = {id(table) for table in backend.tables.values()}
    for clone in clones:
        if id(clone) in live:
            continue
        tracked = getattr(type(clone), "instances_tracked", None)
        if tracked is None:
            continue
        for n in range(len(tracked) - 1, -1, -1):  # the newest are last
            if tracked[n] is clone:
                del tracked[n]
                break


def _deepcopy(value: Any, memo: Any = None) -> Any:
    from moto.dynamodb.models.table import Table

    if type(value) is Table and getattr(_named, "keys", None) is not None:
        return _backup(value)
    return copy.deepcopy(value, memo)


_installed = False


def install() -> None:
    """Patch moto's DynamoDB backend in this process (idempotent)."""
    global _installed
    if _installed:
        return
    import moto.dynamodb.models as models

    real = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        _named.keys = _keys(self, transact_items)
        _named.clones = []
        try:
            real(self, transact_items)
        finally:
            _forget(self, _named.clones)
            _named.keys = None
            _named.clones = None

    # moto's module reads ``copy.deepcopy`` through its ``copy`` global: give it one that backs tables up cheaply
    shim = types.SimpleNamespace(**{name: getattr(copy, name) for name in ("copy", "deepcopy", "Error")})
    shim.deepcopy = _deepcopy
    models.copy = shim  # type: ignore[attr-defined,assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _installed = True
