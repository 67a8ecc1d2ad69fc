"""The bridge's WMS client against the WMS simulator (sandbox/wms): every operation round-trips, every injected
fault surfaces as the right typed error, SCIM answers patrons as WMS would."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from illbridge.config.library import WmsSettings
from illbridge.errors import (
    PatronNotFound,
    WmsAuthError,
    WmsOutcomeUnknown,
    WmsProblem,
    WmsUnavailable,
)
from illbridge.wms.auth import TokenCache
from illbridge.wms.client import Exchange, WmsClient
from illbridge.wms.probe import LookupItemProbe

sim_module = pytest.importorskip("sandbox.wms", reason="the WMS simulator (sandbox/wms) is not there yet")

_numbers = itertools.count(1)


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[Exchange]:
    """Every call any ``WmsClient`` logs during the test, in order (the client logs one ``Exchange`` per call)."""
    seen: list[Exchange] = []
    record = WmsClient._record

    def keep(self: WmsClient, exchange: Exchange) -> None:
        seen.append(exchange)
        record(self, exchange)

    monkeypatch.setattr(WmsClient, "_record", keep)
    return seen


@pytest.fixture(scope="module")
def simulator() -> Iterator[Any]:
    # LookupItem's "supported" value (not documented for WMS); due dates as instants (due_date_style utc).
    sim = sim_module.WmsSimulator(port=0, options={"lookup_item": "supported", "due_date_style": "utc"})
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


class Sim:
    """The simulator's staff and control API (``/_sim/``), over HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base

    def post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = requests.post(f"{self.base}{path}", json=payload or {}, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.base}{path}", timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def fault(self, **spec: Any) -> None:
        self.post("/_sim/faults", {"times": 1, **spec})

    def item(self, barcode: str) -> dict[str, Any]:
        return self.get(f"/_sim/items/{barcode}")


@pytest.fixture
def sim(simulator) -> Sim:
    simulator.reset()
    simulator.seed_demo()
    return Sim(simulator.base_url)


def east_settings(base: str, **overrides: Any) -> WmsSettings:
    values: dict[str, Any] = {
        "registry_id": "128807",
        "ncip_url": f"{base}/ncip",
        "oauth_url": f"{base}/oauth/token",
        "scim_url": f"{base}/idaas/scim/v2/Users/.search",
        "wskey": "east-wskey",
        "wskey_secret": "east-secret",
        "lending_agency_scheme": "symbol",
        "timeout_seconds": 5.0,
    }
    values.update(overrides)
    return WmsSettings.model_validate(values)


@pytest.fixture
def client(sim) -> Iterator[WmsClient]:
    with WmsClient(east_settings(sim.base), tokens=TokenCache()) as wms:
        yield wms


def accept(client: WmsClient, temp_barcode: str, **overrides: Any):
    fields: dict[str, Any] = {
        "request_id": f"EAST-{next(_numbers):05d}",
        "temp_item_barcode": temp_barcode,
        "lending_agency_id": "WEST",
        "patron_barcode": "EAST-P-0001",
        "pickup_branch": "262630",
        "date_for_return": datetime.now(UTC) + timedelta(days=30),
        "title": "Dune",
        "author": "Frank Herbert",
        "publisher": "Chilton",
        "publication_date": "1965",
        "call_number": "ILL",
    }
    fields.update(overrides)
    return client.accept_item(**fields)


# --- round trips ------------------------------------------------------------------------------------------


def test_borrowing_round_trip(sim, client):
    # Given a good patron
    assert client.lookup_patron("EAST-P-0001").blocked is False
    # When the ILL item is received (AcceptItem)
    accepted = accept(client, "ILL-T-0001", request_id="EAST-00042")
    # Then WMS holds a temp item owned by the lender, with the request id, and a Pending hold at the pickup branch
    assert accepted.request_id == "ReShareRequestEAST-00042"
    assert accepted.item_barcode == "ILL-T-0001"
    (temp,) = [item for item in sim.get("/_sim/temp-items") if item["barcode"] == "ILL-T-0001"]
    assert temp["request_id"] == "ReShareRequestEAST-00042"
    assert temp["lending_library"] == "WEST"
    (hold,) = [hold for hold in sim.get("/_sim/holds") if hold["item_barcode"] == "ILL-T-0001"]
    assert (hold["status"], hold["pickup_branch"], hold["patron_barcode"]) == (
        "Pending",
        "262630",
        "EAST-P-0001",
    )
    probe = LookupItemProbe(client)
    assert probe.is_checked_in("ILL-T-0001").checked_in is False
    # When staff check it in at the pickup branch and out to the patron
    sim.post("/_sim/checkin", {"barcode": "ILL-T-0001", "branch": "262630"})
    assert client.lookup_item("ILL-T-0001").circulation_status == "Available For Pickup"
    assert probe.is_checked_in("ILL-T-0001").checked_in is False
    sim.post("/_sim/checkout", {"item_barcode": "ILL-T-0001", "patron_barcode": "EAST-P-0001"})
    on_loan = probe.is_checked_in("ILL-T-0001")
    assert on_loan.on_loan and on_loan.checked_in is False
    # And the bridge checks the temp item in (returned in ReShare)
    returned = client.check_in_item(item_barcode="ILL-T-0001")
    # Then WMS names the last borrower and routes the item to its home branch, where it is Unavailable
    assert returned.item_barcode == "ILL-T-0001"
    assert returned.user_id == "EAST-P-0001"
    # routed home as OCLC documents it: "Process", the ILL holding code and shelving location
    assert returned.routing_instructions == "Process" and returned.routing_path == ("ILL", "ILL Shelf")
    after = probe.is_checked_in("ILL-T-0001")
    assert after.circulation_status == "Not Available"
    assert after.checked_in is True


def test_lending_round_trip(sim, client):
    # Given a lent item shipped to West, with a desired due date
    desired = (datetime.now(UTC) + timedelta(days=21)).replace(microsecond=0)
    # When the bridge checks it out to the partner's account
    loan = client.check_out_item(
        item_barcode="EAST-ITEM-0001",
        user_barcode="ILL-WEST",
        request_id="EAST-L-00001",
        desired_date_due=desired,
        shipped_at=datetime.now(UTC),
    )
    # Then WMS answers the real due date and holds the loan
    assert loan.item_barcode == "EAST-ITEM-0001"
    assert loan.user_id == "ILL-WEST"
    assert loan.due_date == desired
    (active,) = [entry for entry in sim.get("/_sim/loans") if entry["active"]]
    assert (active["item_barcode"], active["patron_barcode"]) == ("EAST-ITEM-0001", "ILL-WEST")
    assert active["request_id"] == "ReShareRequestEAST-L-00001"
    status = client.lookup_item("EAST-ITEM-0001", current_borrower=True)
    assert status.circulation_status == "On Loan"
    assert status.current_borrower == "ILL-WEST"
    # When the item comes back and is checked in
    returned = client.check_in_item(item_barcode="EAST-ITEM-0001")
    # Then the loan is over and the item is back on the shelf
    assert returned.user_id == "ILL-WEST"
    assert LookupItemProbe(client).is_checked_in("EAST-ITEM-0001", seen_on_loan=True).checked_in is True
    # And a second check-in is the "already checked in" Problem
    with pytest.raises(WmsProblem) as caught:
        client.check_in_item(item_barcode="EAST-ITEM-0001")
    assert caught.value.problem_type == "Item Not Checked Out"
    assert caught.value.operation == "CheckInItem"


def test_checkout_without_due_date_uses_policy(sim, client):
    loan = client.check_out_item(item_barcode="EAST-ITEM-0002", user_barcode="ILL-DEFAULT")
    assert loan.due_date is not None and loan.due_date > datetime.now(UTC) + timedelta(days=7)


def test_check_in_by_request_id(sim, client):
    accept(client, "ILL-T-0002", request_id="EAST-00077")
    sim.post("/_sim/checkin", {"barcode": "ILL-T-0002", "branch": "262630"})
    sim.post("/_sim/checkout", {"item_barcode": "ILL-T-0002", "patron_barcode": "EAST-P-0001"})
    result = client.check_in_item(request_id="EAST-00077")
    assert result.item_barcode == "ReShareRequestEAST-00077"
    assert result.item_id_type == "ILL Request Id"
    assert sim.item("ILL-T-0002")["active_loan"] is None


def test_problems_from_the_simulator(sim, client):
    accept(client, "ILL-T-0003")
    with pytest.raises(WmsProblem) as duplicate:
        accept(client, "ILL-T-0003")
    assert duplicate.value.problem_type == "Duplicate Item"
    with pytest.raises(WmsProblem) as blocked:
        client.check_out_item(item_barcode="EAST-ITEM-0003", user_barcode="EAST-P-0002")
    assert blocked.value.problem_type == "User Blocked"
    with pytest.raises(WmsProblem) as unknown_user:
        client.check_out_item(item_barcode="EAST-ITEM-0003", user_barcode="NOBODY")
    assert unknown_user.value.problem_type == "Unknown User"
    with pytest.raises(WmsProblem) as unknown_item:
        client.lookup_item("NO-SUCH-ITEM")
    assert unknown_item.value.problem_type == "Unknown Item"
    assert LookupItemProbe(client).is_checked_in("NO-SUCH-ITEM").found is False


# --- faults -----------------------------------------------------------------------------------------------


def test_5xx_is_unavailable_and_nothing_was_applied(sim, client):
    # Given WMS answers the next checkout with HTTP 503
    sim.fault(operation="CheckOutItem", kind="http_error", status=503)
    # When the bridge checks an item out
    with pytest.raises(WmsUnavailable):
        client.check_out_item(item_barcode="EAST-ITEM-0004", user_barcode="ILL-WEST")
    # Then nothing changed in WMS and a retry succeeds
    assert sim.item("EAST-ITEM-0004")["active_loan"] is None
    assert client.check_out_item(item_barcode="EAST-ITEM-0004", user_barcode="ILL-WEST").user_id == "ILL-WEST"


def test_timeout_is_outcome_unknown(sim, exchanges):
    # Given WMS holds the next checkout longer than the client waits
    sim.fault(operation="CheckOutItem", kind="timeout", timeout_s=2)
    with WmsClient(east_settings(sim.base, timeout_seconds=0.5), tokens=TokenCache()) as client:
        client.lookup_patron("EAST-P-0001")  # the token is fetched before the slow call
        started = time.perf_counter()
        # When the bridge checks an item out
        with pytest.raises(WmsOutcomeUnknown):
            client.check_out_item(item_barcode="EAST-ITEM-0005", user_barcode="ILL-WEST")
        # Then it gave up after its own timeout, not the server's
        assert time.perf_counter() - started < 1.5
        assert exchanges[-1].outcome == "outcome_unknown"


def test_dropped_response_is_outcome_unknown_and_the_effect_was_applied(sim, client):
    # Given WMS will create the temp item but lose the answer
    sim.fault(operation="AcceptItem", kind="drop_response")
    # When the bridge sends the AcceptItem
    with pytest.raises(WmsOutcomeUnknown):
        accept(client, "ILL-T-0004")
    # Then the temp item exists all the same: exactly why the outcome is "unknown", not "failed"
    assert [item["barcode"] for item in sim.get("/_sim/temp-items")] == ["ILL-T-0004"]
    # And a blind re-send is answered Duplicate Item (the bridge must verify, then treat that as success)
    with pytest.raises(WmsProblem) as caught:
        accept(client, "ILL-T-0004")
    assert caught.value.problem_type == "Duplicate Item"


def test_injected_problem_is_a_typed_problem(sim, client):
    sim.fault(
        operation="CheckInItem",
        kind="problem",
        problem_type="Temporary Processing Failure",
        problem_detail="database busy",
    )
    with pytest.raises(WmsProblem) as caught:
        client.check_in_item(item_barcode="EAST-ITEM-0006")
    assert (caught.value.problem_type, caught.value.detail) == (
        "Temporary Processing Failure",
        "database busy",
    )
    assert caught.value.operation == "CheckInItem"


def test_latency_is_measured(sim, client, exchanges):
    client.lookup_item("EAST-ITEM-0007")  # token fetched
    sim.fault(operation="LookupItem", kind="latency", latency_ms=300)
    assert client.lookup_item("EAST-ITEM-0007").circulation_status == "Available On Shelf"
    assert exchanges[-1].duration_ms >= 300


def test_expired_token_is_refetched_transparently(sim, client, exchanges):
    # Given the client holds a token
    client.lookup_item("EAST-ITEM-0008")
    # When WMS expires every token
    sim.post("/_sim/expire-tokens")
    # Then the next call fetches a new one and succeeds, having sent the call twice
    assert client.lookup_item("EAST-ITEM-0008").item_barcode == "EAST-ITEM-0008"
    assert exchanges[-1].attempts == 2
    assert exchanges[-1].outcome == "ok"


def test_token_endpoint_faults(sim, client):
    sim.fault(operation="token", kind="http_error", status=500)
    with pytest.raises(WmsUnavailable):
        client.lookup_item("EAST-ITEM-0009")
    assert client.lookup_item("EAST-ITEM-0009").circulation_status == "Available On Shelf"


def test_wrong_secret_is_an_auth_error(sim):
    client = WmsClient(east_settings(sim.base, wskey_secret="wrong"), tokens=TokenCache())
    with client, pytest.raises(WmsAuthError, match="invalid_client"):
        client.lookup_item("EAST-ITEM-0001")


def test_nothing_listening_is_unavailable(sim):
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed_port = spare.getsockname()[1]
    settings = east_settings(sim.base, ncip_url=f"http://127.0.0.1:{closed_port}/ncip")
    with WmsClient(settings, tokens=TokenCache()) as client, pytest.raises(WmsUnavailable):
        client.check_out_item(item_barcode="EAST-ITEM-0001", user_barcode="ILL-WEST")


# --- SCIM -------------------------------------------------------------------------------------------------


def test_scim_good_blocked_expired_and_unknown(sim, client):
    good = client.lookup_patron("EAST-P-0001")
    assert (good.barcode, good.blocked, good.is_expired(datetime.now(UTC).date())) == (
        "EAST-P-0001",
        False,
        False,
    )
    blocked = client.lookup_patron("EAST-P-0002")
    assert blocked.blocked is True
    expired = client.lookup_patron("EAST-P-0003")
    assert expired.blocked is False
    assert expired.is_expired(datetime.now(UTC).date())
    with pytest.raises(PatronNotFound):
        client.lookup_patron("EAST-P-9999")


def test_scim_fault_is_unavailable(sim, client):
    sim.fault(operation="scim", kind="http_error", status=500)
    with pytest.raises(WmsUnavailable):
        client.lookup_patron("EAST-P-0001")
    assert client.lookup_patron("EAST-P-0001").barcode == "EAST-P-0001"
