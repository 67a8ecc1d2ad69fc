"""The bridge's DynamoDB store: the only code that reads or writes the bridge table.

Every decision that two workers could race for (claiming a step, saving a mapping, recording a ReShare
transition, moving a poll cursor) is made by ONE conditional write; when the condition fails, the item as
DynamoDB saw it (``ReturnValuesOnConditionCheckFailure=ALL_OLD``, or a consistent read when that is absent)
only chooses which typed error to raise. Nothing here reads and then writes without a condition.

Storage conventions: every time is a fixed-width ISO 8601 UTC string (``keys.timestamp``: sortable, so
conditions and sort keys can compare strings); numbers are ``Decimal``; the key layout is in ``keys``.
boto3 is created lazily (no client at import); ``AWS_ENDPOINT_URL`` is honoured by boto3 itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from collections.abc import Mapping as AbcMapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, cast
from uuid import uuid4

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from illbridge.errors import StaleMapping, StepAlreadyClaimed, StepAlreadyDone, StoreError
from illbridge.models.mapping import AttentionItem, HistoryEntry, Mapping, StepName, StepRecord, StepStatus
from illbridge.store import keys
from illbridge.timeutil import epoch_ms, to_utc, utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table

__all__ = ["BridgeStore", "PendingEvent", "StateChange", "StoreUnavailable", "WebhookClaim"]

WEBHOOK_MEMORY = timedelta(days=7)  # how long a delivered webhook id is remembered (duplicate deliveries)
_CLAIM_ROUNDS = 5  # a claim that loses this many races in a row reports the step as claimed
_MAX_TRANSACTION = 100  # DynamoDB's limit of actions per TransactWriteItems
_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
_TRANSIENT_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


class StoreUnavailable(StoreError):
    """DynamoDB throttled, failed (5xx) or could not be reached: safe to retry."""

    transient = True


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An outbox entry: a bus event recorded with its change and not yet known to be on the bus."""

    tenant: str
    sk: str
    detail_type: str
    detail: str  # the event's JSON, put on the bus exactly as recorded (duplicates stay identical)
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class StateChange:
    """What ``record_state_change`` decided: ``changed`` is True for exactly one observer of a transition."""

    changed: bool
    previous_state: str | None
    pending: PendingEvent | None = None  # the outbox entry written with the transition (``event=``)


@dataclass(frozen=True, slots=True)
class WebhookClaim:
    """What ``claim_webhook`` decided: ``taken`` for exactly one delivery of a webhook id."""

    taken: bool
    pending: PendingEvent | None = None  # the outbox entry written with it (``event=``)


@dataclass(frozen=True, slots=True)
class SeenState:
    """The stored last-seen state of a request: the state, the ``lastUpdated`` it was seen at, and every
    state seen at exactly that ``lastUpdated`` (mod-rs renders it to the second: several changes can share
    one)."""

    state: str
    last_updated: datetime
    states_at: frozenset[str]

    def covers(self, state: str, last_updated: datetime) -> bool:
        """Whether an observation adds nothing: older than the stored one, or of a state already seen then."""
        observed = epoch_ms(last_updated)
        stored = epoch_ms(self.last_updated)
        return observed < stored or (observed == stored and state in self.states_at)


# --- encoding ------------------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    """Python/pydantic values -> what boto3's DynamoDB serializer accepts (times as ISO UTC strings)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        return _encode(value.value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else repr(value)
    if isinstance(value, datetime):
        return keys.timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return _encode(value.model_dump(mode="python"))
    if isinstance(value, AbcMapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_encode(v) for v in value]
    return _encode(to_jsonable_python(value, fallback=str))


def _decode(value: Any) -> Any:
    """What boto3 returns -> plain Python (Decimal -> int or float) for pydantic to validate."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list | set | frozenset):
        return [_decode(v) for v in value]
    return value


def _fields(model: BaseModel) -> dict[str, Any]:
    """A model as top-level item attributes (None left out: absent reads back as the default)."""
    return {k: v for k, v in _encode(model.model_dump(mode="python")).items() if v is not None}


def _name(value: str | Enum) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


_deserializer = TypeDeserializer()


# --- expressions and errors ----------------------------------------------------------------------------


class _Expression:
    """Builds update/condition expressions with every attribute name and value as a placeholder."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._sets: list[str] = []
        self._removes: list[str] = []

    def n(self, attribute: str) -> str:
        alias = f"#{attribute}"
        self.names[alias] = attribute
        return alias

    def v(self, value: Any) -> str:
        alias = f":v{len(self.values)}"
        self.values[alias] = _encode(value)
        return alias

    def set(self, attribute: str, value: Any) -> _Expression:
        self._sets.append(f"{self.n(attribute)} = {self.v(value)}")
        return self

    def set_raw(self, clause: str) -> _Expression:
        self._sets.append(clause)
        return self

    def remove(self, *attributes: str) -> _Expression:
        self._removes.extend(self.n(a) for a in attributes)
        return self

    def update(self) -> str:
        parts = []
        if self._sets:
            parts.append("SET " + ", ".join(self._sets))
        if self._removes:
            parts.append("REMOVE " + ", ".join(self._removes))
        return " ".join(parts)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.names:
            params["ExpressionAttributeNames"] = self.names
        if self.values:
            params["ExpressionAttributeValues"] = self.values
        return params


class _ConditionFailed(Exception):
    """A condition was false (internal: always turned into a decision or a typed error)."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("conditional check failed")
        self.item = item  # the item as the condition saw it, when DynamoDB returned it


class _Cancelled(Exception):
    """A transaction was cancelled (internal); ``reasons`` has one code per action."""

    def __init__(self, operation: str, reasons: list[str]) -> None:
        super().__init__(f"{operation}: transaction cancelled: {reasons}")
        self.operation = operation
        self.reasons = reasons

    @property
    def condition_failed_first(self) -> bool:
        return bool(self.reasons) and self.reasons[0] == "ConditionalCheckFailed"

    def as_error(self) -> StoreError:
        message = f"DynamoDB {self.operation} cancelled: {', '.join(self.reasons) or 'no reason given'}"
        if any(r in _TRANSIENT_REASONS for r in self.reasons):
            return StoreUnavailable(message)
        return StoreError(message)


@contextmanager
def _dynamodb(operation: str) -> Iterator[None]:
    """Turn botocore's errors into the bridge's typed errors (conditions into internal signals)."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code == "ConditionalCheckFailedException":
            raw: dict[str, Any] = cast(dict[str, Any], exc.response.get("Item") or {})
            item = {k: _deserializer.deserialize(v) for k, v in raw.items()} if raw else None
            raise _ConditionFailed(item) from exc
        if code == "TransactionCanceledException":
            reasons = [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons", [])]
            raise _Cancelled(operation, reasons) from exc
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"DynamoDB {operation} failed: {code}: {error.get('Message', '')}"
        if code in _TRANSIENT_CODES or status >= 500:
            raise StoreUnavailable(message) from exc
        raise StoreError(message) from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"DynamoDB {operation} failed: {exc}") from exc


# --- the store -----------------------------------------------------------------------------------------


class BridgeStore:
    """Mappings, step claims, history, last seen states, poll cursors and the attention list."""

    page_size = 500  # Limit per Query page (every Query follows LastEvaluatedKey)

    def __init__(
        self,
        table_name: str,
        *,
        dynamodb_resource: DynamoDBServiceResource | None = None,
        history_ttl_days: int = 400,
        clock: Callable[[], datetime] = utcnow,
        botocore_config: Any = None,
    ) -> None:
        if not table_name:
            raise StoreError("the bridge table name is empty")
        self.table_name = table_name
        self._resource = dynamodb_resource
        self._table_handle: Table | None = None
        self._history_ttl = timedelta(days=history_ttl_days)
        self._clock = clock
        self._seq = itertools.count()
        self._botocore_config = (
            botocore_config  # timeouts and tries of the DynamoDB client (illbridge.timings)
        )

    # -- plumbing

    @property
    def _table(self) -> Table:
        if self._table_handle is None:
            if self._resource is None:
                self._resource = boto3.resource("dynamodb", config=self._botocore_config)
            self._table_handle = self._resource.Table(self.table_name)
        return self._table_handle

    @property
    def _client(self) -> DynamoDBClient:
        # the resource's client: it (de)serializes Python values like the Table does
        return self._table.meta.client

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, str]:
        return {"pk": pk, "sk": sk}

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with _dynamodb("GetItem"):
            row = self._table.get_item(Key=self._key(pk, sk), ConsistentRead=True).get("Item")
        return dict(row) if row else None

    def _query(self, *, limit: int | None = None, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item a Query matches (following LastEvaluatedKey), at most ``limit``."""
        returned = 0
        if limit is not None and limit <= 0:
            return
        while True:
            page_limit = self.page_size if limit is None else min(self.page_size, limit - returned)
            with _dynamodb("Query"):
                page = self._table.query(Limit=page_limit, **params)
            for row in page.get("Items", []):
                yield dict(row)
                returned += 1
                if limit is not None and returned >= limit:
                    return
            start = page.get("LastEvaluatedKey")
            if not start:
                return
            params["ExclusiveStartKey"] = start

    def _partition(self, pk: str, prefix: str | None = None) -> Iterator[dict[str, Any]]:
        return self._query(**self._partition_params(pk, prefix))

    @staticmethod
    def _partition_params(pk: str, prefix: str | None = None) -> dict[str, Any]:
        expr = _Expression()
        condition = f"{expr.n('pk')} = {expr.v(pk)}"
        if prefix:
            condition += f" AND begins_with({expr.n('sk')}, {expr.v(prefix)})"
        return {"KeyConditionExpression": condition, "ConsistentRead": True, **expr.params()}

    def _transact(self, operation: str, actions: list[dict[str, Any]]) -> None:
        if len(actions) > _MAX_TRANSACTION:
            raise StoreError(f"{operation}: {len(actions)} writes exceed one transaction")
        with _dynamodb(operation):
            self._client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]

    # -- mappings

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
            if items:
                self._transact("create_mapping", [{"Put": put}, *items])
            else:
                with _dynamodb("PutItem"):
                    self._table.put_item(**put)  # type: ignore[arg-type]
        except (_ConditionFailed, _Cancelled) as exc:
            if isinstance(exc, _Cancelled) and not exc.condition_failed_first:
                raise exc.as_error() from exc
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
            if changes:
                self._transact("save_mapping", [{"Put": put}, *changes])
            else:
                with _dynamodb("PutItem"):
                    self._table.put_item(**put)  # type: ignore[arg-type]
        except (_ConditionFailed, _Cancelled) as exc:
            if isinstance(exc, _Cancelled) and not exc.condition_failed_first:
                raise exc.as_error() from exc
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

    # -- steps

    def claim_step(
        self,
        tenant: str,
        request_id: str,
        step: StepName,
        *,
        trigger: str,
        lease_seconds: float,
        force: bool = False,
    ) -> StepRecord:
        """Take the step for one attempt, or raise ``StepAlreadyClaimed`` / ``StepAlreadyDone``.

        absent -> attempt 1; RETRYABLE (or FAILED with ``force``) -> attempt + 1; IN_PROGRESS whose lease
        ran out -> attempt + 1 with ``result["reclaimed_after_lease"]`` (verify before re-sending).
        """
        pk, sk = keys.request_pk(tenant, request_id), keys.step_sk(_name(step))
        claimable = [StepStatus.RETRYABLE, *([StepStatus.FAILED] if force else [])]
        for _ in range(_CLAIM_ROUNDS):
            now = self._now()
            expr = _Expression()
            status = expr.n("status")
            condition = "attribute_not_exists(pk) OR " + " OR ".join(
                f"{status} = {expr.v(s)}" for s in claimable
            )
            try:
                return self._claim(pk, sk, step, expr, condition, trigger, now, lease_seconds, reclaim=False)
            except _ConditionFailed as failed:
                current = failed.item if failed.item is not None else self._get(pk, sk)
            if current is None:
                continue  # deleted since: try again
            record = _step_from_row(current)
            where = f"{_name(step)} of {tenant}/{request_id}"
            if record.status.is_final or (record.status == StepStatus.FAILED and not force):
                raise StepAlreadyDone(f"{where} is {record.status.value} (attempt {record.attempt})")
            if record.status != StepStatus.IN_PROGRESS:
                continue  # became claimable since the write was refused
            if record.lease_until is not None and record.lease_until >= now:
                raise StepAlreadyClaimed(
                    f"{where} is in progress (attempt {record.attempt}, lease until "
                    f"{keys.timestamp(record.lease_until)})"
                )
            expr = _Expression()
            lease = expr.n("lease_until")
            condition = (
                f"{expr.n('status')} = {expr.v(StepStatus.IN_PROGRESS)}"
                f" AND {expr.n('attempt')} = {expr.v(record.attempt)}"
                f" AND (attribute_not_exists({lease}) OR {lease} < {expr.v(keys.timestamp(now))})"
            )
            try:
                return self._claim(pk, sk, step, expr, condition, trigger, now, lease_seconds, reclaim=True)
            except _ConditionFailed:
                continue  # another worker reclaimed it first: look again
        raise StepAlreadyClaimed(f"{_name(step)} of {tenant}/{request_id} is contended; try again later")

    def _claim(
        self,
        pk: str,
        sk: str,
        step: StepName,
        expr: _Expression,
        condition: str,
        trigger: str,
        now: datetime,
        lease_seconds: float,
        *,
        reclaim: bool,
    ) -> StepRecord:
        attempt = expr.n("attempt")
        expr.set("kind", "step").set("step", _name(step)).set("status", StepStatus.IN_PROGRESS)
        expr.set_raw(f"{attempt} = if_not_exists({attempt}, {expr.v(0)}) + {expr.v(1)}")
        expr.set("lease_until", now + timedelta(seconds=lease_seconds))
        expr.set("trigger", trigger).set("claimed_at", now).set("updated_at", now)
        expr.set("result", {"reclaimed_after_lease": True} if reclaim else {})
        with _dynamodb("UpdateItem"):
            answer = self._table.update_item(
                Key=self._key(pk, sk),
                UpdateExpression=expr.update(),
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **expr.params(),
            )
        return _step_from_row(dict(answer["Attributes"]))

    def complete_step(
        self,
        tenant: str,
        request_id: str,
        step: StepName,
        *,
        attempt: int,
        status: StepStatus,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> StepRecord:
        """Record how ``attempt`` ended; ``StepAlreadyClaimed`` if that attempt no longer holds the step."""
        if status == StepStatus.IN_PROGRESS:
            raise StoreError("complete_step needs the outcome of the attempt, not IN_PROGRESS")
        pk, sk = keys.request_pk(tenant, request_id), keys.step_sk(_name(step))
        expr = _Expression()
        condition = f"{expr.n('status')} = {expr.v(StepStatus.IN_PROGRESS)} AND {expr.n('attempt')} = {expr.v(attempt)}"
        expr.set("status", status).set("updated_at", self._now())
        if result is not None:
            expr.set("result", result)
        expr.remove("lease_until")
        if error:
            expr.set("last_error", error)
        else:
            expr.remove("last_error")
        if status == StepStatus.RETRYABLE:  # waiting: keep when it began, count the waits (for the backoff)
            since, waits = expr.n("waiting_since"), expr.n("waits")
            expr.set_raw(f"{since} = if_not_exists({since}, {expr.v(self._now())})")
            expr.set_raw(f"{waits} = if_not_exists({waits}, {expr.v(0)}) + {expr.v(1)}")
        else:
            expr.remove("waiting_since").remove("waits")
        try:
            with _dynamodb("UpdateItem"):
                answer = self._table.update_item(
                    Key=self._key(pk, sk),
                    UpdateExpression=expr.update(),
                    ConditionExpression=condition,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **expr.params(),
                )
        except _ConditionFailed as failed:
            current = failed.item if failed.item is not None else self._get(pk, sk)
            now_holds = (
                f"{current.get('status')} attempt {_decode(current.get('attempt'))}" if current else "absent"
            )
            raise StepAlreadyClaimed(
                f"attempt {attempt} of {_name(step)} for {tenant}/{request_id} no longer holds the step "
                f"(now {now_holds})"
            ) from failed
        return _step_from_row(dict(answer["Attributes"]))

    def release_step(self, tenant: str, request_id: str, step: StepName) -> bool:
        """Staff retry: turn a FAILED step into RETRYABLE, so the next delivery of its trigger claims it
        (attempt + 1). Whether it was released: a step in any other status is left alone."""
        expr = _Expression()
        condition = f"{expr.n('status')} = {expr.v(StepStatus.FAILED)}"
        now = self._now()
        expr.set("status", StepStatus.RETRYABLE).set("released_at", now).set("updated_at", now)
        try:
            with _dynamodb("UpdateItem"):
                self._table.update_item(
                    Key=self._key(keys.request_pk(tenant, request_id), keys.step_sk(_name(step))),
                    UpdateExpression=expr.update(),
                    ConditionExpression=condition,
                    **expr.params(),
                )
        except _ConditionFailed:
            return False
        return True

    def get_step(self, tenant: str, request_id: str, step: StepName) -> StepRecord | None:
        row = self._get(keys.request_pk(tenant, request_id), keys.step_sk(_name(step)))
        return _step_from_row(row) if row else None

    def steps(self, tenant: str, request_id: str) -> list[StepRecord]:
        rows = self._partition(keys.request_pk(tenant, request_id), keys.STEP_PREFIX)
        return [_step_from_row(row) for row in rows]

    # -- history

    def add_history(self, tenant: str, request_id: str, entry: HistoryEntry) -> None:
        """Append one line (sorted by ``entry.at``, then by order of writing); expires after the TTL."""
        pk = keys.request_pk(tenant, request_id)
        row = {
            "pk": pk,
            "kind": "history",
            **_fields(entry),
            keys.TTL_ATTRIBUTE: int((self._now() + self._history_ttl).timestamp()),
        }
        for _ in range(10):
            row["sk"] = keys.log_sk(entry.at, next(self._seq) % 1_000_000)
            try:
                with _dynamodb("PutItem"):
                    self._table.put_item(Item=row, ConditionExpression="attribute_not_exists(pk)")
                return
            except _ConditionFailed:
                continue  # same time and sequence number from another writer: take the next number
        raise StoreError(f"could not add a history line to {tenant}/{request_id}")

    def history(self, tenant: str, request_id: str) -> list[HistoryEntry]:
        rows = self._partition(keys.request_pk(tenant, request_id), keys.LOG_PREFIX)
        return [HistoryEntry.model_validate(_decode(row)) for row in rows]

    # -- last seen ReShare state

    def record_state_change(
        self,
        tenant: str,
        request_id: str,
        state: str,
        last_updated: datetime,
        *,
        event: BaseModel | None = None,
        previous_state: str | None = None,
    ) -> StateChange:
        """Remember ``state`` as seen at ``last_updated``; ``changed`` only for a real, new transition.

        One conditional write decides, so of two observers that see the same transition exactly one gets
        ``changed=True``. A transition is a state other than the stored one, seen either later than the stored
        observation or at the very same ``lastUpdated`` but not yet seen then: mod-rs renders ``lastUpdated``
        to the second, so two changes inside one second share it, and the item keeps ``states_at``, every
        state seen at its ``last_updated``, so that neither is lost and a stale read of the first never counts
        again. (A request that leaves a state and comes back to it inside one second shows nothing new.)

        ``event``: the transition's bus event, written to the tenant's outbox in the SAME transaction as the
        new state (TransactWriteItems), so a transition is never recorded as seen without its pending
        event, whatever fails afterwards (``pending_events``/``forget_event`` deliver it). Then
        ``previous_state`` (what the caller read before) is what the answer reports as the previous state.
        """
        key = self._key(keys.request_pk(tenant, request_id), keys.SEEN_SK)
        observed = to_utc(last_updated)
        assert observed is not None
        millis = epoch_ms(observed)
        now = self._now()

        # 1. later than what is stored (or nothing stored): a transition if the state differs
        expr = _Expression()
        state_n, millis_n = expr.n("state"), expr.n("last_updated_ms")
        condition = (
            f"attribute_not_exists(pk) OR ({state_n} <> {expr.v(state)} AND {millis_n} < {expr.v(millis)})"
        )
        expr.set("kind", "seen").set("state", state).set("last_updated", observed)
        expr.set("last_updated_ms", millis).set("changed_at", now).set("states_at", {state})
        try:
            return self._transition(tenant, key, expr, condition, event, previous_state)
        except _ConditionFailed:
            pass

        # 2. in the same second as what is stored, a state not yet seen in it: a transition too
        expr = _Expression()
        states_n = expr.n("states_at")
        condition = (
            f"{expr.n('state')} <> {expr.v(state)} AND {expr.n('last_updated_ms')} = {expr.v(millis)} "
            f"AND NOT contains({states_n}, {expr.v(state)})"
        )
        expr.set("state", state).set("changed_at", now)
        expr.set_raw(f"{states_n} = list_append(if_not_exists({states_n}, {expr.v([])}), {expr.v([state])})")
        try:
            return self._transition(tenant, key, expr, condition, event, previous_state)
        except _ConditionFailed:
            pass

        # 3. not a transition: if it is the same state seen later, move the watermark silently
        expr = _Expression()
        millis_n = expr.n("last_updated_ms")
        condition = f"{expr.n('state')} = {expr.v(state)} AND {millis_n} < {expr.v(millis)}"
        expr.set("last_updated", observed).set("last_updated_ms", millis).set("states_at", [state])
        try:
            with _dynamodb("UpdateItem"):
                self._table.update_item(
                    Key=key,
                    UpdateExpression=expr.update(),
                    ConditionExpression=condition,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **expr.params(),
                )
            return StateChange(False, state)
        except _ConditionFailed as failed:
            stored = failed.item.get("state") if failed.item else None
            return StateChange(False, str(stored) if stored is not None else None)

    def _transition(
        self,
        tenant: str,
        key: dict[str, str],
        expr: _Expression,
        condition: str,
        event: BaseModel | None,
        previous_state: str | None,
    ) -> StateChange:
        """Write a transition of the SEEN item if ``condition`` holds (else ``_ConditionFailed``); with
        ``event``, in one transaction with its outbox entry."""
        if event is None:
            with _dynamodb("UpdateItem"):
                answer = self._table.update_item(
                    Key=key,
                    UpdateExpression=expr.update(),
                    ConditionExpression=condition,
                    ReturnValues="UPDATED_OLD",
                    **expr.params(),
                )
            previous = answer.get("Attributes", {}).get("state")
            return StateChange(True, str(previous) if previous is not None else None)
        update = {
            "TableName": self.table_name,
            "Key": key,
            "UpdateExpression": expr.update(),
            "ConditionExpression": condition,
            **expr.params(),
        }
        put, pending = self._outbox_put(tenant, event)
        try:
            self._transact("record_state_change", [{"Update": update}, put])
        except _Cancelled as cancelled:
            if cancelled.condition_failed_first:
                raise _ConditionFailed(None) from cancelled
            raise cancelled.as_error() from cancelled
        return StateChange(True, previous_state, pending)

    # -- the outbox: bus events recorded with the change they announce, until the bus has them

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

    def seen_state(self, tenant: str, request_id: str) -> SeenState | None:
        """The stored last-seen state, with every state seen at its ``lastUpdated``."""
        row = self._get(keys.request_pk(tenant, request_id), keys.SEEN_SK)
        if not row:
            return None
        at = to_utc(row["last_updated"])
        assert at is not None
        state = str(row["state"])
        states = frozenset(str(value) for value in row.get("states_at") or [state])
        return SeenState(state, at, states | {state})

    def last_seen(self, tenant: str, request_id: str) -> tuple[str, datetime] | None:
        row = self._get(keys.request_pk(tenant, request_id), keys.SEEN_SK)
        if not row:
            return None
        at = to_utc(row["last_updated"])
        assert at is not None
        return str(row["state"]), at

    # -- poll cursors

    def get_cursor(self, tenant: str, side: str) -> datetime | None:
        row = self._get(keys.cursor_pk(tenant, _name(side)), keys.CURSOR_SK)
        return to_utc(row["cursor_at"]) if row else None

    def advance_cursor(self, tenant: str, side: str, value: datetime) -> bool:
        """Move the cursor to ``value`` if that is later than the stored one; whether it moved."""
        expr = _Expression()
        cursor = expr.n("cursor_at")
        condition = f"attribute_not_exists(pk) OR {cursor} < {expr.v(value)}"
        expr.set("kind", "cursor").set("cursor_at", value).set("updated_at", self._now())
        try:
            with _dynamodb("UpdateItem"):
                self._table.update_item(
                    Key=self._key(keys.cursor_pk(tenant, _name(side)), keys.CURSOR_SK),
                    UpdateExpression=expr.update(),
                    ConditionExpression=condition,
                    **expr.params(),
                )
        except _ConditionFailed:
            return False
        return True

    # -- attention list

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
        """
        expr = _Expression()
        condition = f"attribute_exists({expr.n('attention_key')})"
        if raised_before is not None:
            condition += f" AND {expr.n('attention_at')} < {expr.v(keys.timestamp(raised_before))}"
        expr.set("resolved", True).set("resolved_at", self._now()).remove("attention_key", "attention_at")
        try:
            with _dynamodb("UpdateItem"):
                self._table.update_item(
                    Key=self._key(keys.request_pk(tenant, request_id), keys.attention_sk(_name(step))),
                    UpdateExpression=expr.update(),
                    ConditionExpression=condition,
                    **expr.params(),
                )
        except _ConditionFailed:
            return False
        return True

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

    # -- webhook deliveries

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


def _step_from_row(row: dict[str, Any]) -> StepRecord:
    return StepRecord.model_validate(_decode(row))
