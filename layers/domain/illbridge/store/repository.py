"""The bridge's DynamoDB store: the only code that reads or writes the bridge table.

Every decision that two workers could race for (claiming a step, saving a mapping, recording a ReShare
transition, moving a poll cursor) is made by ONE conditional write; when the condition fails, the item as
DynamoDB saw it (``ReturnValuesOnConditionCheckFailure=ALL_OLD``, or a consistent read when that is absent)
only chooses which typed error to raise. Nothing here reads and then writes without a condition.

``BridgeStore`` is the one front; the code behind it is cut along its seams: ``dynamo`` (codec, expressions,
error translation, the conditional-update helper) and one module per kind of record: ``mappings``,
``steps`` (and history), ``seen`` (last-seen states and poll cursors), ``outbox``, ``attention``,
``webhooks``.
"""

from __future__ import annotations

from illbridge.errors import StoreUnavailable
from illbridge.store.attention import AttentionRecords
from illbridge.store.mappings import MappingRecords
from illbridge.store.outbox import PendingEvent
from illbridge.store.seen import SeenRecords, SeenState, StateChange
from illbridge.store.steps import StepRecords
from illbridge.store.webhooks import WEBHOOK_MEMORY, WebhookClaim, WebhookRecords

__all__ = [
    "WEBHOOK_MEMORY",
    "BridgeStore",
    "PendingEvent",
    "SeenState",
    "StateChange",
    "StoreUnavailable",
    "WebhookClaim",
]


class BridgeStore(MappingRecords, StepRecords, SeenRecords, AttentionRecords, WebhookRecords):
    """Mappings, step claims, history, last seen states, poll cursors, the outbox and the attention list."""
