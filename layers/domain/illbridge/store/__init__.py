"""The bridge's DynamoDB store (the only code that touches the bridge table)."""

from illbridge.store.repository import (
    BridgeStore,
    PendingEvent,
    StateChange,
    StoreUnavailable,
    WebhookClaim,
)

__all__ = ["BridgeStore", "PendingEvent", "StateChange", "StoreUnavailable", "WebhookClaim"]
