"""Putting events on the bus: at most 10 per PutEvents, only the failed entries retried, then a typed error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from illbridge.bus import EventBus
from illbridge.errors import EventsNotDelivered
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


class FailingCall:
    """PutEvents that raises what botocore raises when the call itself fails."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "InternalException", "Message": "x"}}, "PutEvents"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
    ],
    ids=["ClientError", "EndpointConnectionError", "ReadTimeoutError"],
)
def test_a_failed_call_is_a_typed_transient_error_naming_every_event_of_the_batch(error: Exception) -> None:
    client = FailingCall(error)
    bus = EventBus("bridge-bus", client=client, backoff_seconds=0)
    with pytest.raises(EventsNotDelivered) as failure:
        bus.put(change(n) for n in range(12))
    # botocore already retried the call: the bus does not call again, and nothing is reported as put
    assert client.calls == 2  # one per batch of 10
    assert len(failure.value.failed) == 12 and failure.value.transient
    assert type(error).__name__ in str(failure.value)


def test_send_reports_which_pre_serialised_events_went_out() -> None:
    client = FakeEvents(failing={"r3"}, times=99)
    bus = EventBus("bridge-bus", client=client, attempts=2, backoff_seconds=0)
    items = [(f"key{n}", "ReShareRequestChanged", change(n).model_dump_json()) for n in range(12)]
    put, not_put, reason = bus.send(items)
    assert not_put == ["key3"] and put == [f"key{n}" for n in range(12) if n != 3]
    assert "ThrottlingException" in reason
    assert client.calls[0] == [f"r{n}" for n in range(10)]
