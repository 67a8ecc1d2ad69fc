"""ReShareClient against the ReShare simulator, used as a new user would: log in, follow a loan through its
whole life with staff actions, list changes, and live through ReShare's failures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from illbridge.config.library import ReShareSettings
from illbridge.errors import (
    ReShareActionRejected,
    ReShareAuthError,
    ReShareNotFound,
    ReShareOutcomeUnknown,
    ReShareUnavailable,
)
from illbridge.models.patron_request import PatronRequest
from illbridge.reshare import ReShareClient
from sandbox.reshare import ReShareSimulator
from tests.reference import RESHARE_ACTIONS

SAMPLES = RESHARE_ACTIONS
BORROWER_HAPPY_PATH = [
    "REQ_IDLE",
    "REQ_VALIDATED",
    "REQ_SOURCING_ITEM",
    "REQ_SUPPLIER_IDENTIFIED",
    "REQ_REQUEST_SENT_TO_SUPPLIER",
    "REQ_EXPECTS_TO_SUPPLY",
    "REQ_SHIPPED",
    "REQ_CHECKED_IN",
    "REQ_AWAITING_RETURN_SHIPPING",
    "REQ_SHIPPED_TO_SUPPLIER",
    "REQ_REQUEST_COMPLETE",
]
LENDER_HAPPY_PATH = [
    "RES_IDLE",
    "RES_NEW_AWAIT_PULL_SLIP",
    "RES_AWAIT_PICKING",
    "RES_AWAIT_SHIP",
    "RES_ITEM_SHIPPED",
    "RES_AWAITING_RETURN_SHIPPING",  # the borrower's "Received" (responderISO18626Received)
    "RES_ITEM_RETURNED",
    "RES_COMPLETE",
]


def sample(name: str) -> dict[str, Any]:
    """The exact performAction body ReShare's own tests send for this action."""
    body: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return body


class Sim:
    """The simulator's /_sim/ control endpoints, as a test drives them over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        # A new connection per control call (see the report on the simulator's kept-alive latency).
        response = requests.request(method, self.base_url + path, json=body, timeout=10)
        assert response.status_code < 300, response.text
        return response.json()

    def create(self, **fields: Any) -> dict[str, Any]:
        body = {
            "borrower_tenant": "east",
            "lender_tenant": "west",
            "title": "The Left Hand of Darkness",
            "author": "Le Guin, Ursula K.",
            "patron_barcode": "EP-0001",
            "pickup_location_slug": "east-main",
            **fields,
        }
        return self._call("POST", "/_sim/requests", body)

    def record(self, tenant: str, request_id: str) -> dict[str, Any]:
        return self._call("GET", f"/_sim/requests/{tenant}/{request_id}")

    def records(self, tenant: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/_sim/requests?tenant={tenant}")

    def fault(self, **spec: Any) -> None:
        self._call("POST", "/_sim/faults", spec)

    def calls(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        return [
            call
            for call in self._call("GET", "/_sim/calls")
            if (method is None or call["method"] == method) and (path is None or call["path"] == path)
        ]

    def expire_tokens(self) -> None:
        self._call("POST", "/_sim/expire-tokens")

    def login_mode(self, mode: str) -> None:
        self._call("POST", "/_sim/login-mode", {"mode": mode})

    def touch(self, tenant: str, request_id: str) -> None:
        """Simulator-only: save a request unchanged so its lastUpdated moves (the requester has no localNote)."""
        self._call("POST", "/_sim/touch", {"tenant": tenant, "id": request_id})

    def clock(self, at: str | None) -> None:
        """Pin the simulator's clock at an ISO instant (every change then shares it), or unpin it."""
        self._call("POST", "/_sim/clock", {"at": at})


@pytest.fixture(scope="module")
def simulator() -> Iterator[ReShareSimulator]:
    sim = ReShareSimulator(port=0, token_ttl=600)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator: ReShareSimulator) -> Sim:
    simulator.reset()
    simulator.seed_demo()
    return Sim(simulator.base_url)


def client_for(
    sim: Sim, tenant: str, *, password: str | None = None, timeout: tuple[float, float] = (2, 5), **kw: Any
) -> ReShareClient:
    settings = ReShareSettings(
        base_url=sim.base_url,
        tenant=tenant,
        username="bridge",
        password=password or f"{tenant}-password",
        symbol=f"RESHARE:{tenant.upper()}",
    )
    return ReShareClient(settings, timeout=timeout, **{"read_retries": 2, "backoff": 0.01, **kw})


@pytest.fixture
def east(sim: Sim) -> Iterator[ReShareClient]:
    client = client_for(sim, "east")
    yield client
    client.close()


@pytest.fixture
def west(sim: Sim) -> Iterator[ReShareClient]:
    client = client_for(sim, "west")
    yield client
    client.close()


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def audit_states(record: PatronRequest) -> list[str]:
    return [entry["toStatus"]["code"] for entry in (record.model_extra or {})["audit"]]


# --- the whole life of a loan ---------------------------------------------------------------------------


def test_a_loan_goes_through_every_happy_path_state_on_both_sides(sim, east, west):
    # Given a new request: the borrower's copy was sent to the supplier, the lender's copy just arrived
    pair = sim.create(
        lender_state="RES_IDLE",
        due_date="2031-03-15",
        volumes=[{"item_barcode": "WEST-ITEM-0042", "call_number": "PS3562.E42 L4"}],
    )
    borrower_id, lender_id = pair["borrower"]["id"], pair["lender"]["id"]

    def states() -> tuple[str, str]:
        return east.get_request(borrower_id).state.code, west.get_request(lender_id).state.code

    seen = [states()]

    # When staff perform each step through the client, with the exact bodies ReShare's tests send
    steps = [
        (west, lender_id, "supplierAnswerYes"),
        (west, lender_id, "supplierPrintPullSlip"),
        (west, lender_id, "supplierCheckInToReshare"),
        (west, lender_id, "supplierMarkShipped"),
        (east, borrower_id, "requesterReceived"),
        (east, borrower_id, "patronReturnedItem"),
        (east, borrower_id, "shippedReturn"),
        (west, lender_id, "supplierCheckOutOfReshare"),
    ]
    for client, request_id, name in steps:
        body = sample(name)
        assert body["action"] in client.valid_actions(request_id), name
        client.perform_action(request_id, body["action"], body["actionParams"])
        seen.append(states())

    # Then both sides moved one happy-path state at a time, in order (partner messages moving the other side)
    assert seen == [
        ("REQ_REQUEST_SENT_TO_SUPPLIER", "RES_IDLE"),
        ("REQ_EXPECTS_TO_SUPPLY", "RES_NEW_AWAIT_PULL_SLIP"),
        ("REQ_EXPECTS_TO_SUPPLY", "RES_AWAIT_PICKING"),
        ("REQ_EXPECTS_TO_SUPPLY", "RES_AWAIT_SHIP"),
        ("REQ_SHIPPED", "RES_ITEM_SHIPPED"),
        ("REQ_CHECKED_IN", "RES_AWAITING_RETURN_SHIPPING"),
        ("REQ_AWAITING_RETURN_SHIPPING", "RES_AWAITING_RETURN_SHIPPING"),
        ("REQ_SHIPPED_TO_SUPPLIER", "RES_ITEM_RETURNED"),
        ("REQ_REQUEST_COMPLETE", "RES_COMPLETE"),
    ]
    # And each full record's audit lists every state of the happy path in docs/reshare.md#states, in order, and ends terminal
    borrower, lender = east.get_request(borrower_id), west.get_request(lender_id)
    assert audit_states(borrower) == BORROWER_HAPPY_PATH
    assert audit_states(lender) == LENDER_HAPPY_PATH
    assert borrower.state.terminal and lender.state.terminal
    # And the borrower's copy carries what the bridge needs: one volume, temp barcode = hrid, the lender's due
    # date, the pickup branch code, both symbols
    assert borrower.hrid == lender.hrid == pair["hrid"]
    assert [v.item_id for v in lender.volumes or []] == ["123"]  # the sample's itemBarcodes replaced it
    assert borrower.temp_item_barcodes()[0][1] == borrower.hrid
    assert [v.temporary_item_barcode for v in borrower.volumes or []] == [borrower.hrid]
    assert borrower.due_date_rs == "2031-03-15T00:00:00Z"
    assert borrower.lender_due_date == datetime(2031, 3, 15, tzinfo=UTC)
    assert borrower.resolved_pickup_location is not None
    assert borrower.resolved_pickup_location.lms_location_code == "128807"
    assert (borrower.requesting_institution_symbol, borrower.supplying_institution_symbol) == (
        "RESHARE:EAST",
        "RESHARE:WEST",
    )
    # And each client logged in once, lazily, and every action went out exactly once
    assert len(sim.calls("POST", "/authn/login-with-expiry")) == 2
    assert len([c for c in sim.calls("POST") if c["path"].endswith("/performAction")]) == len(steps)


def test_the_shortcut_actions_also_reach_the_end(sim, east, west):
    # Given a request the lender is picking
    pair = sim.create(lender_state="RES_AWAIT_PICKING")
    borrower_id, lender_id = pair["borrower"]["id"], pair["lender"]["id"]

    # When staff fill-and-ship in one go, and the borrower returns and ships back in one go
    west.perform_action(lender_id, "supplierCheckInToReshareAndSupplierMarkShipped", {})
    east.perform_action(borrower_id, "requesterReceived", sample("requesterReceived")["actionParams"])
    body = sample("patronReturnedItemAndShippedReturn")
    east.perform_action(borrower_id, body["action"], body["actionParams"])
    west.perform_action(lender_id, "supplierCheckOutOfReshare", {})

    # Then both are complete
    assert east.get_request(borrower_id).state.code == "REQ_REQUEST_COMPLETE"
    assert west.get_request(lender_id).state.code == "RES_COMPLETE"


# --- listing changes ------------------------------------------------------------------------------------


def test_changes_since_a_cursor_are_exactly_those_at_or_after_it_in_order_across_pages(sim, east, west):
    # Given 19 older requests, a 20th whose lastUpdated second is the cursor, 250 newer ones in later
    # seconds (many per second), and 5 older ones saved again after them (simulator-only touch: the requester
    # has no localNote in mod-rs)
    sim.clock("2031-01-01T10:00:00Z")
    older = [sim.create(patron_barcode=f"EP-{n:04d}")["borrower"]["id"] for n in range(19)]
    sim.clock("2031-01-01T10:00:01Z")
    older.append(sim.create(patron_barcode="EP-0019")["borrower"]["id"])
    cursor = sim.record("east", older[-1])["lastUpdated"]
    assert cursor == "2031-01-01T10:00:01Z"  # ISO-8601 UTC to the second, as mod-rs renders a Date
    for n in range(250):
        sim.clock(f"2031-01-01T10:01:{n // 10:02d}Z")  # 10 changes in each second
        sim.create(patron_barcode=f"EP-{100 + n:04d}")
    sim.clock("2031-01-01T10:02:00Z")
    for request_id in older[:5]:
        sim.touch("east", request_id)
    sim.clock(None)
    expected = [r for r in sim.records("east") if r["isRequester"] and r["lastUpdated"] >= cursor]
    assert len(expected) == 256

    # When listing borrower changes since the cursor
    since = datetime(2031, 1, 1, 10, 0, 1, tzinfo=UTC)
    listed = list(east.changed_since(is_requester=True, since=since))

    # Then exactly those, each once, in lastUpdated order (any order inside one second: there is no
    # tie-break), read over several pages of at most 100
    assert sorted(r.id for r in listed) == sorted(r["id"] for r in expected)
    stamps = [r.last_updated for r in listed]
    assert stamps == sorted(stamps)
    assert listed[0].id == older[-1]  # the cursor's own second is included
    assert sorted(r.id for r in listed[-5:]) == sorted(older[:5])
    pages = sim.calls("GET", "/rs/patronrequests")
    assert len(pages) >= 3
    assert all("perPage=100" in page["query"] for page in pages)
    assert all("lastUpdated%3E%3D2031-01-01T" in page["query"] for page in pages)
    # And each side lists only its own copies
    assert list(east.changed_since(is_requester=False, since=None)) == []
    assert len(list(west.changed_since(is_requester=False, since=None))) == 270


def test_list_records_carry_volumes_as_the_single_record_does(sim, east):
    # Given a shipped two-volume request picked up at the science library
    pair = sim.create(
        pickup_location_slug="east-science",
        lender_state="RES_ITEM_SHIPPED",
        volumes=[{"item_barcode": "WEST-V-1001"}, {"item_barcode": "WEST-V-2002"}],
    )

    # When listing records, and reading the request itself
    (listed,) = east.changed_since(is_requester=True, since=None)
    single = east.get_request(pair["borrower"]["id"])

    # Then both carry the volumes (mod-rs _patronRequest.gson renders them in lists too) and every scalar;
    # only the single record expands the resolved pickup location
    for record in (listed, single):
        assert len(record.volumes or []) == 2
        assert record.pickup_location_slug == "east-science"
        assert record.due_date_rs is not None
    assert listed.resolved_pickup_location is None
    assert single.resolved_pickup_location is not None
    assert single.resolved_pickup_location.lms_location_code == "262630"
    assert listed.state.code == single.state.code == "REQ_SHIPPED"


def test_multi_volume_requests_carry_hrid_dash_last4_temp_barcodes(sim, east, west):
    # Given a three-volume request the lender fills with its item barcodes and ships
    pair = sim.create(lender_state="RES_AWAIT_PICKING", pickup_location_slug="east-annex")
    lender_id, hrid = pair["lender"]["id"], pair["hrid"]
    fill = sample("supplierCheckInToReshare")
    fill["actionParams"]["itemBarcodes"] = [
        {"name": f"v.{n}", "itemId": barcode}
        for n, barcode in enumerate(["39001000011111", "39001000022222", "39001000033333"], start=1)
    ]
    west.perform_action(lender_id, fill["action"], fill["actionParams"])
    west.perform_action(lender_id, "supplierMarkShipped", sample("supplierMarkShipped")["actionParams"])

    # When the borrower's request is read
    borrower = east.get_request(pair["borrower"]["id"])

    # Then each volume's temp barcode is hrid + "-" + the last 4 of the lender's itemId (docs/reshare.md#request-fields)
    expected = [f"{hrid}-1111", f"{hrid}-2222", f"{hrid}-3333"]
    assert [v.temporary_item_barcode for v in borrower.volumes or []] == expected
    assert [barcode for _, barcode in borrower.temp_item_barcodes()] == expected
    assert [v.item_id for v in west.get_request(lender_id).volumes or []] == [
        "39001000011111",
        "39001000022222",
        "39001000033333",
    ]
    # And a pickup location without a branch code resolves to none
    assert borrower.resolved_pickup_location is not None
    assert borrower.resolved_pickup_location.lms_location_code is None


# --- refusals -------------------------------------------------------------------------------------------


def test_an_action_invalid_in_the_current_state_is_rejected_with_reshares_message(sim, east):
    # Given a request not yet shipped
    pair = sim.create()
    borrower_id = pair["borrower"]["id"]

    # When staff mark it received, Then ReShareActionRejected carrying ReShare's message, and nothing changed
    assert "requesterReceived" not in east.valid_actions(borrower_id)
    with pytest.raises(ReShareActionRejected) as caught:
        east.perform_action(borrower_id, "requesterReceived", sample("requesterReceived")["actionParams"])
    assert caught.value.action == "requesterReceived"
    assert caught.value.status == 400
    assert caught.value.reason == (  # mod-rs ActionService.executeAction's words
        "A valid action was not supplied, isRequester: true Current state: REQ_REQUEST_SENT_TO_SUPPLIER, "
        "network status: Idle Action being performed: requesterReceived"
    )
    assert east.get_request(borrower_id).state.code == "REQ_REQUEST_SENT_TO_SUPPLIER"


def test_unknown_requests_are_not_found(sim, east):
    with pytest.raises(ReShareNotFound):
        east.get_request("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ReShareNotFound):
        east.perform_action("00000000-0000-0000-0000-000000000000", "localNote", {"localNote": "x"})
    with pytest.raises(ReShareNotFound):
        east.valid_actions("00000000-0000-0000-0000-000000000000")


def test_host_lms_integration_is_manual(sim, east, west):
    assert east.app_setting("host_lms_integration") == "manual"
    assert west.app_setting("host_lms_integration") == "manual"
    assert east.app_setting("no_such_setting") is None


# --- login ----------------------------------------------------------------------------------------------


def test_expired_tokens_make_the_client_log_in_again_once(sim, east):
    # Given a logged-in client whose token ReShare then expires
    pair = sim.create()
    borrower_id = pair["borrower"]["id"]
    east.get_request(borrower_id)
    sim.expire_tokens()

    # When it reads again, Then it logs in again and the read succeeds
    assert east.get_request(borrower_id).id == borrower_id
    assert [c["status"] for c in sim.calls("GET", f"/rs/patronrequests/{borrower_id}")] == [200, 401, 200]
    assert len(sim.calls("POST", "/authn/login-with-expiry")) == 2


def test_a_token_expiring_on_an_action_is_renewed_and_the_action_applied_once(sim, west):
    # Given ReShare expires the token presented on the next performAction
    pair = sim.create()
    lender_id = pair["lender"]["id"]
    path = f"/rs/patronrequests/{lender_id}/performAction"
    sim.fault(path_prefix=path, kind="expire_token")

    # When the lender's staff add a local note (localNote is the responder's: AvailableActionData)
    west.perform_action(lender_id, "localNote", sample("localNote")["actionParams"])

    # Then the refused call was repeated once with a new token, and applied once
    assert [c["status"] for c in sim.calls("POST", path)] == [401, 200]
    assert west.get_request(lender_id).model_extra["localNote"] == "Noted!"


def test_login_falls_back_to_the_legacy_endpoint(sim):
    # Given an older Okapi without /authn/login-with-expiry
    sim.login_mode("legacy-only")
    pair = sim.create()
    client = client_for(sim, "east")

    # When the client reads, Then it logged in through /authn/login and the read succeeded
    assert client.get_request(pair["borrower"]["id"]).hrid == pair["hrid"]
    assert [(c["path"], c["status"]) for c in sim.calls("POST")] == [
        ("/authn/login-with-expiry", 404),
        ("/authn/login", 201),
    ]


def test_wrong_credentials_are_an_auth_error(sim):
    client = client_for(sim, "east", password="not-the-password")
    with pytest.raises(ReShareAuthError, match="Password does not match"):
        client.app_setting("host_lms_integration")


# --- faults ---------------------------------------------------------------------------------------------


def test_5xx_on_reads_is_retried_then_unavailable(sim, east):
    # Given a request, and ReShare answering its reads with 503 twice
    pair = sim.create()
    borrower_id = pair["borrower"]["id"]
    path = f"/rs/patronrequests/{borrower_id}"
    sim.fault(path_prefix=path, method="GET", kind="http_error", status=503, times=2)

    # When reading it, Then the third attempt succeeds
    assert east.get_request(borrower_id).id == borrower_id
    assert [c["status"] for c in sim.calls("GET", path)] == [503, 503, 200]

    # Given ReShare now answers 502 until told otherwise
    sim.fault(path_prefix=path, method="GET", kind="http_error", status=502, times=-1)

    # When reading, Then ReShareUnavailable after 1 + read_retries (2) attempts
    with pytest.raises(ReShareUnavailable):
        east.get_request(borrower_id)
    assert [c["status"] for c in sim.calls("GET", path)] == [503, 503, 200, 502, 502, 502]


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_on_an_action_is_unavailable_and_never_retried(sim, east, status):
    # Given ReShare answers the next action with a 5xx
    pair = sim.create()
    borrower_id = pair["borrower"]["id"]
    path = f"/rs/patronrequests/{borrower_id}/performAction"
    sim.fault(path_prefix=path, method="POST", kind="http_error", status=status, times=1)

    # When staff cancel, Then ReShareUnavailable after exactly one call, and the request did not move
    with pytest.raises(ReShareUnavailable):
        east.perform_action(borrower_id, "requesterCancel", sample("requesterCancel")["actionParams"])
    assert [c["status"] for c in sim.calls("POST", path)] == [status]
    assert east.get_request(borrower_id).state.code == "REQ_REQUEST_SENT_TO_SUPPLIER"


def test_slow_reads_time_out_and_are_retried(sim):
    # Given a client with a short read timeout, and ReShare slow on the first read only
    client = client_for(sim, "east", timeout=(2, 0.3))
    pair = sim.create()
    borrower_id = pair["borrower"]["id"]
    path = f"/rs/patronrequests/{borrower_id}"
    sim.fault(path_prefix=path, method="GET", kind="latency", latency_ms=800, times=1)

    # When reading, Then the retry succeeds
    assert client.get_request(borrower_id).id == borrower_id
    eventually(lambda: len(sim.calls("GET", path)) == 2)


def test_reads_that_keep_timing_out_are_unavailable(sim):
    # Given a client with a short read timeout, and ReShare holding every read of the list without answer
    client = client_for(sim, "east", timeout=(2, 0.3), read_retries=2)
    sim.fault(path_prefix="/rs/patronrequests", method="GET", kind="timeout", timeout_s=0.6, times=-1)

    # When listing, Then ReShareUnavailable after 3 attempts
    with pytest.raises(ReShareUnavailable, match="3 attempt"):
        list(client.changed_since(is_requester=True, since=None))
    eventually(lambda: len(sim.calls("GET", "/rs/patronrequests")) == 3)


def test_a_slow_action_is_outcome_unknown_and_was_applied_anyway(sim, east):
    # Given a client with a short read timeout, and ReShare slow to answer the next action (it still acts)
    client = client_for(sim, "east", timeout=(2, 0.3))
    pair = sim.create()
    borrower_id = pair["borrower"]["id"]
    path = f"/rs/patronrequests/{borrower_id}/performAction"
    sim.fault(path_prefix=path, method="POST", kind="latency", latency_ms=800, times=1)

    # When staff cancel, Then ReShareOutcomeUnknown after one call...
    with pytest.raises(ReShareOutcomeUnknown):
        client.perform_action(borrower_id, "requesterCancel", sample("requesterCancel")["actionParams"])

    # ...and re-reading shows ReShare did act: that is why the caller must verify before re-sending (the
    # lender's default auto_responder_cancel "on" has answered it already)
    eventually(lambda: east.get_request(borrower_id).state.code == "REQ_CANCELLED")
    assert len(sim.calls("POST", path)) == 1


def test_an_action_held_without_answer_is_outcome_unknown(sim, east):
    # Given ReShare holds the next action and closes the connection without acting
    client = client_for(sim, "east", timeout=(2, 0.3))
    pair = sim.create()
    borrower_id = pair["borrower"]["id"]
    path = f"/rs/patronrequests/{borrower_id}/performAction"
    sim.fault(path_prefix=path, method="POST", kind="timeout", timeout_s=0.6, times=1)

    # When staff cancel, Then ReShareOutcomeUnknown, sent once, and (here) nothing happened
    with pytest.raises(ReShareOutcomeUnknown):
        client.perform_action(borrower_id, "requesterCancel", sample("requesterCancel")["actionParams"])
    eventually(lambda: len(sim.calls("POST", path)) == 1)
    assert east.get_request(borrower_id).state.code == "REQ_REQUEST_SENT_TO_SUPPLIER"


def test_a_lost_answer_to_an_action_is_outcome_unknown_though_it_was_applied(sim, east, west):
    # Given a shipped request, and ReShare losing its answer to the next action
    pair = sim.create(lender_state="RES_ITEM_SHIPPED")
    borrower_id = pair["borrower"]["id"]
    path = f"/rs/patronrequests/{borrower_id}/performAction"
    sim.fault(path_prefix=path, method="POST", kind="drop_response", times=1)

    # When staff mark it received
    with pytest.raises(ReShareOutcomeUnknown):
        east.perform_action(borrower_id, "requesterReceived", sample("requesterReceived")["actionParams"])

    # Then it was sent once and ReShare applied it
    assert [c["status"] for c in sim.calls("POST", path)] == ["dropped"]
    assert east.get_request(borrower_id).state.code == "REQ_CHECKED_IN"
    assert "requesterReceived" not in east.valid_actions(borrower_id)
