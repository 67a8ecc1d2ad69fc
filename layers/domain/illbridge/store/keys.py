"""Key layout of the bridge table (docs/architecture.md, "DynamoDB"), and the one time format it stores.

| item        | pk                           | sk                       | sparse index attributes           |
|-------------|------------------------------|--------------------------|-----------------------------------|
| mapping     | ``REQ#<tenant>#<request>``   | ``MAPPING``              | ``open_key`` + ``next_check_at``  |
| item        | same                         | ``ITEM#<barcode>``       | ``item_key``                      |
| step        | same                         | ``STEP#<step>``          |                                   |
| history     | same                         | ``LOG#<time>#<seq>``     | (TTL ``expires_at``)              |
| last seen   | same                         | ``SEEN``                 |                                   |
| attention   | same                         | ``ATTN#<step>``          | ``attention_key`` + ``attention_at`` |
| cursor      | ``CURSOR#<tenant>#<side>``   | ``CURSOR``               |                                   |
| webhook id  | ``WEBHOOK#<endpoint>#<library>#<id>`` | ``WEBHOOK``     | (TTL ``expires_at``)              |
| outbox      | ``OUTBOX#<tenant>``          | ``EVENT#<time>#<id>``    |                                   |

Index names and key attribute names must match the ``BridgeTable`` resource of ``template.yaml``
(tests/template checks they do).
"""

from __future__ import annotations

from datetime import UTC, datetime

from illbridge.errors import StoreError

# GSIs of template.yaml
ITEM_INDEX = "by-item-barcode"
ATTENTION_INDEX = "attention"
RECONCILIATION_INDEX = "reconciliation"
TTL_ATTRIBUTE = "expires_at"

MAPPING_SK = "MAPPING"
SEEN_SK = "SEEN"
CURSOR_SK = "CURSOR"
WEBHOOK_SK = "WEBHOOK"
OUTBOX_PREFIX = "EVENT#"
ITEM_PREFIX = "ITEM#"
STEP_PREFIX = "STEP#"
LOG_PREFIX = "LOG#"
ATTENTION_PREFIX = "ATTN#"

_SEPARATOR = "#"


def _part(name: str, value: str, *, last: bool = False) -> str:
    """A key component: non-empty, and without the separator unless it is the last component."""
    text = str(value)
    if not text:
        raise StoreError(f"{name} must not be empty")
    if not last and _SEPARATOR in text:
        raise StoreError(f"{name} must not contain {_SEPARATOR!r}: {text!r}")
    return text


def request_pk(tenant: str, request_id: str) -> str:
    return f"REQ#{_part('tenant', tenant)}#{_part('request_id', request_id, last=True)}"


def item_sk(barcode: str) -> str:
    return ITEM_PREFIX + _part("barcode", barcode, last=True)


def item_key(registry_id: str, barcode: str) -> str:
    return f"ITEM#{_part('registry_id', registry_id)}#{_part('barcode', barcode, last=True)}"


def step_sk(step: str) -> str:
    return STEP_PREFIX + _part("step", step, last=True)


def log_sk(at: datetime, seq: int) -> str:
    return f"{LOG_PREFIX}{timestamp(at)}#{seq:06d}"


def attention_sk(step: str) -> str:
    return ATTENTION_PREFIX + _part("step", step, last=True)


def attention_key(tenant: str) -> str:
    return ATTENTION_PREFIX + _part("tenant", tenant)


def open_key(tenant: str) -> str:
    return "OPEN#" + _part("tenant", tenant)


def cursor_pk(tenant: str, side: str) -> str:
    return f"CURSOR#{_part('tenant', tenant)}#{_part('side', side, last=True)}"


def webhook_pk(endpoint: str, library_id: str, webhook_id: str) -> str:
    return (
        f"WEBHOOK#{_part('endpoint', endpoint)}#{_part('library_id', library_id)}"
        f"#{_part('webhook_id', webhook_id, last=True)}"
    )


def outbox_pk(tenant: str) -> str:
    return "OUTBOX#" + _part("tenant", tenant, last=True)


def outbox_sk(at: datetime, event_id: str) -> str:
    return f"{OUTBOX_PREFIX}{timestamp(at)}#{_part('event_id', event_id, last=True)}"


def timestamp(value: datetime) -> str:
    """Fixed-width ISO 8601 UTC with microseconds, e.g. ``2025-01-31T09:05:00.000000Z``.

    Fixed width makes string order equal time order, which the sort keys, the sparse indexes and the
    conditions (``lease_until < :now``, ``cursor_at < :value``) rely on. A naive datetime is taken as UTC.
    """
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
