"""The bridge's DynamoDB store (the only code that touches the bridge table)."""

from illbridge.store.repository import BridgeStore, RequestItems, StateChange, StoreUnavailable

__all__ = ["BridgeStore", "RequestItems", "StateChange", "StoreUnavailable"]
