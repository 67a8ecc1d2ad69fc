"""The bridge's DynamoDB store (the only code that touches the bridge table)."""

from illbridge.store.repository import BridgeStore, StateChange, StoreUnavailable

__all__ = ["BridgeStore", "StateChange", "StoreUnavailable"]
