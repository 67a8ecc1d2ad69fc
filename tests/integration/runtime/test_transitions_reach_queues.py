"""Each ReShare transition reaches the right step queue exactly once (issue: event plumbing, "Done when").

A request pair is driven through its life in the ReShare simulator by staff actions. After each action the
step queues are read (nobody consumes them here: the sandbox runs no queue pollers) and must hold exactly the
events the template's rules route for that transition:

- via the poller, run again and again and by two pollers at once (the poller's reserved concurrency of 1 lets
  only one run at a time, as Lambda does: the second invocation waits, so each transition is put once; a poll
  and a webhook that race may both put it, tests/e2e/test_no_transition_lost.py);
- via signed webhook deliveries from the simulator's Kafka-to-HTTP relay to the local gateway, each delivery
  replayed (same webhook-id: 200, no effect) and sent again under a new webhook-id (no second message), and
  the poller run after them (it finds nothing new).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
import requests

from illbridge.wiring import current_services
from sandbox import events
from sandbox.demo import WEBHOOK_SECRETS
from sandbox.reshare.relay import signed_headers
from sandbox.runtime import HandlerError, Sandbox
from tests.e2e.conftest import Library, create_pair
from tests.integration.runtime.conftest import take_all

STEP_QUEUES = ("BorrowReceived", "BorrowReturned", "LendShipped", "LendReturned", "RequestClosed")
ITEM = "WEST-ITEM-0301"

# (who acts, on which side's request, the action, its parameters) -> what must arrive: (queue, side, state)
LIFE: list[tuple[str, str, dict[str, Any], list[tuple[str, str, str]]]] = [
    ("west", "supplierPrintPullSlip", {}, []),
    (
        "west",
        "supplierCheckInToReshareAndSupplierMarkShipped",
        {"itemBarcodes": [{"itemId": ITEM}]},
        [("LendShipped", "lending", "RES_ITEM_SHIPPED")],
    ),
    (
        "east",
        "requesterReceived",
        {},
        # mod-rs moves the lender on too (responderISO18626Received): lend-shipped hears it, and its step,
        # already done, does nothing again
        [
            ("BorrowReceived", "borrowing", "REQ_CHECKED_IN"),
            ("LendShipped", "lending", "RES_AWAITING_RETURN_SHIPPING"),
        ],
    ),
    ("east", "patronReturnedItem", {}, [("BorrowReturned", "borrowing", "REQ_AWAITING_RETURN_SHIPPING")]),
    ("east", "shippedReturn", {}, [("BorrowReturned", "borrowing", "REQ_SHIPPED_TO_SUPPLIER")]),
    (
        "west",
        "supplierCheckOutOfReshare",
        {},
        [
            ("LendReturned", "lending", "RES_COMPLETE"),
            ("RequestClosed", "borrowing", "REQ_REQUEST_COMPLETE"),
        ],
    ),
]


def arrived(sb: Sandbox) -> Counter[tuple[str, str, str, str]]:
    """(queue, side, state, request id) of every message now in a step queue; the messages are deleted."""
    sqs = sb.boto3_client("sqs")
    seen: Counter[tuple[str, str, str, str]] = Counter()
    for name in STEP_QUEUES:
        for message in take_all(sqs, sb.queue_url(f"{name}Queue")):
            detail = json.loads(message["Body"])["detail"]
            seen[(name, detail["side"], detail["state"], detail["request_id"])] += 1
    return seen


def expected(
    pair: dict[str, Any], arrivals: list[tuple[str, str, str]]
) -> Counter[tuple[str, str, str, str]]:
    ids = {"borrowing": pair["borrower"]["id"], "lending": pair["lender"]["id"]}
    return Counter((queue, side, state, ids[side]) for queue, side, state in arrivals)


def poll(sb: Sandbox) -> None:
    summary = sb.invoke("ReSharePollerFunction", events.load("reshare_poller/scheduled.json"))
    assert summary["failed"] == 0, summary


def two_pollers_at_once(sb: Sandbox) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            poll(sb)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def act(sb: Sandbox, pair: dict[str, Any], who: str, action: str, params: dict[str, Any]) -> None:
    request_id = pair["borrower" if who == "east" else "lender"]["id"]
    Library(sb, who).act(request_id, action, params)


def test_each_transition_reaches_its_queue_once_via_the_poller_even_with_two_pollers(sb: Sandbox) -> None:
    # Given a new pair, seen by the poller (its first states trigger no step)
    pair = create_pair(sb, volumes=[{"item_barcode": ITEM}], lender_state="RES_NEW_AWAIT_PULL_SLIP")
    poll(sb)
    assert arrived(sb) == Counter()
    for who, action, params, arrivals in LIFE:
        # When staff act, and pollers run again and again, two of them at once
        act(sb, pair, who, action, params)
        two_pollers_at_once(sb)
        poll(sb)
        two_pollers_at_once(sb)
        # Then exactly the transition's events are in exactly the right queues, once each
        assert arrived(sb) == expected(pair, arrivals), action


def test_each_transition_reaches_its_queue_once_via_signed_webhooks_and_replays_do_nothing(
    sb: Sandbox,
) -> None:
    # Given the simulator relaying every state change of east and west, signed, to the gateway's webhook
    tenants = sb.connect_relay()
    assert sorted(tenants) == ["east", "west"]
    relay = sb.reshare.relay
    gateway = f"{sb.urls['gateway']}/webhooks/reshare"
    try:
        pair = create_pair(sb, volumes=[{"item_barcode": ITEM}], lender_state="RES_NEW_AWAIT_PULL_SLIP")
        assert relay.wait_idle()
        assert arrived(sb) == Counter()
        done = len(relay.deliveries())
        for who, action, params, arrivals in LIFE:
            # When staff act, and the relay delivers the state changes to the bridge
            act(sb, pair, who, action, params)
            assert relay.wait_idle()
            deliveries = relay.deliveries()[done:]
            done += len(deliveries)
            assert deliveries, action
            assert all(d["delivered"] and d["statuses"][-1] == 202 for d in deliveries), deliveries
            # Then each transition's events are in the right queues, once
            assert arrived(sb) == expected(pair, arrivals), action
            # When every delivery is replayed (same webhook-id), Then 200 and nothing new
            for delivery in deliveries:
                answer = requests.post(
                    gateway, data=delivery["body"], headers=delivery["headers"], timeout=30
                )
                assert (answer.status_code, answer.json()["status"]) == (200, "duplicate")
                # and when the same event comes again under a new webhook-id, it is accepted but not a transition
                tenant = delivery["tenant"]
                library = next(k for k, v in sb.libraries.items() if v.reshare.tenant == tenant)
                again = requests.post(
                    gateway,
                    data=delivery["body"],
                    headers=signed_headers(WEBHOOK_SECRETS[library], delivery["body"]),
                    timeout=30,
                )
                assert again.status_code == 202 and again.json()["transition"] is False, again.text
            # and the poller, which runs too, finds nothing the webhook did not already deliver
            poll(sb)
            assert arrived(sb) == Counter(), action
    finally:
        relay.clear()


def test_a_webhook_with_a_bad_signature_changes_nothing(sb: Sandbox) -> None:
    # Given a delivery about a real request, signed with a secret the bridge does not know
    pair = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0302"}], lender_state="RES_ITEM_SHIPPED")
    poll(sb)
    arrived(sb)
    body = json.dumps(
        {
            "event": "STATUS_REQ_CHECKED_IN_ind",
            "tenant": "east",
            "oid": f"org.olf.rs.PatronRequest:{pair['borrower']['id']}",
            "payload": {"id": pair["borrower"]["id"], "state": "REQ_CHECKED_IN"},
        }
    )
    Library(sb, "east").act(pair["borrower"]["id"], "requesterReceived")
    forged = signed_headers("whsec_" + "A" * 43 + "=", body)
    # When it is posted, Then 401 with a JSON reason, and no event reaches any queue
    answer = requests.post(f"{sb.urls['gateway']}/webhooks/reshare", data=body, headers=forged, timeout=30)
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    assert arrived(sb) == Counter()
    # and the transition is still there for the poller to find, once (with the lender's, which mod-rs moved on
    # to RES_AWAITING_RETURN_SHIPPING when the borrower's Received arrived)
    poll(sb)
    assert arrived(sb) == Counter(
        [
            ("BorrowReceived", "borrowing", "REQ_CHECKED_IN", pair["borrower"]["id"]),
            ("LendShipped", "lending", "RES_AWAITING_RETURN_SHIPPING", pair["lender"]["id"]),
        ]
    )


def test_a_transition_the_bus_refuses_is_not_lost_and_the_next_poll_delivers_it_once(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pair the poller has seen, and then the lender ships
    pair = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0303"}], lender_state="RES_AWAIT_SHIP")
    poll(sb)
    arrived(sb)
    act(sb, pair, "west", "supplierMarkShipped", {})
    # When the poller runs while the bus refuses every entry (after its own retries)
    bus = current_services().bus
    monkeypatch.setattr(bus, "backoff_seconds", 0)
    monkeypatch.setattr(
        bus.client,
        "put_events",
        lambda **kw: {
            "FailedEntryCount": len(kw["Entries"]),
            "Entries": [
                {"ErrorCode": "InternalException", "ErrorMessage": "bus down"} for _ in kw["Entries"]
            ],
        },
    )
    with pytest.raises(HandlerError, match="not put on the bus"):
        poll(sb)
    # Then nothing reached a queue, nothing was recorded as seen, and the lending cursor did not pass it
    assert arrived(sb) == Counter()
    store = current_services().store
    seen = store.last_seen("west", pair["lender"]["id"])
    assert seen is not None and seen[0] == "RES_AWAIT_SHIP", seen
    shipped = Library(sb, "west").reshare.get_request(pair["lender"]["id"]).last_updated
    cursor = store.get_cursor("west", "lending")
    assert shipped is not None and cursor is not None and cursor <= shipped, (cursor, shipped)
    monkeypatch.undo()
    # When the bus is back, Then the next poll delivers the transition, once
    poll(sb)
    poll(sb)
    assert arrived(sb) == Counter([("LendShipped", "lending", "RES_ITEM_SHIPPED", pair["lender"]["id"])])


def test_relayed_events_have_mod_rs_s_shape_and_a_manual_close_is_left_to_the_poller(sb: Sandbox) -> None:
    # Given the relay on, as mod-rs AppListenerService publishes: schema-name tenant, new-request events
    # without a state, nothing for a manually closed request
    sb.connect_relay()
    relay = sb.reshare.relay
    try:
        done = len(relay.deliveries())
        pair = create_pair(
            sb, volumes=[{"item_barcode": "WEST-ITEM-0304"}], lender_state="RES_NEW_AWAIT_PULL_SLIP"
        )
        assert relay.wait_idle()
        deliveries = relay.deliveries()[done:]
        bodies = [json.loads(d["body"]) for d in deliveries]
        new = [b for b in bodies if b["event"].endswith("_New_Patron_Request_ind")]
        assert [(b["event"], b["tenant"]) for b in new] == [
            ("Req_New_Patron_Request_ind", "east_mod_rs"),
            ("Resp_New_Patron_Request_ind", "west_mod_rs"),
        ]
        assert all(set(b["payload"]) == {"id", "title"} for b in new)
        assert {b["tenant"] for b in bodies} == {"east_mod_rs", "west_mod_rs"}
        # Then the bridge takes every one of them (202), new-request events included
        assert all(d["delivered"] and d["statuses"][-1] == 202 for d in deliveries), deliveries
        poll(sb)
        arrived(sb)
        # When staff close the borrower's request by hand
        done = len(relay.deliveries())
        Library(sb, "east").act(pair["borrower"]["id"], "manualClose", {"terminalState": "REQ_CANCELLED"})
        assert relay.wait_idle()
        # Then nothing is relayed for it (manuallyClosed), and the poller still closes the mapping, once
        assert [d for d in relay.deliveries()[done:] if d["request_id"] == pair["borrower"]["id"]] == []
        assert arrived(sb) == Counter()
        poll(sb)
        assert arrived(sb) == Counter(
            [("RequestClosed", "borrowing", "REQ_CANCELLED", pair["borrower"]["id"])]
        )
    finally:
        relay.clear()
