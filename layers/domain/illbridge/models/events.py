"""The events the bridge puts on its EventBridge bus (the ``detail`` of each)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

EVENT_SOURCE = "reshare-wms-bridge"


class ReShareRequestChanged(BaseModel):
    """A ReShare patron request entered a new state (seen by the poller or pushed to the webhook)."""

    DETAIL_TYPE: ClassVar[str] = "ReShareRequestChanged"
    model_config = ConfigDict(extra="forbid")

    library_id: str
    tenant: str
    side: Literal["borrowing", "lending"]
    request_id: str
    hrid: str
    state: str
    previous_state: str | None = None
    last_updated: datetime
    source: Literal["poller", "webhook", "ops"] = "poller"


class WmsItemCheckedIn(BaseModel):
    """WMS checked an item in (seen by reconciliation or pushed to the WMS webhook)."""

    DETAIL_TYPE: ClassVar[str] = "WmsItemCheckedIn"
    model_config = ConfigDict(extra="forbid")

    library_id: str
    registry_id: str
    item_barcode: str
    checked_in_at: datetime
    branch: str | None = None
    side: Literal["borrowing", "lending"] | None = None  # from the bridge's mapping of the item
    tenant: str | None = None
    request_id: str | None = None
    source: Literal["reconciler", "webhook", "ops"] = "reconciler"


class AttentionRaised(BaseModel):
    """Something needs staff (routed by the bus to the attention SNS topic that staff subscribe to)."""

    DETAIL_TYPE: ClassVar[str] = "AttentionRaised"
    model_config = ConfigDict(extra="forbid")

    library_id: str
    tenant: str
    request_id: str
    hrid: str
    step: str
    reason: str
    fix: str
    retry: str
