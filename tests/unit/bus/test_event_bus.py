"""Putting events on the bus: at most 10 per PutEvents, only the failed entries retried, then a typed error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from illbridge.bus import EventBus, EventsNotDelivered
from illbridge.models import ReShareRequestChanged


def change(n: int) -> ReShareRequestChanged:
    return ReShareRequestChanged(
        library_id="east",
        tenant="east",
        side="borrowing",
        request_id=f"r{n}",
        hrid=f"EAST-{n}",
        state="REQ_CHECKED_IN",
        last_updated=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
    )


class FakeEvents:
    """PutEvents that fails the entries whose request id is in ``failing`` for the first ``times`` calls each."""

    def __init__(self, failing: set[str] | None = None, times: int = 1) -> None:
        self.calls: list[list[str]] = []
        self.failing = failing or set()
        self.left = {request_id: times for request_id in self.failing}

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(Entries) <= 10, "PutEvents takes at most 10 entries"
        ids = [json.loads(e["Detail"])["request_id"] for e in Entries]
        self.calls.append(ids)
        results = []
        for request_id in ids:
            if self.left.get(request_id, 0) > 0:
                self.left[request_id] -= 1
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"})
            else:
                results.append({"EventId": f"id-{request_id}"})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_events_go_out_ten_per_call_with_the_bus_source_and_type() -> None:
    client = FakeEvents()
    bus = EventBus("bridge-bus", client=client, backoff_seconds=0)
    assert bus.put(change(n) for n in range(23)) == 23
    assert [len(call) for call in client.calls] == [10, 10, 3]
    entry = bus.entry(change(1))
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "reshare-wms-bridge",
        "ReShareRequestChanged",
        "bridge-bus",
    )


def test_only_the_failed_entries_are_put_again() -> None:
    client = FakeEvents(failing={"r2", "r5"}, times=2)
    bus = EventBus("bridge-bus", client=client, attempts=4, backoff_seconds=0)
    assert bus.put(change(n) for n in range(7)) == 7
    assert client.calls == [[f"r{n}" for n in range(7)], ["r2", "r5"], ["r2", "r5"]]


def test_entries_that_keep_failing_are_named_in_a_transient_error() -> None:
    client = FakeEvents(failing={"r1"}, times=99)
    bus = EventBus("bridge-bus", client=client, attempts=3, backoff_seconds=0)
    with pytest.raises(EventsNotDelivered) as failure:
        bus.put(change(n) for n in range(3))
    assert [e.request_id for e in failure.value.failed] == ["r1"]  # type: ignore[attr-defined]
    assert failure.value.transient and "ThrottlingException" in str(failure.value)
    assert len(client.calls) == 3
