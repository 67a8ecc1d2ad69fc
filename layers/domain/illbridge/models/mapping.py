"""What the bridge keeps per ILL request: the mapping to WMS items, the steps taken, and their history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from illbridge.timeutil import utcnow


class Side(StrEnum):
    BORROWING = "borrowing"
    LENDING = "lending"


class StepName(StrEnum):
    """The workflow steps (docs/architecture.md#the-workflow-steps)."""

    BORROW_RECEIVED = "borrow_received"  # temp item + hold on receipt
    BORROW_RETURNED = "borrow_returned"  # check the temp item in when ReShare says returned
    BORROW_WMS_RETURNED = "borrow_wms_returned"  # WMS checked in first: update ReShare
    LEND_SHIPPED = "lend_shipped"  # check the lent item out to the borrowing institution
    LEND_RETURNED = "lend_returned"  # check the lent item in on completion
    LEND_WMS_RETURNED = "lend_wms_returned"  # WMS checked in first: complete in ReShare
    REQUEST_CLOSED = "request_closed"  # cancelled/unfilled/closed: end the mapping


class StepStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    SKIPPED = "SKIPPED"  # switched off by configuration, or nothing to do
    RETRYABLE = "RETRYABLE"  # failed with a transient fault; the next attempt may claim it
    FAILED = "FAILED"  # needs a human: on the attention list

    @property
    def is_final(self) -> bool:
        return self in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


class Outcome(StrEnum):
    SUCCESS = "success"
    PROBLEM = "problem"  # the other system said no
    ERROR = "error"  # transient fault
    UNKNOWN = "unknown"  # sent, no answer
    SKIPPED = "skipped"
    INFO = "info"


class MappedItem(BaseModel):
    """One WMS item of a request: a temp item (borrowing) or the lent item (lending)."""

    model_config = ConfigDict(extra="ignore")
    barcode: str
    volume_id: str | None = None
    call_number: str | None = None
    lender_item_id: str | None = None
    created_in_wms: bool = False  # AcceptItem done (borrowing) or checked out (lending)
    checked_in: bool = False
    wms_status: str | None = None  # last circulation status reconciliation saw
    seen_on_loan: bool = False  # reconciliation saw it on loan (borrowing: to the patron)
    wms_due_date: datetime | None = None
    # the latest WMS check-in notice WMS refuted (its checked_in_at): a copy of it is not asked about again
    refuted_notice_at: datetime | None = None


class Mapping(BaseModel):
    """The ILL request <-> WMS circulation mapping (one per request and side)."""

    model_config = ConfigDict(extra="ignore")
    library_id: str
    tenant: str
    request_id: str
    hrid: str
    side: Side
    registry_id: str
    reshare_state: str
    open: bool = True
    items: list[MappedItem] = Field(default_factory=list)
    patron_barcode: str | None = None
    borrowing_institution_account: str | None = None
    partner_symbol: str | None = None
    pickup_branch: str | None = None
    lender_due_date: datetime | None = None
    date_for_return: datetime | None = None
    next_check_at: datetime | None = None  # reconciliation: when to ask WMS again (open mappings only)
    check_count: int = 0
    version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def item(self, barcode: str) -> MappedItem | None:
        return next((i for i in self.items if i.barcode == barcode), None)


class StepRecord(BaseModel):
    """The claim and outcome of one workflow step of one request."""

    model_config = ConfigDict(extra="ignore")
    step: StepName
    status: StepStatus
    attempt: int = 1
    lease_until: datetime | None = None
    trigger: str | None = None  # what started it, e.g. "REQ_CHECKED_IN" or "WmsItemCheckedIn"
    last_error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime = Field(default_factory=utcnow)
    # while the step waits out transient faults: since when, and how many times it was put off (backoff)
    waiting_since: datetime | None = None
    waits: int = 0


class HistoryEntry(BaseModel):
    """One line of a request's circulation history: an external call or a decision, and how it went."""

    model_config = ConfigDict(extra="ignore")
    at: datetime = Field(default_factory=utcnow)
    step: str
    system: str  # "wms", "reshare" or "bridge"
    operation: str  # e.g. "AcceptItem", "performAction patronReturnedItem", "skipped by configuration"
    outcome: Outcome
    summary: str = ""
    request: dict[str, Any] = Field(default_factory=dict)
    response: dict[str, Any] = Field(default_factory=dict)
    duration_ms: int | None = None
    attempt: int | None = None


class AttentionItem(BaseModel):
    """Something that needs a human: what is wrong, what to fix, and how to retry."""

    model_config = ConfigDict(extra="ignore")
    library_id: str
    tenant: str
    request_id: str
    hrid: str
    step: str
    reason: str
    fix: str
    retry: str
    raised_at: datetime = Field(default_factory=utcnow)
    resolved: bool = False
    notified_at: datetime | None = None  # when its notice went to the attention topic (illbridge/announce.py)
