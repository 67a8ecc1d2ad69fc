"""ReShare transitions are put on the bus first, then recorded as seen; the cursor never passes one not recorded.

The poller (``poll_side``) against the real store (moto, in process), a ReShare stand-in that lists requests
``lastUpdated >= since`` in ``lastUpdated`` order as mod-rs does, and a bus stand-in that can refuse entries,
fail a call, take a call and lose its answer, or take it and then let the process die. For each fault: nothing
is recorded that the bus did not take, the cursor stays at the earliest unrecorded transition, the run fails
visibly, and the next poll puts what is missing and records it; an event goes out at most twice (what was on
the bus when the fault struck), never zero times.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from illbridge.config import LibraryConfig
from illbridge.errors import EventsNotDelivered, StoreUnavailable
from illbridge.intake.polling import OVERLAP, poll_side
from illbridge.intake.seen import Transitions
from illbridge.models import PatronRequest, Side
from illbridge.reshare.client import Listing
from illbridge.store import BridgeStore

TENANT = "west"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def config() -> LibraryConfig:
    return LibraryConfig.model_validate(
        {
            "library_id": "west",
            "name": "West",
            "reshare": {
                "base_url": "http://reshare.invalid",
                "tenant": TENANT,
                "username": "bridge",
                "password": "pw",
                "symbol": "RESHARE:WEST",
            },
            "wms": {
                "registry_id": "262626",
                "ncip_url": "http://wms.invalid/ncip",
                "oauth_url": "http://wms.invalid/oauth",
                "scim_url": "http://wms.invalid/scim",
                "wskey": "key",
                "wskey_secret": "secret",
            },
            "pickup_branches": {"west-main": "262627"},
        }
    )


def lender(request_id: str, state: str, at: datetime) -> PatronRequest:
    return PatronRequest.model_validate(
        {"id": request_id, "hrid": f"W-{request_id}", "isRequester": False, "state": {"code": state}}
        | {"lastUpdated": at.isoformat()}
    )


class Killed(BaseException):
    """The process dies here: nothing after it runs, and no ``except Exception`` sees it."""


@dataclass
class FakeReShare:
    """Lists requests as mod-rs does: ``lastUpdated >= since`` (to the second), oldest change first."""

    requests: dict[str, PatronRequest] = field(default_factory=dict)
    listed: int = 0

    def change(self, request_id: str, state: str, at: datetime) -> None:
        self.requests[request_id] = lender(request_id, state, at)

    def changed_since(
        self, *, is_requester: bool, since: datetime | None, listing: Listing | None = None
    ) -> Iterator[PatronRequest]:
        self.listed += 1
        floor = since.replace(microsecond=0) if since is not None else None
        rows = [
            r
            for r in self.requests.values()
            if r.is_requester == is_requester
            and (floor is None or (r.last_updated is not None and r.last_updated >= floor))
        ]
        yield from sorted(rows, key=lambda r: (r.last_updated, r.id))


@dataclass
class FakeBus:
    """PutEvents as ``EventBus.send`` reports it. ``refuse``: request ids whose entries fail; ``mode``:
    ``"down"`` (the call fails), ``"lost answer"`` (applied, then a read timeout), ``"die after"`` (applied,
    then the process dies)."""

    refuse: set[str] = field(default_factory=set)
    mode: str = "up"
    on_bus: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0

    def send(self, items: list[tuple[Any, str, str]]) -> tuple[list[Any], list[Any], str]:
        put: list[Any] = []
        not_put: list[Any] = []
        for start in range(0, len(items), 10):
            self.calls += 1
            batch = items[start : start + 10]
            if self.mode == "down":
                not_put += [key for key, _, _ in batch]
                continue
            for key, _, detail in batch:
                event = json.loads(detail)
                if event["request_id"] in self.refuse:
                    not_put.append(key)
                else:
                    self.on_bus.append(event)
                    put.append(key)
            if self.mode == "die after":
                raise Killed()
            if self.mode == "lost answer":
                not_put += put
                put = []
        return put, not_put, "injected" if not_put else ""

    def copies(self) -> Counter[tuple[str, str]]:
        return Counter((e["request_id"], e["state"]) for e in self.on_bus)


@dataclass
class Ports:
    store: BridgeStore
    bus: FakeBus
    listing: FakeReShare
    now: datetime = T0 + timedelta(hours=1)

    def reshare(self, config: LibraryConfig) -> FakeReShare:
        return self.listing

    def clock(self) -> datetime:
        return self.now


@pytest.fixture
def ports(store: BridgeStore) -> Ports:
    return Ports(store, FakeBus(), FakeReShare())


def poll(ports: Ports) -> None:
    poll_side(ports, config(), Side.LENDING)  # type: ignore[arg-type]


def shipped(ports: Ports, count: int) -> list[str]:
    """``count`` lender requests ship, one per second from T0; the ids, in that order."""
    ids = [f"req-{n:02d}" for n in range(count)]
    for n, request_id in enumerate(ids):
        ports.listing.change(request_id, "RES_ITEM_SHIPPED", T0 + timedelta(seconds=n))
    return ids


def recorded(ports: Ports, ids: list[str]) -> list[str]:
    return [i for i in ids if ports.store.last_seen(TENANT, i) is not None]


def cursor(ports: Ports) -> datetime | None:
    return ports.store.get_cursor(TENANT, Side.LENDING.value)


def test_transitions_go_on_the_bus_ten_per_call_and_are_recorded_with_one_write_each(
    ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = shipped(ports, 12)
    writes: list[str] = []
    real_update = ports.store._table.update_item

    def update_item(**kw: Any) -> Any:
        writes.append("update")
        return real_update(**kw)

    monkeypatch.setattr(ports.store._table, "update_item", update_item)
    monkeypatch.setattr(ports.store._table, "put_item", lambda **kw: pytest.fail("no outbox entry"))
    monkeypatch.setattr(
        ports.store._client, "transact_write_items", lambda **kw: pytest.fail("no transaction")
    )
    # When the poller runs
    poll(ports)
    # Then every transition is on the bus once (two PutEvents), each recorded by one UpdateItem, the cursor
    # moved to the last one (one more UpdateItem), and the outbox is empty
    assert ports.bus.copies() == Counter({(i, "RES_ITEM_SHIPPED"): 1 for i in ids})
    assert ports.bus.calls == 2
    assert recorded(ports, ids) == ids
    assert writes == ["update"] * 13
    assert cursor(ports) == T0 + timedelta(seconds=11)
    assert ports.store.pending_events(TENANT) == []
    # and a repeat poll puts and writes nothing
    poll(ports)
    assert ports.bus.calls == 2 and len(writes) == 13


def test_the_bus_refusing_everything_records_nothing_holds_the_cursor_and_the_next_poll_puts_it(
    ports: Ports,
) -> None:
    ids = shipped(ports, 3)
    poll(ports)
    ports.listing.change("req-00", "RES_AWAITING_RETURN_SHIPPING", T0 + timedelta(minutes=30))
    # When the poller runs while PutEvents fails
    ports.bus.mode = "down"
    with pytest.raises(EventsNotDelivered):
        poll(ports)
    # Then the transition is not recorded and the cursor did not move past it (it stops at its second, which
    # the next listing, from the cursor less the overlap, reads again)
    assert ports.store.last_seen(TENANT, "req-00") == ("RES_ITEM_SHIPPED", T0)
    assert cursor(ports) == T0 + timedelta(minutes=30)
    # When the bus is back, Then the next poll puts it, once, and records it
    ports.bus.mode = "up"
    poll(ports)
    assert ports.bus.copies() == Counter(
        {(i, "RES_ITEM_SHIPPED"): 1 for i in ids} | {("req-00", "RES_AWAITING_RETURN_SHIPPING"): 1}
    )
    assert ports.store.last_seen(TENANT, "req-00") == (
        "RES_AWAITING_RETURN_SHIPPING",
        T0 + timedelta(minutes=30),
    )
    assert cursor(ports) == T0 + timedelta(minutes=30)


def test_entries_refused_inside_a_batch_of_ten_are_not_recorded_and_the_cursor_stays_at_the_first(
    ports: Ports,
) -> None:
    # Given 15 lender requests that ship, one per second; the bus refuses two entries of the first batch
    ids = shipped(ports, 15)
    ports.bus.refuse = {"req-03", "req-07"}
    # When the poller runs
    with pytest.raises(EventsNotDelivered) as refused:
        poll(ports)
    assert len(refused.value.failed) == 2
    # Then the eight the bus took are recorded, the two it refused are not, and the listing stopped there
    # (the five after the batch were not put: the cursor cannot pass the refused ones anyway)
    assert recorded(ports, ids) == [i for i in ids[:10] if i not in ports.bus.refuse]
    assert ports.bus.copies() == Counter({(i, "RES_ITEM_SHIPPED"): 1 for i in recorded(ports, ids)})
    # and the cursor stays at the earliest refused transition's second
    assert cursor(ports) == T0 + timedelta(seconds=3)
    # When the bus takes everything again, Then the next poll puts exactly the seven missing ones
    ports.bus.refuse = set()
    poll(ports)
    assert ports.bus.copies() == Counter({(i, "RES_ITEM_SHIPPED"): 1 for i in ids})
    assert recorded(ports, ids) == ids
    assert cursor(ports) == T0 + timedelta(seconds=14)


def test_a_put_whose_answer_is_lost_is_put_again_and_recorded_once(ports: Ports) -> None:
    ids = shipped(ports, 4)
    # When PutEvents is applied but its answer is lost (a read timeout)
    ports.bus.mode = "lost answer"
    with pytest.raises(EventsNotDelivered):
        poll(ports)
    # Then nothing is recorded, the cursor stops at the first of them, and the bus has each event once
    assert recorded(ports, ids) == [] and cursor(ports) == T0
    first = list(ports.bus.on_bus)
    # When the next poll runs, Then each goes out a second time, identical, and is recorded
    ports.bus.mode = "up"
    poll(ports)
    assert ports.bus.copies() == Counter({(i, "RES_ITEM_SHIPPED"): 2 for i in ids})
    assert ports.bus.on_bus[len(first) :] == first
    assert recorded(ports, ids) == ids


def test_a_failure_to_record_after_the_put_holds_the_cursor_and_costs_one_copy(
    ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = shipped(ports, 5)
    real = ports.store.record_state_change

    def failing(tenant: str, request_id: str, *args: Any, **kwargs: Any) -> Any:
        if request_id == "req-02":
            raise StoreUnavailable("DynamoDB unreachable (injected)")
        return real(tenant, request_id, *args, **kwargs)

    monkeypatch.setattr(ports.store, "record_state_change", failing)
    # When recording fails after the bus took the batch
    with pytest.raises(StoreUnavailable):
        poll(ports)
    # Then what came before is recorded, the rest is not, and the cursor stays at the first unrecorded
    assert recorded(ports, ids) == ["req-00", "req-01"]
    assert cursor(ports) == T0 + timedelta(seconds=2)
    # When the store is back, Then the next poll puts the unrecorded ones again (a second copy) and records them
    monkeypatch.undo()
    poll(ports)
    assert ports.bus.copies() == Counter(
        {("req-00", "RES_ITEM_SHIPPED"): 1, ("req-01", "RES_ITEM_SHIPPED"): 1}
        | {(i, "RES_ITEM_SHIPPED"): 2 for i in ids[2:]}
    )
    assert recorded(ports, ids) == ids


def test_a_process_that_dies_between_put_and_record_loses_nothing(ports: Ports) -> None:
    ids = shipped(ports, 3)
    # When the process dies right after PutEvents
    ports.bus.mode = "die after"
    with pytest.raises(Killed):
        poll(ports)
    # Then nothing is recorded and the cursor never moved
    assert recorded(ports, ids) == [] and cursor(ports) is None
    # When the next poll runs, Then each event goes out again, and is recorded
    ports.bus.mode = "up"
    poll(ports)
    assert ports.bus.copies() == Counter({(i, "RES_ITEM_SHIPPED"): 2 for i in ids})
    assert recorded(ports, ids) == ids


def test_two_observers_of_one_transition_may_both_put_it_and_exactly_one_records_it(ports: Ports) -> None:
    ports.listing.change("req-00", "RES_ITEM_SHIPPED", T0)
    request = ports.listing.requests["req-00"]
    first, second = Transitions(), Transitions()
    # When two observers (two overlapping polls, or a poll and the webhook) both read it before either records
    assert first.observe(ports, config(), request, source="poller")  # type: ignore[arg-type]
    assert second.observe(ports, config(), request, source="webhook")  # type: ignore[arg-type]
    # Then both put it, and exactly one of them records it (the step's claim drops the second copy)
    assert sorted([first.flush(ports), second.flush(ports)]) == [0, 1]  # type: ignore[arg-type]
    assert ports.bus.copies() == Counter({("req-00", "RES_ITEM_SHIPPED"): 2})
    # and a third observer, after the record, puts nothing
    assert not Transitions().observe(ports, config(), request, source="poller")  # type: ignore[arg-type]


def test_a_request_listed_twice_in_one_run_puts_both_states_in_order(ports: Ports) -> None:
    transitions = Transitions()
    # When one listing yields a request twice (it changed while being listed), before anything is recorded
    for state, at in (("RES_ITEM_SHIPPED", T0), ("RES_AWAITING_RETURN_SHIPPING", T0 + timedelta(seconds=1))):
        assert transitions.observe(ports, config(), lender("req-00", state, at), source="poller")  # type: ignore[arg-type]
    # Then the second names the first as its previous state, and both are recorded
    assert transitions.flush(ports) == 2  # type: ignore[arg-type]
    assert [(e["state"], e["previous_state"]) for e in ports.bus.on_bus] == [
        ("RES_ITEM_SHIPPED", None),
        ("RES_AWAITING_RETURN_SHIPPING", "RES_ITEM_SHIPPED"),
    ]
    # and the same state seen again in the same run is no transition
    again = lender("req-00", "RES_AWAITING_RETURN_SHIPPING", T0 + timedelta(seconds=1))
    assert not transitions.observe(ports, config(), again, source="poller")  # type: ignore[arg-type]


def test_the_held_cursor_still_reads_the_unrecorded_second_again(ports: Ports) -> None:
    # Given a transition refused at 08:00:05.000 and others later in the run
    shipped(ports, 8)
    ports.bus.refuse = {"req-05"}
    with pytest.raises(EventsNotDelivered):
        poll(ports)
    held = cursor(ports)
    assert held == T0 + timedelta(seconds=5)
    # Then the next listing starts before it (the overlap), so it is listed again
    assert held is not None and held - OVERLAP < ports.listing.requests["req-05"].last_updated  # type: ignore[operator]
