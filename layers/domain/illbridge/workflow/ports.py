"""The ports a step uses: what the step rules need of WMS, ReShare and the store, and nothing more.

``StepContext.wms``, ``.reshare`` and ``.store`` are typed with these, so a reader (and mypy) sees exactly what
a rule may call. The real ones are ``illbridge.wms.client.WmsClient``, ``illbridge.reshare.client.ReShareClient``
and ``illbridge.store.BridgeStore`` (built by ``illbridge.wiring``); the step-rule unit tests use in-memory
fakes of the same shape (``tests/unit/workflow/fakes.py``).

``StepPorts`` is everything the engine is given to run a step: those three per library, the bus, staff's
topic, the libraries' configurations, the clock and the step lease. The functions pass ``wiring.Ports`` (built
once per process, lazily); the unit tests pass their fakes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from illbridge.announce import Publisher
from illbridge.config import LibraryConfig
from illbridge.models import (
    AttentionItem,
    HistoryEntry,
    Mapping,
    PatronRequest,
    StepName,
    StepRecord,
    StepStatus,
)
from illbridge.wms.messages import AcceptItem, CancelRequestItem, CheckInItem, CheckOutItem
from illbridge.wms.ncip import (
    AcceptItemResult,
    CancelRequestResult,
    CheckInResult,
    CheckOutResult,
    ItemStatus,
    UserItems,
)
from illbridge.wms.scim import Patron


class WmsPort(Protocol):
    """WMS as the steps use it: NCIP CircILL messages and LookupUser/LookupItem, and SCIM patron look-ups."""

    def accept(self, message: AcceptItem) -> AcceptItemResult: ...

    def check_out(self, message: CheckOutItem) -> CheckOutResult: ...

    def check_in(self, message: CheckInItem) -> CheckInResult: ...

    def cancel(self, message: CancelRequestItem) -> CancelRequestResult: ...

    def lookup_user(self, user_barcode: str) -> UserItems: ...

    def lookup_item(self, barcode: str, *, current_borrower: bool = False) -> ItemStatus: ...

    def lookup_patron(self, barcode: str) -> Patron: ...


class ReSharePort(Protocol):
    """ReShare (mod-rs) as the steps use it: read a request, perform an action on it."""

    def get_request(self, request_id: str) -> PatronRequest: ...

    def perform_action(self, request_id: str, action: str, params: dict[str, Any] | None = None) -> Any: ...


class StorePort(Protocol):
    """The bridge's store as the engine and the steps use it."""

    def claim_step(
        self,
        tenant: str,
        request_id: str,
        step: StepName,
        *,
        trigger: str,
        lease_seconds: float,
        force: bool = False,
    ) -> StepRecord: ...

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
    ) -> StepRecord: ...

    def get_step(self, tenant: str, request_id: str, step: StepName) -> StepRecord | None: ...

    def add_history(self, tenant: str, request_id: str, entry: HistoryEntry) -> None: ...

    def get_mapping(self, tenant: str, request_id: str) -> Mapping | None: ...

    def create_mapping(self, mapping: Mapping) -> Mapping: ...

    def save_mapping(self, mapping: Mapping) -> Mapping: ...

    def find_by_item(self, registry_id: str, barcode: str) -> Mapping | None: ...

    def raise_attention(self, item: AttentionItem) -> AttentionItem: ...

    def get_attention(self, tenant: str, request_id: str, step: str) -> AttentionItem | None: ...

    def resolve_attention(
        self, tenant: str, request_id: str, step: str, *, raised_before: datetime | None = None
    ) -> bool: ...


class BusPort(Protocol):
    """The bridge's event bus as the engine uses it: put events (``AttentionRaised``)."""

    def put(self, events: Iterable[BaseModel]) -> int: ...


class ConfigsPort(Protocol):
    """The libraries' configurations: one library's, by id."""

    def get(self, library_id: str) -> LibraryConfig: ...


class WmsPorts(Protocol):
    """A library's WMS, within the function's budget (built once per library and secret)."""

    def wms(self, config: LibraryConfig) -> WmsPort: ...


class LibraryPorts(WmsPorts, Protocol):
    """A library's WMS and ReShare, within the function's budgets (built once per library and secret)."""

    def reshare(self, config: LibraryConfig) -> ReSharePort: ...


class StepPorts(LibraryPorts, Protocol):
    """What the engine is given to run a step (``engine.run_step``) and a step is given through its context."""

    @property
    def store(self) -> StorePort: ...

    @property
    def bus(self) -> BusPort: ...

    @property
    def topic(self) -> Publisher | None:
        """Staff's notices (None: none are sent)."""

    @property
    def configs(self) -> ConfigsPort: ...

    @property
    def step_lease_seconds(self) -> float:
        """How long a claimed step is its worker's (``BridgeSettings.step_lease_seconds``)."""

    def clock(self) -> datetime: ...
