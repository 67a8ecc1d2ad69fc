"""In-memory fakes of the three ports a step uses (WMS, ReShare, the store), and the bus, for the step-rule unit
tests: no AWS, no HTTP (tests/unit cannot open sockets).

The fakes keep the contracts the engine relies on, as the real ones do: the store's claim is one decision
(absent/RETRYABLE/expired lease -> claimed with attempt + 1, done -> ``StepAlreadyDone``, a live lease ->
``StepAlreadyClaimed``), a mapping save is refused when its version moved (``StaleMapping``); WMS answers
like the NCIP client (a refusal is a ``WmsProblem``, a lost answer a ``WmsOutcomeUnknown``). A fault to
raise at the next call of an operation is queued with ``fail(operation, error)``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from illbridge.config import LibraryConfig
from illbridge.errors import StaleMapping, StepAlreadyClaimed, UnknownLibrary
from illbridge.models import (
    AttentionItem,
    HistoryEntry,
    Mapping,
    PatronRequest,
    StepName,
    StepRecord,
    StepStatus,
    WmsItemCheckedIn,
)
from illbridge.settings import BridgeSettings
from illbridge.store.steps import is_reclaim
from illbridge.wms.messages import AcceptItem, CancelRequestItem, CheckInItem, CheckOutItem
from illbridge.wms.ncip import (
    AcceptItemResult,
    CancelRequestResult,
    CheckInResult,
    CheckOutResult,
    ItemStatus,
    UserItem,
    UserItems,
)
from illbridge.wms.scim import Patron

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def check_in_notice(
    side: str, barcode: str, request_id: str, source: str, at: datetime = NOW
) -> WmsItemCheckedIn:
    """WMS checked ``barcode`` in at ``at``: the event east's reconciler or WMS webhook puts on the bus."""
    return WmsItemCheckedIn(
        library_id="east",
        registry_id="128807",
        item_barcode=barcode,
        checked_in_at=at,
        side=side,
        tenant="east",
        request_id=request_id,
        source=source,
    )


class Faults:
    """Errors queued per operation: the next call of that operation raises the first one."""

    def __init__(self) -> None:
        self._queued: dict[str, list[BaseException]] = defaultdict(list)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def fail(self, operation: str, *errors: BaseException) -> None:
        self._queued[operation].extend(errors)

    def enter(self, operation: str, **args: Any) -> None:
        self.calls.append((operation, args))
        if self._queued[operation]:
            raise self._queued[operation].pop(0)

    def called(self, operation: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == operation]


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeStore:
    """The store port: step claims, mappings, history and the attention list, in dictionaries."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.steps: dict[tuple[str, str, StepName], StepRecord] = {}
        self.mappings: dict[tuple[str, str], Mapping] = {}
        self.lines: dict[tuple[str, str], list[HistoryEntry]] = defaultdict(list)
        self.attention: dict[tuple[str, str, str], AttentionItem] = {}
        self.faults = Faults()

    # -- steps
    def claim_step(
        self,
        tenant: str,
        request_id: str,
        step: StepName,
        *,
        trigger: str,
        lease_seconds: float,
        force: bool = False,
    ) -> StepRecord:
        self.faults.enter("claim_step", step=step)
        now = self.clock()
        current = self.steps.get((tenant, request_id, step))
        where = f"{step.value} of {tenant}/{request_id}"
        reclaim = current is not None and is_reclaim(
            current, now, force=force, where=where
        )  # the store's rule
        record = StepRecord(
            step=step,
            status=StepStatus.IN_PROGRESS,
            attempt=(current.attempt + 1) if current else 1,
            lease_until=now + timedelta(seconds=lease_seconds),
            trigger=trigger,
            result={"reclaimed_after_lease": True} if reclaim else {},
            updated_at=now,
            waiting_since=current.waiting_since if current else None,
            waits=current.waits if current else 0,
        )
        self.steps[(tenant, request_id, step)] = record
        return record.model_copy()

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
    ) -> StepRecord:
        current = self.steps.get((tenant, request_id, step))
        if current is None or current.status != StepStatus.IN_PROGRESS or current.attempt != attempt:
            raise StepAlreadyClaimed(f"attempt {attempt} of {step} no longer holds the step")
        update: dict[str, Any] = {"status": status, "lease_until": None, "last_error": error}
        if result is not None:
            update["result"] = result
        if status == StepStatus.RETRYABLE:
            update["waiting_since"] = current.waiting_since or self.clock()
            update["waits"] = current.waits + 1
        else:
            update["waiting_since"] = None
            update["waits"] = 0
        record = current.model_copy(update=update)
        self.steps[(tenant, request_id, step)] = record
        return record.model_copy()

    def get_step(self, tenant: str, request_id: str, step: StepName) -> StepRecord | None:
        record = self.steps.get((tenant, request_id, step))
        return record.model_copy() if record else None

    def set_step(
        self, tenant: str, request_id: str, step: StepName, status: StepStatus, attempt: int = 1
    ) -> None:
        """Arrange an earlier step's record (as another worker left it)."""
        lease = self.clock() + timedelta(minutes=2) if status == StepStatus.IN_PROGRESS else None
        self.steps[(tenant, request_id, step)] = StepRecord(
            step=step, status=status, attempt=attempt, lease_until=lease
        )

    def expire_lease(self, tenant: str, request_id: str, step: StepName) -> None:
        """The worker that held the step died: its lease runs out (the next claim is a re-claim)."""
        record = self.steps[(tenant, request_id, step)]
        self.steps[(tenant, request_id, step)] = record.model_copy(
            update={"lease_until": self.clock() - timedelta(seconds=1)}
        )

    # -- history
    def add_history(self, tenant: str, request_id: str, entry: HistoryEntry) -> None:
        self.lines[(tenant, request_id)].append(entry)

    def history(self, tenant: str, request_id: str) -> list[HistoryEntry]:
        return list(self.lines[(tenant, request_id)])

    # -- mappings
    def get_mapping(self, tenant: str, request_id: str) -> Mapping | None:
        mapping = self.mappings.get((tenant, request_id))
        return mapping.model_copy(deep=True) if mapping else None

    def create_mapping(self, mapping: Mapping) -> Mapping:
        existing = self.mappings.get((mapping.tenant, mapping.request_id))
        if existing is not None:
            return existing.model_copy(deep=True)
        self.mappings[(mapping.tenant, mapping.request_id)] = mapping.model_copy(deep=True)
        return mapping

    def save_mapping(self, mapping: Mapping) -> Mapping:
        self.faults.enter("save_mapping")
        key = (mapping.tenant, mapping.request_id)
        stored = self.mappings.get(key)
        if (stored.version if stored else 0) != mapping.version:
            raise StaleMapping(f"mapping {key} moved on")
        saved = mapping.model_copy(
            deep=True, update={"version": mapping.version + 1, "updated_at": self.clock()}
        )
        self.mappings[key] = saved.model_copy(deep=True)
        return saved

    def find_by_item(self, registry_id: str, barcode: str) -> Mapping | None:
        found = [
            m for m in self.mappings.values() if m.registry_id == registry_id and m.item(barcode) is not None
        ]
        found.sort(key=lambda m: (m.open, m.updated_at), reverse=True)
        return found[0].model_copy(deep=True) if found else None

    # -- attention
    def raise_attention(self, item: AttentionItem) -> AttentionItem:
        self.attention[(item.tenant, item.request_id, item.step)] = item
        return item

    def get_attention(self, tenant: str, request_id: str, step: str) -> AttentionItem | None:
        return self.attention.get((tenant, request_id, step))

    def resolve_attention(
        self, tenant: str, request_id: str, step: str, *, raised_before: datetime | None = None
    ) -> bool:
        item = self.attention.get((tenant, request_id, step))
        if item is None or item.resolved or (raised_before is not None and item.raised_at >= raised_before):
            return False
        self.attention[(tenant, request_id, step)] = item.model_copy(update={"resolved": True})
        return True

    def open_attention(self) -> list[AttentionItem]:
        return [item for item in self.attention.values() if not item.resolved]


class FakeReShare:
    """The ReShare port: requests by id, and the actions performed on them."""

    def __init__(self) -> None:
        self.requests: dict[str, PatronRequest] = {}
        self.actions: list[tuple[str, str, dict[str, Any]]] = []
        self.faults = Faults()

    def get_request(self, request_id: str) -> PatronRequest:
        self.faults.enter("get_request", request_id=request_id)
        return self.requests[request_id].model_copy(deep=True)

    def perform_action(self, request_id: str, action: str, params: dict[str, Any] | None = None) -> dict:
        self.faults.enter("perform_action", request_id=request_id, action=action)
        self.actions.append((request_id, action, dict(params or {})))
        return {}


@dataclass
class FakeWms:
    """The WMS port: patrons (SCIM), temp items and holds (AcceptItem), loans (CheckOutItem), check-ins, and
    LookupUser/LookupItem over what it holds."""

    patrons: dict[str, Patron] = field(default_factory=dict)
    temp_items: dict[str, dict[str, Any]] = field(default_factory=dict)  # barcode -> AcceptItem fields
    loans: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)  # barcode -> (user, due)
    checked_in: list[str] = field(default_factory=list)
    due_date: datetime | None = None  # what WMS sets on a check-out (None: the desired date)
    faults: Faults = field(default_factory=Faults)

    def patron(self, barcode: str, *, blocked: bool = False, expires: date | None = None) -> None:
        self.patrons[barcode] = Patron(barcode=barcode, expires=expires, blocked=blocked)

    def lookup_patron(self, barcode: str) -> Patron:
        from illbridge.errors import PatronNotFound

        self.faults.enter("lookup_patron", barcode=barcode)
        if barcode not in self.patrons:
            raise PatronNotFound(f"no patron {barcode}")
        return self.patrons[barcode]

    def accept(self, message: AcceptItem) -> AcceptItemResult:
        fields = message.fields()
        self.faults.enter("accept_item", **fields)
        self.temp_items[fields["temp_item_barcode"]] = fields
        return AcceptItemResult(request_id=fields["request_id"], item_barcode=fields["temp_item_barcode"])

    def check_out(self, message: CheckOutItem) -> CheckOutResult:
        fields = message.fields()
        self.faults.enter("check_out_item", **fields)
        desired = fields.get("desired_date_due")
        due = self.due_date or desired
        self.loans[fields["item_barcode"]] = (fields["user_barcode"], due)
        return CheckOutResult(
            item_barcode=fields["item_barcode"], user_id=fields["user_barcode"], due_date=due
        )

    def check_in(self, message: CheckInItem) -> CheckInResult:
        self.faults.enter("check_in_item", item_barcode=message.item_barcode)
        barcode = message.item_barcode
        self.loans.pop(barcode, None)
        self.checked_in.append(barcode)
        return CheckInResult(item_barcode=barcode)

    def cancel(self, message: CancelRequestItem) -> CancelRequestResult:
        self.faults.enter("cancel_request_item", item_barcode=message.item_barcode)
        self.temp_items.pop(message.item_barcode, None)
        return CancelRequestResult(request_id=message.request_id, item_barcode=message.item_barcode)

    def lookup_user(self, user_barcode: str) -> UserItems:
        self.faults.enter("lookup_user", user_barcode=user_barcode)
        loaned = tuple(
            UserItem(item_barcode=b, due_date=due)
            for b, (user, due) in self.loans.items()
            if user == user_barcode
        )
        requested = tuple(
            UserItem(item_barcode=b, request_status="In Process")
            for b, f in self.temp_items.items()
            if f["patron_barcode"] == user_barcode and b not in self.checked_in
        )
        return UserItems(user_id=user_barcode, loaned=loaned, requested=requested)

    def lookup_item(self, barcode: str, *, current_borrower: bool = False) -> ItemStatus:
        self.faults.enter("lookup_item", barcode=barcode)
        if barcode in self.loans:
            return ItemStatus(
                item_barcode=barcode, circulation_status="On Loan", due_date=self.loans[barcode][1]
            )
        if barcode in self.temp_items:
            return ItemStatus(item_barcode=barcode, circulation_status="In Transit")
        from illbridge.errors import WmsProblem

        raise WmsProblem("Unknown Item", element="ItemIdentifierValue", value=barcode)


@dataclass
class FakeBus:
    events: list[Any] = field(default_factory=list)

    def put(self, events: list[Any]) -> int:
        self.events.extend(events)
        return len(events)


class FakeConfigs:
    def __init__(self, *configs: LibraryConfig) -> None:
        self.configs = {c.library_id: c for c in configs}

    def get(self, library_id: str) -> LibraryConfig:
        if library_id not in self.configs:
            raise UnknownLibrary("no such library", library_id=library_id)
        return self.configs[library_id]

    def library_ids(self) -> list[str]:
        return sorted(self.configs)


SETTINGS = BridgeSettings.model_validate({"TABLE_NAME": "bridge", "EVENT_BUS_NAME": "bridge-bus"})


@dataclass
class FakePorts:
    """The engine's ports (``workflow.ports.StepPorts``) over the fakes, as ``wiring.Ports`` is over the real
    clients: the same WMS and ReShare for every library."""

    store: FakeStore
    bus: FakeBus
    configs: FakeConfigs
    clock: FakeClock
    wms_port: FakeWms
    reshare_port: FakeReShare
    topic: None = None
    step_lease_seconds: float = SETTINGS.step_lease_seconds

    def wms(self, config: LibraryConfig) -> FakeWms:
        return self.wms_port

    def reshare(self, config: LibraryConfig) -> FakeReShare:
        return self.reshare_port


@dataclass
class World:
    """The three ports, the bus and the clock, wired as the functions wire the real ones."""

    config: LibraryConfig
    clock: FakeClock = field(default_factory=FakeClock)
    reshare: FakeReShare = field(default_factory=FakeReShare)
    wms: FakeWms = field(default_factory=FakeWms)
    bus: FakeBus = field(default_factory=FakeBus)
    store: FakeStore = field(init=False)
    services: FakePorts = field(init=False)  # what the handlers hand the engine (named as they name it)

    def __post_init__(self) -> None:
        self.store = FakeStore(self.clock)
        self.services = FakePorts(
            store=self.store,
            bus=self.bus,
            configs=FakeConfigs(self.config),
            clock=self.clock,
            wms_port=self.wms,
            reshare_port=self.reshare,
        )

    def with_config(self, **update: Any) -> None:
        """Change the library's configuration (e.g. ``steps=...`` or ``wms=...``)."""
        self.config = self.config.model_copy(update=update)
        self.services.configs = FakeConfigs(self.config)

    def operations(self, request_id: str, tenant: str = "east") -> list[str]:
        """The request's history as ``step:operation:outcome`` (as the e2e tests read it)."""
        return [f"{h.step}:{h.operation}:{h.outcome.value}" for h in self.store.history(tenant, request_id)]
