"""The DynamoDB plumbing of the bridge's store: the codec (Python values <-> DynamoDB), expressions with every
name and value a placeholder, botocore's errors turned into the bridge's (``errors.StoreUnavailable`` and
``errors.StoreError``; a false condition into an internal signal) and ``DynamoTable``, the base every
per-record module builds on, with the one conditional-update helper (``_update_if``).

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
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from illbridge.errors import StoreError, StoreUnavailable
from illbridge.store import keys
from illbridge.timeutil import utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table

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


class DynamoTable:
    """The bridge table: lazy boto3 handles, the clock, and the read, query, transaction and conditional-update
    helpers the per-record modules share."""

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

    def _put_with(self, operation: str, put: dict[str, Any], others: list[dict[str, Any]]) -> None:
        """One conditional put and the writes that belong with it (one transaction when there are any; a plain
        PutItem when there are none). The put's condition false -> ``_ConditionFailed``; a transaction
        cancelled for another reason -> the bridge's error (``_Cancelled.as_error``)."""
        try:
            if others:
                self._transact(operation, [{"Put": put}, *others])
            else:
                with _dynamodb("PutItem"):
                    self._table.put_item(**put)
        except _Cancelled as exc:
            if not exc.condition_failed_first:
                raise exc.as_error() from exc
            raise _ConditionFailed(None) from exc

    def _update_if(
        self, key: dict[str, str], expr: _Expression, condition: str, **options: Any
    ) -> dict[str, Any]:
        """One UpdateItem that applies ``expr`` only if ``condition`` holds: the new (or old) attributes as
        ``options`` ask (``ReturnValues``), or ``_ConditionFailed`` with the item as the condition saw it
        (``ReturnValuesOnConditionCheckFailure="ALL_OLD"`` is always asked for)."""
        with _dynamodb("UpdateItem"):
            answer = self._table.update_item(
                Key=key,  # type: ignore[arg-type]
                UpdateExpression=expr.update(),
                ConditionExpression=condition,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **options,
                **expr.params(),
            )
        return dict(answer.get("Attributes") or {})

    def _updated_if(self, key: dict[str, str], expr: _Expression, condition: str) -> bool:
        """``_update_if`` for a write whose only answer is whether the condition held."""
        try:
            self._update_if(key, expr, condition)
        except _ConditionFailed:
            return False
        return True
