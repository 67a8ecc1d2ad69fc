"""Typed models of the bridge's world: ReShare patron requests, mappings, steps, history, events."""

from illbridge.models.events import ReShareRequestChanged, WmsItemCheckedIn
from illbridge.models.mapping import (
    AttentionItem,
    HistoryEntry,
    MappedItem,
    Mapping,
    Outcome,
    Side,
    StepName,
    StepRecord,
    StepStatus,
)
from illbridge.models.patron_request import PatronRequest, RequestState, Volume

__all__ = [
    "AttentionItem",
    "HistoryEntry",
    "MappedItem",
    "Mapping",
    "Outcome",
    "PatronRequest",
    "ReShareRequestChanged",
    "RequestState",
    "Side",
    "StepName",
    "StepRecord",
    "StepStatus",
    "Volume",
    "WmsItemCheckedIn",
]
