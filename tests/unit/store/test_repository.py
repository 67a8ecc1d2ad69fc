"""The bridge store on moto, with tables built from template.yaml (see conftest.py for the race setup)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from illbridge.errors import StaleMapping, StepAlreadyClaimed, StepAlreadyDone, StoreError
from illbridge.models.events import ReShareRequestChanged
from illbridge.models.mapping import (
    AttentionItem,
    HistoryEntry,
    MappedItem,
    Mapping,
    Outcome,
    Side,
    StepName,
    StepStatus,
)
from illbridge.store import BridgeStore, StateChange, StoreUnavailable

ROOT = Path(__file__).resolve().parents[3]
STORE_PACKAGE = ROOT / "layers" / "domain" / "illbridge" / "store"
TENANT = "diku"
LEASE = 120

pytestmark = pytest.mark.timeout(120)


def a_mapping(request_id: str = "req-1", *, tenant: str = TENANT, **changes: Any) -> Mapping:
    fields: dict[str, Any] = {
        "library_id": "lib-a",
        "tenant": tenant,
        "request_id": request_id,
        "hrid": f"HRID-{request_id}",
        "side": Side.BORROWING,
        "registry_id": "128807",
        "reshare_state": "REQ_CHECKED_IN",
        "items": [MappedItem(barcode=f"ILL-{request_id}", volume_id="v1")],
        "patron_barcode": "P-1",
        "created_at": datetime(2025, 2, 1, 8, 0, 0, 123456, tzinfo=UTC),
        "updated_at": datetime(2025, 2, 1, 8, 0, 0, 123456, tzinfo=UTC),
    }
    fields.update(changes)
    return Mapping(**fields)


def race[T](workers: list[Callable[[], T]]) -> list[T | BaseException]:
    """Run the workers in threads released together by a barrier; each one's result or exception."""
    barrier = threading.Barrier(len(workers))
    results: list[T | BaseException | None] = [None] * len(workers)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = workers[index]()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    return results  # type: ignore[return-value]


def raw(table: Any, pk: str, sk: str) -> dict[str, Any] | None:
    return table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")


# --- mappings --------------------------------------------------------------------------------------------


def test_a_created_mapping_reads_back_equal(store: BridgeStore) -> None:
    # Given a new mapping with items, times with microseconds and a due date
    mapping = a_mapping(lender_due_date=datetime(2025, 4, 1, tzinfo=UTC))
    # When it is created and read back
    created = store.create_mapping(mapping)
    # Then it is stored as given
    assert created == mapping
    assert store.get_mapping(TENANT, "req-1") == mapping
    assert store.get_mapping(TENANT, "other") is None


@pytest.mark.parametrize("items", [[MappedItem(barcode="ILL-1")], []], ids=["with-items", "no-items"])
def test_create_mapping_never_overwrites_and_returns_the_existing_one(
    store: BridgeStore, items: list[MappedItem]
) -> None:
    # Given a created mapping (written in a transaction with its item rows, or alone)
    first = store.create_mapping(a_mapping(hrid="FIRST", items=items))
    # When another worker creates the same request's mapping
    second = store.create_mapping(a_mapping(hrid="SECOND", items=[MappedItem(barcode="OTHER")]))
    # Then it gets the existing one and nothing changed
    assert second == first
    assert store.get_mapping(TENANT, "req-1").hrid == "FIRST"  # type: ignore[union-attr]
    assert store.find_by_item("128807", "OTHER") is None


def test_save_mapping_writes_the_next_version(store: BridgeStore, clock: Any) -> None:
    # Given a created mapping (version 0)
    store.create_mapping(a_mapping())
    mapping = store.get_mapping(TENANT, "req-1")
    assert mapping is not None and mapping.version == 0
    # When it is changed and saved twice
    mapping.reshare_state = "REQ_AWAITING_RETURN"
    clock.advance(minutes=5)
    saved = store.save_mapping(mapping)
    saved.items[0].checked_in = True
    again = store.save_mapping(saved)
    # Then each save returns the new version with updated_at from the clock, as stored
    assert (saved.version, again.version) == (1, 2)
    assert saved.updated_at == clock.now
    assert store.get_mapping(TENANT, "req-1") == again
    assert mapping.version == 0, "the caller's object is not changed"


@pytest.mark.parametrize("saves_before", [0, 2])
def test_a_stale_writer_cannot_overwrite_a_newer_version(store: BridgeStore, saves_before: int) -> None:
    # Given two workers that read the same version (the created one, or a later one)
    store.create_mapping(a_mapping())
    for _ in range(saves_before):
        store.save_mapping(store.get_mapping(TENANT, "req-1"))  # type: ignore[arg-type]
    mine = store.get_mapping(TENANT, "req-1")
    theirs = store.get_mapping(TENANT, "req-1")
    assert mine is not None and theirs is not None
    # When one saves first
    theirs.reshare_state = "THEIRS"
    store.save_mapping(theirs)
    mine.reshare_state = "MINE"
    # Then the other's save is refused, and the newer version stays
    with pytest.raises(StaleMapping, match=f"version {saves_before + 1}"):
        store.save_mapping(mine)
    stored = store.get_mapping(TENANT, "req-1")
    assert stored is not None and (stored.version, stored.reshare_state) == (saves_before + 1, "THEIRS")
    assert StaleMapping.transient


def test_save_mapping_creates_an_unsaved_mapping_but_not_a_vanished_one(store: BridgeStore) -> None:
    # Given nothing stored
    # When a fresh mapping (version 0) is saved
    saved = store.save_mapping(a_mapping())
    # Then it is created as version 1
    assert saved.version == 1 and store.get_mapping(TENANT, "req-1") == saved
    # And a mapping that claims a version nobody stored is refused
    with pytest.raises(StaleMapping, match="absent"):
        store.save_mapping(a_mapping("req-2", version=3))


def test_items_index_follows_the_mapping(store: BridgeStore, table: Any) -> None:
    # Given a mapping with two items
    mapping = store.save_mapping(a_mapping(items=[MappedItem(barcode="A-1"), MappedItem(barcode="A-2")]))
    # Then each item row points back at the request
    row = raw(table, f"REQ#{TENANT}#req-1", "ITEM#A-1")
    assert row is not None
    assert (row["item_key"], row["tenant"], row["request_id"]) == ("ITEM#128807#A-1", TENANT, "req-1")
    assert store.find_by_item("128807", "A-2") == mapping
    # When an item is replaced by another
    mapping.items = [MappedItem(barcode="A-1"), MappedItem(barcode="A-3")]
    mapping = store.save_mapping(mapping)
    # Then the index finds the new one and no longer the old one, whose row is gone
    assert store.find_by_item("128807", "A-3") == mapping
    assert store.find_by_item("128807", "A-2") is None
    assert raw(table, f"REQ#{TENANT}#req-1", "ITEM#A-2") is None
    # And neither another registry's item nor an unknown barcode is found
    assert store.find_by_item("999999", "A-1") is None
    assert store.find_by_item("128807", "nope") is None


def test_find_by_item_prefers_the_open_mapping(store: BridgeStore, clock: Any) -> None:
    # Given a temp barcode reused: an old closed request and a newer open one
    store.save_mapping(a_mapping("old", items=[MappedItem(barcode="T-1")], open=False))
    clock.advance(days=30)
    newer = store.save_mapping(a_mapping("new", items=[MappedItem(barcode="T-1")]))
    clock.advance(days=1)
    # When the item is looked up (even after the closed one was touched more recently)
    old = store.get_mapping(TENANT, "old")
    assert old is not None
    store.save_mapping(old)
    found = store.find_by_item("128807", "T-1")
    # Then the open mapping is returned
    assert found == newer


def test_reconciliation_returns_open_due_mappings_of_the_tenant_in_order(
    store: BridgeStore, table: Any, clock: Any
) -> None:
    now = clock.now
    # Given open mappings due at different times, plus ones that must not be returned
    for request_id, hours in [("due-2h", -2), ("due-now", 0), ("due-1h", -1), ("future", 1)]:
        store.save_mapping(a_mapping(request_id, next_check_at=now + timedelta(hours=hours)))
    store.save_mapping(a_mapping("closed", open=False, next_check_at=now - timedelta(hours=3)))
    store.save_mapping(a_mapping("unscheduled", next_check_at=None))
    store.save_mapping(a_mapping("other-tenant", tenant="other", next_check_at=now - timedelta(hours=3)))
    # When the reconciler asks what is due
    due = store.due_for_reconciliation(TENANT, now)
    # Then only this tenant's open mappings due by now come back, the longest-waiting first
    assert [m.request_id for m in due] == ["due-2h", "due-1h", "due-now"]
    assert [m.request_id for m in store.due_for_reconciliation(TENANT, now, limit=2)] == ["due-2h", "due-1h"]
    # And a closed mapping carries no reconciliation attributes at all (sparse index)
    closed = raw(table, f"REQ#{TENANT}#closed", "MAPPING")
    assert closed is not None and "open_key" not in closed and "next_check_at" not in closed
    assert closed["data"]["next_check_at"] == "2025-03-01T06:00:00.000000Z"


def test_closing_a_mapping_takes_it_off_the_reconciliation_index(store: BridgeStore, clock: Any) -> None:
    # Given an open mapping that is due
    mapping = store.save_mapping(a_mapping(next_check_at=clock.now - timedelta(minutes=1)))
    assert store.due_for_reconciliation(TENANT, clock.now) == [mapping]
    # When it is closed
    mapping.open = False
    store.save_mapping(mapping)
    # Then it is no longer due
    assert store.due_for_reconciliation(TENANT, clock.now) == []


def test_queries_follow_pages(store: BridgeStore, clock: Any) -> None:
    # Given a tiny page size and more matches than one page
    store.page_size = 2
    for n in range(5):
        store.save_mapping(a_mapping(f"r{n}", next_check_at=clock.now - timedelta(minutes=10 - n)))
        store.add_history(TENANT, "r0", an_entry(f"op{n}", clock.now + timedelta(seconds=n)))
    # When the indexes and a partition are read
    # Then every page is read, and a limit cuts across pages
    assert [m.request_id for m in store.due_for_reconciliation(TENANT, clock.now)] == [
        f"r{n}" for n in range(5)
    ]
    assert len(store.due_for_reconciliation(TENANT, clock.now, limit=3)) == 3
    assert [e.operation for e in store.history(TENANT, "r0")] == [f"op{n}" for n in range(5)]


# --- steps -----------------------------------------------------------------------------------------------


def claim(store: BridgeStore, request_id: str = "req-1", *, force: bool = False) -> Any:
    return store.claim_step(
        TENANT,
        request_id,
        StepName.BORROW_RECEIVED,
        trigger="REQ_CHECKED_IN",
        lease_seconds=LEASE,
        force=force,
    )


def complete(store: BridgeStore, attempt: int, status: StepStatus, **kw: Any) -> Any:
    return store.complete_step(
        TENANT, "req-1", StepName.BORROW_RECEIVED, attempt=attempt, status=status, **kw
    )


def test_a_first_claim_takes_attempt_one_with_a_lease(store: BridgeStore, clock: Any) -> None:
    # Given no step record
    # When the step is claimed
    record = claim(store)
    # Then it is in progress, attempt 1, leased from the clock
    assert (record.status, record.attempt, record.trigger) == (StepStatus.IN_PROGRESS, 1, "REQ_CHECKED_IN")
    assert record.lease_until == clock.now + timedelta(seconds=LEASE)
    assert record.result == {}
    assert store.get_step(TENANT, "req-1", StepName.BORROW_RECEIVED) == record


def test_of_two_claims_of_the_same_step_only_the_first_wins(store: BridgeStore) -> None:
    # Given a claimed step
    claim(store)
    # When a second worker claims it
    # Then it is refused as claimed (transient: the message comes back later)
    with pytest.raises(StepAlreadyClaimed, match="attempt 1"):
        claim(store)
    assert StepAlreadyClaimed.transient


def test_a_live_lease_is_not_reclaimed_even_at_its_last_instant(store: BridgeStore, clock: Any) -> None:
    # Given a claimed step
    claim(store)
    # When another worker comes at the very end of the lease
    clock.advance(seconds=LEASE)
    # Then the lease still holds
    with pytest.raises(StepAlreadyClaimed):
        claim(store)


def test_an_expired_lease_is_reclaimed_with_the_next_attempt(store: BridgeStore, clock: Any) -> None:
    # Given a claimed step whose worker died
    claim(store)
    # When another worker comes after the lease ran out
    clock.advance(seconds=LEASE, microseconds=1)
    record = claim(store)
    # Then it takes attempt 2, marked as reclaimed so it verifies before re-sending
    assert (record.status, record.attempt) == (StepStatus.IN_PROGRESS, 2)
    assert record.result == {"reclaimed_after_lease": True}
    assert record.lease_until == clock.now + timedelta(seconds=LEASE)


def test_a_stale_attempt_cannot_complete_after_its_lease_was_taken_over(
    store: BridgeStore, clock: Any
) -> None:
    # Given attempt 1 whose lease ran out and was reclaimed by attempt 2
    claim(store)
    clock.advance(seconds=LEASE + 1)
    claim(store)
    # When attempt 1 finally reports
    # Then it is refused, and attempt 2 keeps the step
    with pytest.raises(StepAlreadyClaimed, match=r"attempt 1 .* no longer holds"):
        complete(store, 1, StepStatus.SUCCEEDED)
    current = store.get_step(TENANT, "req-1", StepName.BORROW_RECEIVED)
    assert current is not None and (current.status, current.attempt) == (StepStatus.IN_PROGRESS, 2)
    # And attempt 2 completes normally, once
    done = complete(store, 2, StepStatus.SUCCEEDED, result={"temp_item": "ILL-1"})
    assert (done.status, done.result, done.lease_until) == (
        StepStatus.SUCCEEDED,
        {"temp_item": "ILL-1"},
        None,
    )
    with pytest.raises(StepAlreadyClaimed):
        complete(store, 2, StepStatus.SUCCEEDED)


@pytest.mark.parametrize("status", [StepStatus.SUCCEEDED, StepStatus.SKIPPED])
@pytest.mark.parametrize("force", [False, True])
def test_a_finished_step_is_already_done(store: BridgeStore, status: StepStatus, force: bool) -> None:
    # Given a step that succeeded or was skipped
    complete(store, claim(store).attempt, status)
    # When it is claimed again, even by a staff retry
    # Then it is already done
    with pytest.raises(StepAlreadyDone, match=status.value):
        claim(store, force=force)


def test_a_retryable_step_is_claimed_again_keeping_its_last_error(store: BridgeStore) -> None:
    # Given a step that failed transiently
    complete(store, claim(store).attempt, StepStatus.RETRYABLE, error="WMS 503")
    # When it is claimed again
    record = claim(store)
    # Then it is the next attempt and the last error stays visible
    assert (record.status, record.attempt, record.last_error) == (StepStatus.IN_PROGRESS, 2, "WMS 503")


def test_a_failed_step_needs_a_forced_retry(store: BridgeStore) -> None:
    # Given a step that failed for good
    complete(store, claim(store).attempt, StepStatus.FAILED, error="Unknown Patron")
    # When a worker claims it, it is done; when staff force a retry, it is claimed again
    with pytest.raises(StepAlreadyDone, match="FAILED"):
        claim(store)
    record = claim(store, force=True)
    # Then the forced retry is the next attempt
    assert (record.status, record.attempt) == (StepStatus.IN_PROGRESS, 2)
    # And success clears the error
    assert complete(store, 2, StepStatus.SUCCEEDED).last_error is None


def test_release_step_lets_a_failed_step_be_claimed_again(store: BridgeStore) -> None:
    # Given a step that failed for good
    complete(store, claim(store).attempt, StepStatus.FAILED, error="Unknown Patron")
    # When staff release it
    assert store.release_step(TENANT, "req-1", StepName.BORROW_RECEIVED) is True
    # Then the next delivery claims it as the next attempt, without force
    assert claim(store).attempt == 2
    # And only a FAILED step is released: not one in progress, succeeded, or never run
    assert store.release_step(TENANT, "req-1", StepName.BORROW_RECEIVED) is False
    complete(store, 2, StepStatus.SUCCEEDED)
    assert store.release_step(TENANT, "req-1", StepName.BORROW_RECEIVED) is False
    assert store.release_step(TENANT, "req-1", StepName.LEND_SHIPPED) is False
    done = store.get_step(TENANT, "req-1", StepName.BORROW_RECEIVED)
    assert done is not None and done.status == StepStatus.SUCCEEDED


def test_complete_step_needs_an_outcome(store: BridgeStore) -> None:
    # Given a claimed step; When it is "completed" as in progress; Then that is refused
    claim(store)
    with pytest.raises(StoreError):
        complete(store, 1, StepStatus.IN_PROGRESS)


def test_steps_lists_every_step_of_the_request(store: BridgeStore) -> None:
    # Given two claimed steps of one request and one of another
    claim(store)
    store.claim_step(TENANT, "req-1", StepName.REQUEST_CLOSED, trigger="t", lease_seconds=LEASE)
    claim(store, "req-2")
    # When the steps of the first request are listed
    steps = store.steps(TENANT, "req-1")
    # Then both of its steps, and only those, are there
    assert sorted(s.step for s in steps) == [StepName.BORROW_RECEIVED, StepName.REQUEST_CLOSED]


# --- history ---------------------------------------------------------------------------------------------


def an_entry(operation: str, at: datetime, **kw: Any) -> HistoryEntry:
    return HistoryEntry(
        at=at, step="borrow_received", system="wms", operation=operation, outcome=Outcome.SUCCESS, **kw
    )


def test_history_is_in_time_order_and_expires(store: BridgeStore, table: Any, clock: Any) -> None:
    t0 = clock.now
    # Given lines written out of order, two at the very same instant, one with a float
    store.add_history(TENANT, "req-1", an_entry("second", t0 + timedelta(seconds=1)))
    store.add_history(TENANT, "req-1", an_entry("first", t0, response={"took": 0.25, "n": 3}))
    store.add_history(TENANT, "req-1", an_entry("third-a", t0 + timedelta(seconds=2)))
    store.add_history(TENANT, "req-1", an_entry("third-b", t0 + timedelta(seconds=2)))
    # When the history is read
    history = store.history(TENANT, "req-1")
    # Then it is in time order (same instant: order of writing), values intact
    assert [e.operation for e in history] == ["first", "second", "third-a", "third-b"]
    assert history[0].response == {"took": 0.25, "n": 3}
    assert history[0].at == t0
    # And each raw line carries its TTL, in epoch seconds, history_ttl_days after now
    rows = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :log)",
        ExpressionAttributeValues={":pk": f"REQ#{TENANT}#req-1", ":log": "LOG#"},
    )["Items"]
    assert len(rows) == 4
    assert rows[0]["sk"].startswith("LOG#2025-03-01T09:00:00.000000Z#")
    assert {row["expires_at"] for row in rows} == {Decimal(int((t0 + timedelta(days=400)).timestamp()))}


# --- last seen ReShare state -----------------------------------------------------------------------------


def test_record_state_change_reports_only_real_newer_transitions(store: BridgeStore) -> None:
    t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    # Given a first observation
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", t0) == StateChange(True, None)
    # When the same state is seen again, at the same time or later
    # Then nothing changed, but the later time is remembered
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", t0) == StateChange(False, "REQ_SHIPPED")
    later = t0 + timedelta(minutes=1)
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", later).changed is False
    assert store.last_seen(TENANT, "req-1") == ("REQ_SHIPPED", later)
    # When an older observation of another state arrives (a slow poller)
    stale = store.record_state_change(TENANT, "req-1", "REQ_VALIDATED", t0 - timedelta(minutes=5))
    # Then it is ignored
    assert stale == StateChange(False, "REQ_SHIPPED")
    assert store.last_seen(TENANT, "req-1") == ("REQ_SHIPPED", later)
    # When a newer observation of another state arrives
    newer = later + timedelta(seconds=1)
    # Then it is a transition from the stored state
    assert store.record_state_change(TENANT, "req-1", "REQ_CHECKED_IN", newer) == StateChange(
        True, "REQ_SHIPPED"
    )
    assert store.last_seen(TENANT, "req-1") == ("REQ_CHECKED_IN", newer)


def refusals(store: BridgeStore) -> list[str]:
    """The conditional writes DynamoDB refuses from now on (filled in as they happen)."""
    refused: list[str] = []

    def after_call(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code", "")
        if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            refused.append(model.name)

    for client in {store._client, store._table.meta.client}:
        client.meta.events.register("after-call.dynamodb", after_call)
    return refused


def test_a_transition_written_with_the_stored_state_read_before_is_not_refused_and_a_wrong_hint_is_harmless(
    store: BridgeStore,
) -> None:
    t0 = datetime(2025, 3, 1, 8, 0, 7, tzinfo=UTC)
    refused = refusals(store)
    # Given REQ_SHIPPED seen, and then each kind of observation written with the state read just before
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", t0, stored=None).changed is True
    # the same state seen later (a note moved lastUpdated): the watermark moves, no transition
    later = t0 + timedelta(seconds=3)
    change = store.record_state_change(
        TENANT, "req-1", "REQ_SHIPPED", later, stored=store.seen_state(TENANT, "req-1")
    )
    assert change == StateChange(False, "REQ_SHIPPED")
    # another state in the very same second: a transition
    change = store.record_state_change(
        TENANT, "req-1", "REQ_CHECKED_IN", later, stored=store.seen_state(TENANT, "req-1")
    )
    assert change == StateChange(True, "REQ_SHIPPED")
    # a later state: a transition
    latest = later + timedelta(seconds=1)
    change = store.record_state_change(
        TENANT, "req-1", "REQ_AWAITING_RETURN_SHIPPING", latest, stored=store.seen_state(TENANT, "req-1")
    )
    assert change.changed is True
    # Then DynamoDB refused none of those writes
    assert refused == []
    # When a hint is stale (another poller moved the state since it was read)
    stale = store.seen_state(TENANT, "req-1")
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED_RETURN", latest + timedelta(seconds=1))
    # Then the same observation written with it decides as without any hint: no transition twice
    again = store.record_state_change(
        TENANT, "req-1", "REQ_SHIPPED_RETURN", latest + timedelta(seconds=1), stored=stale
    )
    assert again == StateChange(False, "REQ_SHIPPED_RETURN")
    assert store.last_seen(TENANT, "req-1") == ("REQ_SHIPPED_RETURN", latest + timedelta(seconds=1))


def test_resolving_attention_where_there_is_none_writes_nothing(store: BridgeStore, clock: Any) -> None:
    # Given a request with no attention item, and one with an item already resolved
    store.raise_attention(attention("r2", "borrow_received", clock.now - timedelta(minutes=5)))
    assert store.resolve_attention(TENANT, "r2", "borrow_received") is True
    refused = refusals(store)
    # When a step that succeeds resolves its step's attention
    # Then there is nothing to resolve, and no conditional write was refused on the way
    assert store.resolve_attention(TENANT, "r1", "borrow_received", raised_before=clock.now) is False
    assert store.resolve_attention(TENANT, "r2", "borrow_received", raised_before=clock.now) is False
    assert refused == []


def test_two_changes_inside_one_second_are_two_transitions_and_stale_reads_are_not(
    store: BridgeStore,
) -> None:
    # mod-rs renders lastUpdated to the second: two changes inside one second share it
    second = datetime(2025, 3, 1, 8, 0, 7, tzinfo=UTC)
    # Given REQ_SHIPPED seen in a second
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", second).changed is True
    # When REQ_CHECKED_IN is seen with the very same lastUpdated
    # Then it is a transition from REQ_SHIPPED (not taken for a stale read)
    assert store.record_state_change(TENANT, "req-1", "REQ_CHECKED_IN", second) == StateChange(
        True, "REQ_SHIPPED"
    )
    # And a late reader's REQ_SHIPPED of that second, or REQ_CHECKED_IN again, is nothing new
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", second).changed is False
    assert store.record_state_change(TENANT, "req-1", "REQ_CHECKED_IN", second).changed is False
    seen = store.seen_state(TENANT, "req-1")
    assert seen is not None and seen.state == "REQ_CHECKED_IN"
    assert seen.states_at == {"REQ_SHIPPED", "REQ_CHECKED_IN"}
    assert seen.covers("REQ_SHIPPED", second) and not seen.covers("REQ_AWAITING_RETURN_SHIPPING", second)
    # And a later second starts afresh
    later = second + timedelta(seconds=1)
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", later) == StateChange(
        True, "REQ_CHECKED_IN"
    )
    later_seen = store.seen_state(TENANT, "req-1")
    assert later_seen is not None and later_seen.states_at == {"REQ_SHIPPED"}


def change_event(
    request_id: str, state: str, at: datetime, previous: str | None = None
) -> ReShareRequestChanged:
    return ReShareRequestChanged(
        library_id="lib-a",
        tenant=TENANT,
        side="borrowing",
        request_id=request_id,
        hrid=f"H-{request_id}",
        state=state,
        previous_state=previous,
        last_updated=at,
    )


def test_recording_a_transition_is_one_update_and_writes_no_outbox_entry(store: BridgeStore) -> None:
    t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    client = store._client
    # When a transition is recorded (its event is already on the bus: ReShare is the durable record)
    with (
        mock.patch.object(client, "transact_write_items", side_effect=AssertionError("no transaction")),
        mock.patch.object(store._table, "put_item", side_effect=AssertionError("no outbox entry")),
    ):
        first = store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", t0)
    # Then it is the transition, and nothing waits in the outbox
    assert first == StateChange(True, None)
    assert store.pending_events(TENANT) == []
    assert store.last_seen(TENANT, "req-1") == ("REQ_SHIPPED", t0)


def test_the_outbox_keeps_entries_oldest_first_per_tenant_until_forgotten(
    store: BridgeStore, clock: Any
) -> None:
    t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    # Given two deliveries taken with their events (the outbox's users: WMS check-in notices)
    first = store.claim_webhook("wms", "lib-a", "msg_1", event=change_event("req-1", "A", t0), tenant=TENANT)
    clock.advance(seconds=1)
    second = store.claim_webhook("wms", "lib-a", "msg_2", event=change_event("req-1", "B", t0), tenant=TENANT)
    assert first.pending is not None and second.pending is not None
    # Then both wait, oldest first, exactly as they will be put on the bus, each in its own tenant's outbox
    assert store.pending_events(TENANT) == [first.pending, second.pending]
    assert json.loads(first.pending.detail)["state"] == "A"
    assert first.pending.detail_type == "ReShareRequestChanged"
    assert store.pending_events("other") == []
    # When the bus has the first, Then forgetting it leaves the second (and forgetting twice is harmless)
    store.forget_event(TENANT, first.pending.sk)
    store.forget_event(TENANT, first.pending.sk)
    assert store.pending_events(TENANT) == [second.pending]


def test_a_failed_write_records_no_state(store: BridgeStore) -> None:
    t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    refused = ClientError(
        {
            "Error": {"Code": "InternalServerError", "Message": "boom"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        },
        "UpdateItem",
    )
    # When DynamoDB fails the write, Then a transient typed error, and nothing is recorded
    with (
        mock.patch.object(store._table, "update_item", side_effect=refused),
        pytest.raises(StoreUnavailable),
    ):
        store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", t0)
    assert store.last_seen(TENANT, "req-1") is None
    # and the next observation is the transition
    assert store.record_state_change(TENANT, "req-1", "REQ_SHIPPED", t0).changed


# --- cursors ---------------------------------------------------------------------------------------------


def test_the_cursor_only_moves_forward(store: BridgeStore) -> None:
    t0 = datetime(2025, 3, 1, 8, 0, 0, 500000, tzinfo=UTC)
    # Given no cursor
    assert store.get_cursor(TENANT, "borrowing") is None
    # When it is advanced, then offered an older, an equal and a newer value
    moves = [
        store.advance_cursor(TENANT, "borrowing", t0),
        store.advance_cursor(TENANT, "borrowing", t0 - timedelta(microseconds=1)),
        store.advance_cursor(TENANT, "borrowing", t0),
        store.advance_cursor(TENANT, "borrowing", t0 + timedelta(seconds=1)),
    ]
    # Then only the first and the newer move it, and sides are separate
    assert moves == [True, False, False, True]
    assert store.get_cursor(TENANT, "borrowing") == t0 + timedelta(seconds=1)
    assert store.get_cursor(TENANT, Side.LENDING) is None


# --- attention list --------------------------------------------------------------------------------------


def attention(
    request_id: str, step: str, at: datetime, *, tenant: str = TENANT, reason: str = "r"
) -> AttentionItem:
    return AttentionItem(
        library_id="lib-a",
        tenant=tenant,
        request_id=request_id,
        hrid=f"H-{request_id}",
        step=step,
        reason=reason,
        fix="fix it",
        retry=f"retry {request_id} {step}",
        raised_at=at,
    )


def test_attention_lists_only_unresolved_items_of_the_tenant_newest_first(
    store: BridgeStore, table: Any, clock: Any
) -> None:
    t0 = clock.now
    # Given attention items of two tenants, one raised twice for the same step, one resolved
    store.raise_attention(attention("r1", "borrow_received", t0, reason="first"))
    store.raise_attention(attention("r2", "borrow_received", t0 + timedelta(minutes=1)))
    store.raise_attention(attention("r3", "lend_shipped", t0 + timedelta(minutes=2)))
    store.raise_attention(attention("r1", "borrow_received", t0 + timedelta(minutes=3), reason="again"))
    store.raise_attention(attention("r9", "borrow_received", t0 + timedelta(minutes=4), tenant="other"))
    # When one is resolved
    assert store.resolve_attention(TENANT, "r2", "borrow_received") is True
    # Then the tenant's list has the unresolved ones, newest first, the re-raised one once
    listed = store.list_attention(TENANT)
    assert [(a.request_id, a.reason) for a in listed] == [("r1", "again"), ("r3", "r")]
    assert [a.request_id for a in store.list_attention(TENANT, limit=1)] == ["r1"]
    # And the resolved item stays on its request, marked resolved, off the index
    row = raw(table, f"REQ#{TENANT}#r2", "ATTN#borrow_received")
    assert row is not None and row["resolved"] is True and "attention_key" not in row
    # And resolving again, or something never raised, changes nothing
    assert store.resolve_attention(TENANT, "r2", "borrow_received") is False
    assert store.resolve_attention(TENANT, "nope", StepName.LEND_SHIPPED) is False


def test_a_step_that_succeeds_resolves_only_attention_raised_before_it_started(
    store: BridgeStore, clock: Any
) -> None:
    # Given an item raised by an earlier attempt, and a warning the succeeding run raised itself
    t0 = clock.now
    store.raise_attention(attention("r1", "borrow_received", t0 - timedelta(minutes=5)))
    store.raise_attention(
        attention("r2", "lend_shipped", t0 + timedelta(seconds=1), reason="due dates differ")
    )
    # When each step's success resolves what was raised before the run started (at t0)
    assert store.resolve_attention(TENANT, "r1", "borrow_received", raised_before=t0) is True
    assert store.resolve_attention(TENANT, "r2", "lend_shipped", raised_before=t0) is False
    # Then the earlier failure is off the list and the run's own warning stays on it
    assert [(a.request_id, a.reason) for a in store.list_attention(TENANT)] == [("r2", "due dates differ")]


# --- webhook ids, the ops view ---------------------------------------------------------------------------


def test_webhook_ids_are_taken_once_per_endpoint_and_library_for_a_while(
    store: BridgeStore, clock: Any
) -> None:
    # Given a delivery taken by the ReShare endpoint for lib-a
    assert store.webhook_seen("reshare", "lib-a", "msg_1") is False
    assert store.claim_webhook("reshare", "lib-a", "msg_1").taken is True
    # Then it is a replay there, for a week; the same id is new for another library or the other endpoint
    assert store.webhook_seen("reshare", "lib-a", "msg_1") is True
    assert store.claim_webhook("reshare", "lib-a", "msg_1").taken is False
    assert store.claim_webhook("reshare", "lib-b", "msg_1").taken is True
    assert store.claim_webhook("wms", "lib-a", "msg_1").taken is True
    clock.advance(days=8)
    # and once forgotten (even before TTL removes the row) it can be taken again, once
    assert store.webhook_seen("reshare", "lib-a", "msg_1") is False
    assert store.claim_webhook("reshare", "lib-a", "msg_1").taken is True
    assert store.claim_webhook("reshare", "lib-a", "msg_1").taken is False


def test_a_webhook_id_and_its_event_are_taken_together(store: BridgeStore, clock: Any) -> None:
    event = change_event("req-9", "REQ_CHECKED_IN", clock.now)
    # When a delivery is taken with its event, Then the event is in the outbox
    claim = store.claim_webhook("wms", "lib-a", "msg_7", event=event, tenant=TENANT)
    assert claim.taken and claim.pending is not None
    assert store.pending_events(TENANT) == [claim.pending]
    # When a copy comes, Then it takes nothing and adds nothing
    assert store.claim_webhook("wms", "lib-a", "msg_7", event=event, tenant=TENANT).taken is False
    assert len(store.pending_events(TENANT)) == 1


# --- errors and construction -----------------------------------------------------------------------------


def test_dynamodb_faults_become_typed_errors(store: BridgeStore, dynamodb: Any) -> None:
    # Given DynamoDB throttling, failing on input, or unreachable
    throttled = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "GetItem"
    )
    invalid = ClientError({"Error": {"Code": "ValidationException", "Message": "bad"}}, "GetItem")
    unreachable = EndpointConnectionError(endpoint_url="http://nowhere")
    table = store._table
    for fault, expected, transient in [
        (throttled, StoreUnavailable, True),
        (invalid, StoreError, False),
        (unreachable, StoreUnavailable, True),
    ]:
        # When the store reads
        with mock.patch.object(table, "get_item", side_effect=fault), pytest.raises(expected) as caught:
            store.get_mapping(TENANT, "req-1")
        # Then it raises the bridge's typed error, telling whether a retry can help
        assert caught.value.transient is transient
    # And a missing table is a (permanent) store error too
    missing = BridgeStore("no-such-table", dynamodb_resource=dynamodb)
    with pytest.raises(StoreError, match="ResourceNotFound"):
        missing.get_mapping(TENANT, "req-1")


def test_keys_refuse_ambiguous_components(store: BridgeStore) -> None:
    # Given a tenant with the key separator or an empty id; Then the store refuses it before writing
    with pytest.raises(StoreError, match="tenant"):
        store.get_mapping("a#b", "req-1")
    with pytest.raises(StoreError, match="request_id"):
        store.get_step(TENANT, "", StepName.BORROW_RECEIVED)


def test_boto3_is_created_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given boto3 that would fail if asked for a resource or client
    import boto3

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("boto3 used too early")

    monkeypatch.setattr(boto3, "resource", refuse)
    monkeypatch.setattr(boto3, "client", refuse)
    # When a store is constructed; Then nothing is created
    BridgeStore("bridge")
    # And importing the package afresh creates nothing either
    code = (
        "import boto3\n"
        "def refuse(*a, **k): raise SystemExit('boto3 used at import')\n"
        "boto3.resource = boto3.client = refuse\n"
        "import illbridge.store, illbridge.store.repository\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "layers" / "domain"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_store_never_scans() -> None:
    # Given the store's source; Then no Scan call appears anywhere in it
    sources = sorted(STORE_PACKAGE.rglob("*.py"))
    assert sources
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert ".scan(" not in text, source
        assert not re.search(r"\bScan\b\s*\(", text), source


# --- races, on a linearizable moto (conftest.serial_moto_endpoint) ---------------------------------------


def test_of_eight_racing_claims_exactly_one_wins(
    concurrent_stores: Callable[[int], list[BridgeStore]],
) -> None:
    # Given eight workers, each with its own boto3 resource
    stores = concurrent_stores(8)
    for round_ in range(5):
        # When they all claim the same step at once
        results = race([partial(claim, s, f"req-{round_}") for s in stores])
        # Then exactly one holds attempt 1 and the seven others were told it is claimed
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1, results
        assert winners[0].attempt == 1
        assert all(isinstance(r, StepAlreadyClaimed) for r in losers), losers


def test_of_eight_racing_reclaims_of_an_expired_lease_exactly_one_wins(
    concurrent_stores: Callable[[int], list[BridgeStore]], clock: Any
) -> None:
    # Given a step whose lease ran out, and eight workers
    stores = concurrent_stores(8)
    claim(stores[0])
    clock.advance(seconds=LEASE + 1)
    # When they all reclaim it at once
    results = race([partial(claim, s) for s in stores])
    # Then exactly one gets attempt 2; the others see the new live lease
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert (winners[0].attempt, winners[0].result) == (2, {"reclaimed_after_lease": True})
    assert all(isinstance(r, StepAlreadyClaimed) for r in results if isinstance(r, BaseException))


def test_of_eight_racing_saves_of_one_version_exactly_one_wins(
    concurrent_stores: Callable[[int], list[BridgeStore]],
) -> None:
    # Given a mapping at version 1 read by eight workers
    stores = concurrent_stores(8)
    base = stores[0].save_mapping(a_mapping())
    # When each saves its own change at once
    results = race(
        [partial(s.save_mapping, base.model_copy(update={"hrid": f"W{i}"})) for i, s in enumerate(stores)]
    )
    # Then one write lands as version 2 and seven are stale
    winners = [r for r in results if isinstance(r, Mapping)]
    assert len(winners) == 1, results
    assert all(isinstance(r, StaleMapping) for r in results if not isinstance(r, Mapping))
    stored = stores[0].get_mapping(TENANT, "req-1")
    assert stored is not None and (stored.version, stored.hrid) == (2, winners[0].hrid)


@pytest.mark.parametrize("pollers", [2, 8])
def test_of_concurrent_pollers_seeing_one_transition_exactly_one_reports_it(
    concurrent_stores: Callable[[int], list[BridgeStore]], pollers: int
) -> None:
    stores = concurrent_stores(pollers)
    t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    for round_ in range(5):
        request_id = f"req-{round_}"
        stores[0].record_state_change(TENANT, request_id, "REQ_SHIPPED", t0)
        # When the pollers all see the same transition at once
        results = race(
            [
                partial(
                    s.record_state_change, TENANT, request_id, "REQ_CHECKED_IN", t0 + timedelta(seconds=1)
                )
                for s in stores
            ]
        )
        # Then exactly one reports it, from the previous state
        assert all(isinstance(r, StateChange) for r in results), results
        changed = [r for r in results if isinstance(r, StateChange) and r.changed]
        assert changed == [StateChange(True, "REQ_SHIPPED")], results


def test_racing_cursor_advances_end_at_the_latest(
    concurrent_stores: Callable[[int], list[BridgeStore]],
) -> None:
    # Given eight pollers with different high-water marks
    stores = concurrent_stores(8)
    t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    # When they all advance the cursor at once
    race(
        [
            partial(s.advance_cursor, TENANT, "lending", t0 + timedelta(seconds=i))
            for i, s in enumerate(stores)
        ]
    )
    # Then the cursor holds the latest, never an earlier one written after it
    assert stores[0].get_cursor(TENANT, "lending") == t0 + timedelta(seconds=7)


def test_of_ten_parallel_copies_of_a_delivery_exactly_one_takes_its_webhook_id(
    concurrent_stores: Callable[[int], list[BridgeStore]],
) -> None:
    stores = concurrent_stores(10)
    results = race([partial(s.claim_webhook, "reshare", "lib-a", "msg_parallel") for s in stores])
    assert sorted(getattr(r, "taken", r) for r in results) == [False] * 9 + [True], results


def test_of_concurrent_observers_of_one_transition_exactly_one_records_it(
    concurrent_stores: Callable[[int], list[BridgeStore]],
) -> None:
    stores = concurrent_stores(6)
    t0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    results = race([partial(s.record_state_change, TENANT, "req-x", "REQ_CHECKED_IN", t0) for s in stores])
    assert [getattr(r, "changed", r) for r in results].count(True) == 1, results
    assert stores[0].pending_events(TENANT) == []
