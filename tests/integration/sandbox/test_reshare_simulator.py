"""The ReShare simulator over real HTTP: logins, auth, the state machine, list queries, faults, bad input."""

from __future__ import annotations

import http.client
import itertools
import json
import random
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.reshare import ReShareSimulator
from tests.reference import RESHARE_ACTIONS

ISO_SECOND = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")  # how mod-rs renders a Date

SAMPLES = RESHARE_ACTIONS
REPO = Path(__file__).resolve().parents[3]

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
PASSWORDS = {"east": "east-password", "west": "west-password"}


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def sim():
    simulator = ReShareSimulator(host="127.0.0.1", port=0, token_ttl=600)
    simulator.start()
    yield simulator
    simulator.stop()


class Client:
    """A tiny Okapi client for the tests: logs in per tenant, keeps tokens, wraps the calls."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = requests.Session()
        self.tokens: dict[str, str] = {}

    def login(self, tenant: str, password: str | None = None) -> str:
        response = self.http.post(
            f"{self.base}/authn/login-with-expiry",
            json={"username": "bridge", "password": password or PASSWORDS[tenant]},
            headers={"X-Okapi-Tenant": tenant},
            timeout=5,
        )
        assert response.status_code == 201, response.text
        self.tokens[tenant] = response.cookies["folioAccessToken"]
        return self.tokens[tenant]

    def headers(self, tenant: str) -> dict[str, str]:
        if tenant not in self.tokens:
            self.login(tenant)
        return {"X-Okapi-Tenant": tenant, "X-Okapi-Token": self.tokens[tenant]}

    def get(self, tenant: str, path: str, **params: Any) -> requests.Response:
        return self.http.get(f"{self.base}{path}", params=params, headers=self.headers(tenant), timeout=5)

    def record(self, tenant: str, request_id: str) -> dict[str, Any]:
        response = self.get(tenant, f"/rs/patronrequests/{request_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def state(self, tenant: str, request_id: str) -> str:
        return self.record(tenant, request_id)["state"]["code"]

    def act(self, tenant: str, request_id: str, action: str, params: dict | None = None) -> requests.Response:
        return self.post_action(tenant, request_id, {"action": action, "actionParams": params or {}})

    def post_action(self, tenant: str, request_id: str, body: Any) -> requests.Response:
        return self.http.post(
            f"{self.base}/rs/patronrequests/{request_id}/performAction",
            json=body,
            headers=self.headers(tenant),
            timeout=5,
        )

    def ok(self, tenant: str, request_id: str, action: str, params: dict | None = None) -> dict[str, Any]:
        response = self.act(tenant, request_id, action, params)
        assert response.status_code == 200, f"{action}: {response.status_code} {response.text}"
        return response.json()

    def sim(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.http.request(method, f"{self.base}/_sim{path}", json=body, timeout=10)

    def clock(self, at: str | None, step_ms: int = 0) -> None:
        """Pin the simulator's clock (step_ms 0: every change shares `at`), or unpin it with None."""
        response = self.sim("POST", "/clock", {"at": at, "step_ms": step_ms})
        assert response.status_code == 200, response.text

    def pair(self, **fields: Any) -> dict[str, Any]:
        body = {
            "borrower_tenant": "east",
            "lender_tenant": "west",
            "title": "The Left Hand of Darkness",
            "author": "Le Guin, Ursula K.",
            "patron_barcode": "EAST-PATRON-1",
            "pickup_location_slug": "east-main",
            **fields,
        }
        response = self.sim("POST", "/requests", body)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def client(sim):
    sim.reset()
    sim.seed_demo()
    with requests.Session() as session:
        c = Client(sim.base_url)
        c.http = session
        yield c


def audit_states(record: dict[str, Any]) -> list[str]:
    return [entry["toStatus"]["code"] for entry in record["audit"]]


def completed_pair(c: Client) -> dict[str, Any]:
    """A pair driven to the end of both happy paths."""
    pair = c.pair(lender_state="RES_ITEM_SHIPPED")
    b, lender = pair["borrower"]["id"], pair["lender"]["id"]
    c.ok("east", b, "requesterReceived")
    c.ok("east", b, "patronReturnedItemAndShippedReturn")
    c.ok("west", lender, "supplierCheckOutOfReshare")
    return pair


# ---------------------------------------------------------------- logins and auth


def test_login_with_expiry_sets_the_cookie_and_the_token_works(client):
    response = client.http.post(
        f"{client.base}/authn/login-with-expiry",
        json={"username": "bridge", "password": "east-password"},
        headers={"X-Okapi-Tenant": "east"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"accessTokenExpiration", "refreshTokenExpiration"}
    assert body["accessTokenExpiration"].endswith("Z")
    token = response.cookies["folioAccessToken"]
    listed = client.http.get(
        f"{client.base}/rs/patronrequests", headers={"X-Okapi-Tenant": "east", "X-Okapi-Token": token}
    )
    assert listed.status_code == 200
    assert listed.json() == []


def test_legacy_login_answers_the_token_in_a_header(client):
    response = client.http.post(
        f"{client.base}/authn/login",
        json={"username": "bridge", "password": "west-password"},
        headers={"X-Okapi-Tenant": "west"},
    )
    assert response.status_code == 201
    token = response.headers["x-okapi-token"]
    assert response.json() == {"okapiToken": token}
    listed = client.http.get(
        f"{client.base}/rs/patronrequests", headers={"X-Okapi-Tenant": "west", "X-Okapi-Token": token}
    )
    assert listed.status_code == 200


def test_legacy_only_mode_makes_the_new_login_404_so_clients_fall_back(client):
    assert client.sim("POST", "/login-mode", {"mode": "legacy-only"}).json() == {"mode": "legacy-only"}
    creds = {"username": "bridge", "password": "east-password"}
    east = {"X-Okapi-Tenant": "east"}
    new = client.http.post(f"{client.base}/authn/login-with-expiry", json=creds, headers=east)
    assert new.status_code == 404
    old = client.http.post(f"{client.base}/authn/login", json=creds, headers=east)
    assert old.status_code == 201 and old.headers["x-okapi-token"]
    client.sim("POST", "/login-mode", {"mode": "both"})
    assert (
        client.http.post(f"{client.base}/authn/login-with-expiry", json=creds, headers=east).status_code
        == 201
    )


def test_wrong_credentials_answer_422_and_an_unknown_tenant_400(client):
    wrong = client.http.post(
        f"{client.base}/authn/login-with-expiry",
        json={"username": "bridge", "password": "nope"},
        headers={"X-Okapi-Tenant": "east"},
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["code"] == "password.incorrect"
    other_tenants_password = client.http.post(
        f"{client.base}/authn/login",
        json={"username": "bridge", "password": "west-password"},
        headers={"X-Okapi-Tenant": "east"},
    )
    assert other_tenants_password.status_code == 422
    unknown = client.http.post(
        f"{client.base}/authn/login-with-expiry",
        json={"username": "bridge", "password": "east-password"},
        headers={"X-Okapi-Tenant": "north"},
    )
    assert unknown.status_code == 400


def test_missing_wrong_and_expired_tokens_answer_401_and_a_foreign_one_403(client):
    url = f"{client.base}/rs/patronrequests"
    assert client.http.get(url, headers={"X-Okapi-Tenant": "east"}).status_code == 401
    assert (
        client.http.get(url, headers={"X-Okapi-Tenant": "east", "X-Okapi-Token": "forged"}).status_code == 401
    )
    west_token = client.login("west")
    foreign = client.http.get(url, headers={"X-Okapi-Tenant": "east", "X-Okapi-Token": west_token})
    assert foreign.status_code == 403  # Okapi: a token of another tenant
    assert foreign.json()["message"] == "Tenant mismatch"
    east_token = client.login("east")
    east = {"X-Okapi-Tenant": "east", "X-Okapi-Token": east_token}
    assert client.http.get(url, headers=east).status_code == 200
    assert client.sim("POST", "/expire-tokens").json()["expired"] >= 2
    assert client.http.get(url, headers=east).status_code == 401
    client.login("east")
    assert client.get("east", "/rs/patronrequests").status_code == 200


def test_tokens_expire_after_their_ttl():
    with ReShareSimulator(port=0, token_ttl=0.3) as short:
        short.seed_demo()
        c = Client(short.base_url)
        c.login("east")
        assert c.get("east", "/rs/patronrequests").status_code == 200
        time.sleep(0.4)
        assert c.get("east", "/rs/patronrequests").status_code == 401


# ---------------------------------------------------------------- the life of a pair


def test_a_pair_walks_both_happy_paths_in_order(client):
    pair = client.pair(lender_state="RES_IDLE", isbn="9780441478125", publisher="Ace", due_date="2031-05-17")
    b, lender = pair["borrower"]["id"], pair["lender"]["id"]
    assert pair["hrid"] == "EAST-1"
    assert pair["lender"]["tenant"] == "west"
    assert client.state("east", b) == "REQ_REQUEST_SENT_TO_SUPPLIER"
    assert client.state("west", lender) == "RES_IDLE"

    steps = [
        ("west", lender, "respondYes", "RES_NEW_AWAIT_PULL_SLIP", "REQ_EXPECTS_TO_SUPPLY"),
        ("west", lender, "supplierPrintPullSlip", "RES_AWAIT_PICKING", "REQ_EXPECTS_TO_SUPPLY"),
        ("west", lender, "supplierCheckInToReshare", "RES_AWAIT_SHIP", "REQ_EXPECTS_TO_SUPPLY"),
        ("west", lender, "supplierMarkShipped", "RES_ITEM_SHIPPED", "REQ_SHIPPED"),
        ("east", b, "requesterReceived", "RES_AWAITING_RETURN_SHIPPING", "REQ_CHECKED_IN"),
        ("east", b, "patronReturnedItem", "RES_AWAITING_RETURN_SHIPPING", "REQ_AWAITING_RETURN_SHIPPING"),
        ("east", b, "shippedReturn", "RES_ITEM_RETURNED", "REQ_SHIPPED_TO_SUPPLIER"),
        ("west", lender, "supplierCheckOutOfReshare", "RES_COMPLETE", "REQ_REQUEST_COMPLETE"),
    ]
    for tenant, request_id, action, lender_state, borrower_state in steps:
        client.ok(tenant, request_id, action)
        assert client.state("west", lender) == lender_state, action
        assert client.state("east", b) == borrower_state, action

    borrower = client.record("east", b)
    lent = client.record("west", lender)
    assert audit_states(borrower) == BORROWER_HAPPY_PATH
    assert audit_states(lent) == LENDER_HAPPY_PATH
    assert borrower["audit"][0]["fromStatus"] is None
    for record in (borrower, lent):  # the tenant clock never goes back; dates render to the second
        stamps = [entry["dateCreated"] for entry in record["audit"]]
        assert stamps == sorted(stamps)
        assert all(ISO_SECOND.fullmatch(stamp) for stamp in [*stamps, record["lastUpdated"]])
    for entry, previous in zip(borrower["audit"][1:], BORROWER_HAPPY_PATH, strict=False):
        assert entry["fromStatus"] == {"code": previous}
    assert borrower["state"] == {"code": "REQ_REQUEST_COMPLETE", "terminal": True}
    assert lent["state"] == {"code": "RES_COMPLETE", "terminal": True}
    assert borrower["hrid"] == lent["hrid"] == "EAST-1"
    assert borrower["isRequester"] is True and lent["isRequester"] is False
    assert borrower["requestingInstitutionSymbol"] == lent["requestingInstitutionSymbol"] == "RESHARE:EAST"
    assert borrower["supplyingInstitutionSymbol"] == lent["supplyingInstitutionSymbol"] == "RESHARE:WEST"
    # set at supplierCheckInToReshare as the instant given (the simulator's due_date: that day's start, UTC)
    assert borrower["dueDateRS"] == lent["dueDateRS"] == "2031-05-17T00:00:00Z"
    assert borrower["parsedDueDateRS"] == "2031-05-17T00:00:00Z"
    assert borrower["isbn"] == "9780441478125" and borrower["publisher"] == "Ace"
    assert borrower["pickupLocationSlug"] == "east-main"
    assert borrower["pickupLocation"] == "East Main Library"
    assert borrower["resolvedPickupLocation"]["lmsLocationCode"] == "128807"
    assert borrower["patronIdentifier"] == "EAST-PATRON-1"
    assert [v["itemId"] for v in borrower["volumes"]] == ["WEST-ITEM-0001"]
    assert [v["temporaryItemBarcode"] for v in borrower["volumes"]] == ["EAST-1"]
    assert [v["itemId"] for v in lent["volumes"]] == ["WEST-ITEM-0001"]
    # mod-rs AvailableActionData: the requester has message in completed states and no localNote at all
    assert client.get("east", f"/rs/patronrequests/{b}/validActions").json() == {"actions": ["message"]}
    assert client.get("west", f"/rs/patronrequests/{lent['id']}/validActions").json() == {
        "actions": ["message", "localNote"]
    }


def test_shipping_without_a_given_due_date_lends_for_the_default_56_days(client):
    # mod-rs SettingsData default_loan_period "56"; AbstractResponderSupplierCheckInToReshare sets dueDateRS at
    # the fill as now + 56 days, UTC, to the second (ZonedDateTime.truncatedTo(SECONDS).toString())
    client.sim("POST", "/clock", {"at": "2026-11-30T13:45:07.250Z"})
    pair = client.pair(lender_state="RES_AWAIT_PICKING")
    lender = pair["lender"]["id"]
    client.ok("west", lender, "supplierCheckInToReshare")
    filled = client.record("west", lender)
    assert filled["state"]["code"] == "RES_AWAIT_SHIP"
    assert filled["dueDateRS"] == "2027-01-25T13:45:07Z"
    assert filled["parsedDueDateRS"] == "2027-01-25T13:45:07Z"
    client.ok("west", lender, "supplierMarkShipped")
    record = client.record("east", pair["borrower"]["id"])
    assert record["dueDateRS"] == "2027-01-25T13:45:07Z"
    assert record["state"]["code"] == "REQ_SHIPPED"
    client.sim("POST", "/clock", {"at": None})


def test_a_loan_date_override_is_an_instant_and_anything_else_gets_the_default_period(client):
    # AbstractResponderSupplierCheckInToReshare: loanDateOverride parsed with ISO_INSTANT and kept as given;
    # a value that does not parse is only logged, and the default loan period applies
    client.sim("POST", "/clock", {"at": "2026-11-30T13:45:07Z"})
    given = client.pair(lender_state="RES_AWAIT_PICKING")
    client.ok(
        "west",
        given["lender"]["id"],
        "supplierCheckInToReshare",
        {"loanDateOverride": "2027-02-01T17:00:00.000Z"},
    )
    record = client.record("west", given["lender"]["id"])
    assert (record["dueDateRS"], record["parsedDueDateRS"]) == (
        "2027-02-01T17:00:00.000Z",
        "2027-02-01T17:00:00Z",
    )
    plain_date = client.pair(lender_state="RES_AWAIT_PICKING")
    client.ok(
        "west", plain_date["lender"]["id"], "supplierCheckInToReshare", {"loanDateOverride": "2027-02-01"}
    )
    assert client.record("west", plain_date["lender"]["id"])["dueDateRS"] == "2027-01-25T13:45:07Z"
    client.sim("POST", "/clock", {"at": None})


def test_lender_state_option_starts_further_along_with_a_truthful_audit(client):
    pair = client.pair(lender_state="RES_AWAIT_PICKING")
    lender = client.record("west", pair["lender"]["id"])
    assert audit_states(lender) == LENDER_HAPPY_PATH[:3]
    assert client.state("east", pair["borrower"]["id"]) == "REQ_EXPECTS_TO_SUPPLY"
    default = client.pair()
    assert client.state("west", default["lender"]["id"]) == "RES_NEW_AWAIT_PULL_SLIP"
    assert client.state("east", default["borrower"]["id"]) == "REQ_REQUEST_SENT_TO_SUPPLIER"
    # respondYes is offered from RES_IDLE only (AvailableActionData)
    assert client.act("west", default["lender"]["id"], "respondYes").status_code == 400
    client.ok("west", default["lender"]["id"], "supplierPrintPullSlip")
    assert client.state("west", default["lender"]["id"]) == "RES_AWAIT_PICKING"
    assert client.state("east", default["borrower"]["id"]) == "REQ_EXPECTS_TO_SUPPLY"


def test_multi_volume_temporary_barcodes_use_the_last_four_characters_of_the_lender_item(client):
    pair = client.pair(
        lender_state="RES_AWAIT_PICKING",
        volumes=[
            {"item_barcode": "39001000011111", "call_number": "QA76 .K5 v.1", "name": "v.1"},
            {"item_barcode": "39001000022222", "call_number": "QA76 .K5 v.2", "name": "v.2"},
            {"item_barcode": "39001000033333", "call_number": "QA76 .K5 v.3", "name": "v.3"},
        ],
    )
    lender = pair["lender"]["id"]
    # the fill action replaces the second barcode: the lender picked another copy
    client.ok(
        "west",
        lender,
        "supplierCheckInToReshare",
        {
            "itemBarcodes": [
                {"itemId": "39001000011111"},
                {"itemId": "39001000029876"},
                {"itemId": "39001000033333"},
            ]
        },
    )
    client.ok("west", lender, "supplierMarkShipped")
    borrower = client.record("east", pair["borrower"]["id"])
    assert [v["itemId"] for v in borrower["volumes"]] == [
        "39001000011111",
        "39001000029876",
        "39001000033333",
    ]
    assert [v["temporaryItemBarcode"] for v in borrower["volumes"]] == [
        "EAST-1-1111",
        "EAST-1-9876",
        "EAST-1-3333",
    ]
    assert [v["name"] for v in borrower["volumes"]] == ["v.1", "v.2", "v.3"]
    assert [v["callNumber"] for v in client.record("west", lender)["volumes"]] == [
        "QA76 .K5 v.1",
        "QA76 .K5 v.2",
        "QA76 .K5 v.3",
    ]
    found = client.get(
        "east", "/rs/patronrequests", filters="volumes.temporaryItemBarcode==EAST-1-9876", fullRecord="true"
    ).json()
    assert [record["id"] for record in found] == [pair["borrower"]["id"]]


def test_local_note_moves_the_lenders_last_updated_but_not_its_state(client):
    client.clock("2031-01-01T10:00:00Z")
    pair = client.pair()
    lender = pair["lender"]["id"]
    before = client.record("west", lender)
    client.clock("2031-01-01T10:00:05Z")
    client.ok("west", lender, "localNote", {"localNote": "Noted!"})
    after = client.record("west", lender)
    assert after["state"] == before["state"]
    assert after["localNote"] == "Noted!"
    assert after["audit"] == before["audit"]
    assert after["lastUpdated"] == "2031-01-01T10:00:05Z"
    changed = client.get("west", "/rs/patronrequests", filters="lastUpdated>=2031-01-01T10:00:01Z").json()
    assert [record["id"] for record in changed] == [lender]


def test_the_requester_has_no_local_note_and_the_simulator_only_touch_moves_its_last_updated(client):
    # mod-rs AvailableActionData: localNote is assigned to every state of MODEL_RESPONDER only
    client.clock("2031-01-01T10:00:00Z")
    b = client.pair()["borrower"]["id"]
    refused = client.act("east", b, "localNote", {"localNote": "Noted!"})
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("A valid action was not supplied, isRequester: true")
    before = client.record("east", b)
    client.clock("2031-01-01T10:00:07Z")
    touched = client.sim("POST", "/touch", {"tenant": "east", "id": b})
    assert touched.json() == {"id": b, "lastUpdated": "2031-01-01T10:00:07Z"}
    after = client.record("east", b)
    assert after["lastUpdated"] == "2031-01-01T10:00:07Z"
    assert {k: v for k, v in after.items() if k != "lastUpdated"} == {
        k: v for k, v in before.items() if k != "lastUpdated"
    }
    assert client.sim("POST", "/touch", {"tenant": "east", "id": "nope"}).status_code == 404
    assert client.sim("POST", "/touch", {"tenant": "east", "id": b, "colour": "red"}).status_code == 400


def test_message_reaches_the_partner_as_a_notification_without_a_state_change(client):
    client.clock("2031-01-01T10:00:00Z", step_ms=1000)
    pair = client.pair()
    b, lender = pair["borrower"]["id"], pair["lender"]["id"]
    lender_before = client.record("west", lender)
    client.ok("east", b, "message", {"note": "Any news?"})
    lender_after = client.record("west", lender)
    assert lender_after["state"] == lender_before["state"]
    assert lender_after["lastUpdated"] > lender_before["lastUpdated"]
    assert lender_after["notifications"][-1]["messageContent"].endswith("Any news?")


def test_changes_inside_one_second_share_its_last_updated_and_come_in_no_stable_order(client):
    # Given 10 requests all changed inside one second (mod-rs renders lastUpdated to the second)
    client.clock("2031-01-01T10:00:00Z")
    pairs = [client.pair(patron_barcode=f"P-{n}") for n in range(10)]
    headers = client.headers("west")

    def note(index: int) -> int:
        request_id = pairs[index % len(pairs)]["lender"]["id"]
        return requests.post(
            f"{client.base}/rs/patronrequests/{request_id}/performAction",
            json={"action": "localNote", "actionParams": {"localNote": str(index)}},
            headers=headers,
            timeout=5,
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(note, range(40))) == {200}

    # Then they share one lastUpdated, and a sort on it (no tie-break) orders them differently from call
    # to call: offset paging through them is not stable
    orders = set()
    for _ in range(12):
        listed = client.get("west", "/rs/patronrequests", sort="lastUpdated;asc", perPage=100).json()
        assert {record["lastUpdated"] for record in listed} == {"2031-01-01T10:00:00Z"}
        orders.add(tuple(record["id"] for record in listed))
    assert len(orders) > 1


def test_dates_in_filters_are_iso_and_a_number_fails_as_mod_rs_fails(client):
    client.clock("2031-01-01T10:00:00Z")
    pair = client.pair()
    b = pair["borrower"]["id"]
    for value in (
        "2031-01-01T10:00:00Z",
        "2031-01-01T10:00:00.000Z",
        "2031-01-01T11:00:00+01:00",
        "2031-01-01T10:00:00",
        "2031-01-01",
    ):
        found = client.get("east", "/rs/patronrequests", filters=f"lastUpdated>={value}").json()
        assert [record["id"] for record in found] == [b], value
    assert client.get("east", "/rs/patronrequests", filters="lastUpdated>2031-01-01T10:00:01Z").json() == []
    # an epoch-milliseconds number fits no Grails date format: ParseException, rendered by error.gson as 500
    refused = client.get("east", "/rs/patronrequests", filters="lastUpdated>=1924596000000")
    assert refused.status_code == 500
    body = refused.json()
    assert body["error"] == 500
    assert body["message"] == 'java.text.ParseException: Unparseable date: "1924596000000"'
    assert isinstance(body["stackTrace"], list)


def test_partner_changes_tick_the_partner_tenant_clock(client):
    client.clock("2031-01-01T10:00:00Z", step_ms=1000)
    pair = client.pair(lender_state="RES_AWAIT_SHIP")
    b = pair["borrower"]["id"]
    before = client.record("east", b)["lastUpdated"]
    client.ok("west", pair["lender"]["id"], "supplierMarkShipped")
    assert client.record("east", b)["lastUpdated"] > before


# ---------------------------------------------------------------- cancellation, unfilled, overdue, undo


def answer_cancels_by_hand(client, tenant: str = "west") -> None:
    """Turn the lender's auto_responder_cancel off (mod-rs's default is on: SettingsData)."""
    body = {"tenant": tenant, "key": "auto_responder_cancel", "value": "off"}
    assert client.sim("POST", "/settings", body).status_code == 200


def test_a_cancel_is_answered_yes_by_the_lender_itself_as_auto_responder_cancel_is_on_by_default(client):
    # mod-rs SettingsData: auto_responder_cancel "on"; EventStatusResCancelRequestReceivedIndService answers
    # yes; the borrower passes REQ_CANCELLED_WITH_SUPPLIER (requesterISO18626Cancelled) to REQ_CANCELLED
    # (requesterCancelledWithSupplierIndOK)
    settings = client.get("west", "/rs/settings/appSettings", perPage=100).json()
    assert {"key": "auto_responder_cancel", "value": "on"}.items() <= next(
        s for s in settings if s["key"] == "auto_responder_cancel"
    ).items()
    pair = client.pair(lender_state="RES_AWAIT_PICKING")
    b, lender = pair["borrower"]["id"], pair["lender"]["id"]
    client.ok("east", b, "requesterCancel", {"reason": "patron_requested"})
    assert audit_states(client.record("east", b))[-3:] == [
        "REQ_CANCEL_PENDING",
        "REQ_CANCELLED_WITH_SUPPLIER",
        "REQ_CANCELLED",
    ]
    assert client.record("east", b)["state"] == {"code": "REQ_CANCELLED", "terminal": True}
    assert audit_states(client.record("west", lender))[-2:] == [
        "RES_CANCEL_REQUEST_RECEIVED",
        "RES_CANCELLED",
    ]


def test_cancellation_accepted_cancels_both_sides(client):
    answer_cancels_by_hand(client)
    pair = client.pair(lender_state="RES_AWAIT_PICKING")
    b, lender = pair["borrower"]["id"], pair["lender"]["id"]
    client.ok("east", b, "requesterCancel", {"reason": "patron_requested", "note": "A cancellation note"})
    assert client.state("east", b) == "REQ_CANCEL_PENDING"
    assert client.state("west", lender) == "RES_CANCEL_REQUEST_RECEIVED"
    assert client.get("west", f"/rs/patronrequests/{lender}/validActions").json()["actions"] == [
        "supplierRespondToCancel",
        "manualClose",
        "message",
        "localNote",
    ]
    client.ok("west", lender, "supplierRespondToCancel", {"cancelResponse": "yes", "note": "OK"})
    assert client.record("east", b)["state"] == {"code": "REQ_CANCELLED", "terminal": True}
    assert client.record("west", lender)["state"] == {"code": "RES_CANCELLED", "terminal": True}


def test_cancellation_refused_puts_both_sides_back(client):
    answer_cancels_by_hand(client)
    pair = client.pair(lender_state="RES_AWAIT_SHIP")
    b, lender = pair["borrower"]["id"], pair["lender"]["id"]
    client.ok("east", b, "requesterCancel", {"reason": "patron_requested"})
    client.ok("west", lender, "supplierRespondToCancel", {"cancelResponse": "no", "note": "Too late"})
    assert client.state("east", b) == "REQ_EXPECTS_TO_SUPPLY"
    assert client.state("west", lender) == "RES_AWAIT_SHIP"
    client.ok("west", lender, "supplierMarkShipped")
    assert client.state("east", b) == "REQ_SHIPPED"
    bad = client.act("west", lender, "supplierRespondToCancel", {"cancelResponse": "maybe"})
    assert bad.status_code == 400


def test_cannot_supply_ends_the_borrowers_rota(client):
    pair = client.pair()
    client.ok(
        "west", pair["lender"]["id"], "supplierCannotSupply", {"reason": "missing", "note": "Cannot find it"}
    )
    assert client.record("west", pair["lender"]["id"])["state"] == {"code": "RES_UNFILLED", "terminal": True}
    borrower = client.record("east", pair["borrower"]["id"])
    assert audit_states(borrower)[-2:] == ["REQ_UNFILLED", "REQ_END_OF_ROTA"]
    assert borrower["state"]["terminal"] is True


def test_overdue_timer_moves_loans_past_their_due_date(client):
    late = client.pair(lender_state="RES_ITEM_SHIPPED", due_date="2020-01-31")
    checked_in = client.pair(lender_state="RES_ITEM_SHIPPED", due_date="2020-02-29")
    client.ok("east", checked_in["borrower"]["id"], "requesterReceived")
    on_time = client.pair(lender_state="RES_ITEM_SHIPPED", due_date="2099-01-01")
    result = client.sim("POST", "/run-overdue", {"now": "2024-06-01T00:00:00Z"}).json()
    # the received one's lender is in RES_AWAITING_RETURN_SHIPPING (responderISO18626Received), which has no
    # canTriggerOverdueRequest: only the one still RES_ITEM_SHIPPED goes overdue
    assert {ref["id"] for ref in result["lender"]} == {late["lender"]["id"]}
    assert client.state("west", late["lender"]["id"]) == "RES_OVERDUE"
    assert client.state("west", checked_in["lender"]["id"]) == "RES_AWAITING_RETURN_SHIPPING"
    assert client.state("east", late["borrower"]["id"]) == "REQ_OVERDUE"
    assert client.state("east", checked_in["borrower"]["id"]) == "REQ_CHECKED_IN"
    assert client.state("west", on_time["lender"]["id"]) == "RES_ITEM_SHIPPED"
    assert client.state("east", on_time["borrower"]["id"]) == "REQ_SHIPPED"
    # an overdue loan still comes home: the lender completes from RES_OVERDUE
    client.ok("east", late["borrower"]["id"], "requesterReceived")
    client.ok("east", late["borrower"]["id"], "patronReturnedItemAndShippedReturn")
    client.ok("west", late["lender"]["id"], "supplierCheckOutOfReshare")
    assert client.state("east", late["borrower"]["id"]) == "REQ_REQUEST_COMPLETE"
    assert client.sim("POST", "/run-overdue", {"now": "not a date"}).status_code == 400


@pytest.mark.parametrize("reading", ["RES_AWAITING_RETURN_SHIPPING", "RES_ITEM_SHIPPED"])
def test_received_moves_the_lender_as_the_lender_on_received_option_says(client, reading):
    # default: responderISO18626Received (RES_AWAITING_RETURN_SHIPPING); the other reading: RSLifecycleSpec's
    # table (the lender still RES_ITEM_SHIPPED after requesterReceived)
    assert client.sim("GET", "/options").json()["lender_on_received"] == "RES_AWAITING_RETURN_SHIPPING"
    assert client.sim("POST", "/options", {"lender_on_received": reading}).ok
    pair = client.pair(lender_state="RES_ITEM_SHIPPED")
    client.ok("east", pair["borrower"]["id"], "requesterReceived")
    assert client.state("west", pair["lender"]["id"]) == reading
    client.ok("east", pair["borrower"]["id"], "patronReturnedItemAndShippedReturn")
    assert client.state("west", pair["lender"]["id"]) == "RES_ITEM_RETURNED"
    assert client.sim("POST", "/options", {"lender_on_received": "RES_AWAITING_RETURN_SHIPPING"}).ok


def test_undo_is_offered_only_after_check_in_to_reshare(client):
    # mod-rs ActionEventData: supplierCheckInToReshare is the one action with UndoStatus.YES
    pair = client.pair(lender_state="RES_AWAIT_PICKING")
    lender = pair["lender"]["id"]
    client.ok("west", lender, "supplierCheckInToReshare")
    assert "undo" in client.get("west", f"/rs/patronrequests/{lender}/validActions").json()["actions"]
    client.ok("west", lender, "undo")
    assert client.state("west", lender) == "RES_AWAIT_PICKING"
    assert client.act("west", lender, "undo").status_code == 400
    shipped = client.pair(lender_state="RES_ITEM_SHIPPED")
    b = shipped["borrower"]["id"]
    client.ok("east", b, "requesterReceived")
    client.ok("east", b, "patronReturnedItem")
    assert "undo" not in client.get("east", f"/rs/patronrequests/{b}/validActions").json()["actions"]
    assert client.act("east", b, "undo").status_code == 400


# ---------------------------------------------------------------- every sample action body


def _sample_bodies() -> dict[str, dict[str, Any]]:
    if not SAMPLES.is_dir():
        pytest.fail(f"ReShare action samples not found at {SAMPLES}")
    return {path.stem: json.loads(path.read_text()) for path in sorted(SAMPLES.glob("*.json"))}


def _prepare(c: Client, sample: str) -> tuple[str, str]:
    """(tenant, request id) of a request in which the sample's action is valid."""
    borrower_first = {
        "manuallyMarkAvailable": {},
        "manuallyMarkSupplied": {},
        "requesterCancel": {},
        "requesterCancelDuplicate": {"borrower_state": "REQ_DUPLICATE_REVIEW"},
        "requesterApproveDuplicate": {"borrower_state": "REQ_DUPLICATE_REVIEW"},
        "requesterForceValidate": {"borrower_state": "REQ_INVALID_PATRON"},
        "requesterRetryRequest": {"borrower_state": "REQ_INVALID_PATRON"},
        "requesterLoSupCannotSupply": {"borrower_state": "REQ_LOCAL_REVIEW"},
        "requesterReceived": {"lender_state": "RES_ITEM_SHIPPED"},
    }
    if sample in borrower_first:
        return "east", c.pair(**borrower_first[sample])["borrower"]["id"]
    lender_first = {
        "supplierAnswerYes": "RES_IDLE",
        "supplierAnswerYesNoPick": "RES_IDLE",
        "supplierConditionalSupply": "RES_IDLE",
        "supplierConditionalSupplyWithCost": "RES_NEW_AWAIT_PULL_SLIP",
        "supplierAddCondition": "RES_NEW_AWAIT_PULL_SLIP",
        "supplierCannotSupply": "RES_NEW_AWAIT_PULL_SLIP",
        "supplierCannotSupplyTransfer": "RES_AWAIT_PICKING",
        "supplierPrintPullSlip": "RES_NEW_AWAIT_PULL_SLIP",
        "supplierCheckInToReshare": "RES_AWAIT_PICKING",
        "supplierFillDigitalLoan": "RES_AWAIT_PICKING",
        "supplierMarkShipped": "RES_AWAIT_SHIP",
        "supplierItemReturned": "RES_ITEM_SHIPPED",
        "localNote": "RES_NEW_AWAIT_PULL_SLIP",
    }
    if sample in lender_first:
        return "west", c.pair(lender_state=lender_first[sample])["lender"]["id"]
    pair = c.pair(lender_state="RES_ITEM_SHIPPED")
    b, lender = pair["borrower"]["id"], pair["lender"]["id"]
    if sample in ("patronReturnedItem", "patronReturnedItemAndShippedReturn", "shippedReturn"):
        c.ok("east", b, "requesterReceived")
        if sample == "shippedReturn":
            c.ok("east", b, "patronReturnedItem")
        return "east", b
    if sample == "supplierCheckOutOfReshare":
        c.ok("east", b, "requesterReceived")
        c.ok("east", b, "patronReturnedItemAndShippedReturn")
        return "west", lender
    fresh = c.pair(lender_state="RES_IDLE")
    b, lender = fresh["borrower"]["id"], fresh["lender"]["id"]
    if sample in ("requesterAgreeConditions", "requesterRejectConditions", "supplierMarkConditionsAgreed"):
        c.ok(
            "west",
            lender,
            "supplierConditionalSupply",
            {"loanCondition": "other", "note": "Library use only"},
        )
        return ("west", lender) if sample == "supplierMarkConditionsAgreed" else ("east", b)
    if sample in ("supplierRespondToCancelYes", "supplierRespondToCancelNo"):
        c.ok("east", b, "requesterCancel")
        return "west", lender
    if sample == "rerequest":
        c.ok("west", lender, "supplierCannotSupply")
        return "east", b
    if sample == "undo":
        c.ok("west", lender, "respondYes")
        c.ok("west", lender, "supplierPrintPullSlip")
        c.ok("west", lender, "supplierCheckInToReshare")
        return "west", lender
    raise AssertionError(f"no preparation for sample {sample}: add one")


#: Sample bodies whose action mod-rs's default requester/responder models do not offer (AvailableActionData):
#: SLNP non-returnable requester (manuallyMark*), CDL responder (supplierFillDigitalLoan), and itemReturned,
#: which no AvailableAction offers. The simulator refuses them where they would otherwise apply.
NOT_IN_THE_DEFAULT_MODELS = {
    "manuallyMarkAvailable",
    "manuallyMarkSupplied",
    "supplierFillDigitalLoan",
    "supplierItemReturned",
}


def test_every_sample_action_is_accepted_in_a_valid_state_and_refused_in_an_invalid_one(client):
    samples = _sample_bodies()
    assert len(samples) >= 30
    assert samples.keys() >= NOT_IN_THE_DEFAULT_MODELS
    answer_cancels_by_hand(client)  # supplierRespondToCancel needs a cancel the lender has not answered
    done = completed_pair(client)
    finished = {"east": done["borrower"]["id"], "west": done["lender"]["id"]}
    for name, body in samples.items():
        tenant, request_id = _prepare(client, name)
        action = body["action"]
        offered = client.get(tenant, f"/rs/patronrequests/{request_id}/validActions").json()["actions"]
        if name in NOT_IN_THE_DEFAULT_MODELS:
            assert action not in offered, name
            before = client.state(tenant, request_id)
            refused = client.post_action(tenant, request_id, body)
            assert refused.status_code == 400, name
            assert refused.json()["message"].startswith("A valid action was not supplied"), name
            assert client.state(tenant, request_id) == before, name
            continue
        assert action in offered, name
        accepted = client.post_action(tenant, request_id, body)
        assert accepted.status_code == 200, f"{name}: {accepted.text}"
        assert accepted.json() == {}, name  # mod-rs performAction answers the action's result map: {}
        if action == "localNote":
            continue  # valid in every responder state, terminal ones included
        refused = client.post_action(tenant, finished[tenant], body)
        assert refused.status_code == 400, name
        state = client.state(tenant, finished[tenant])
        requester = "true" if tenant == "east" else "false"
        assert refused.json() == {
            "message": f"A valid action was not supplied, isRequester: {requester} Current state: {state}, "
            f"network status: Idle Action being performed: {action}"
        }
    assert client.post_action("west", finished["west"], samples["localNote"]).status_code == 200
    assert client.post_action("east", finished["east"], samples["localNote"]).status_code == 400


def test_rerequest_creates_a_linked_successor_pair(client):
    pair = client.pair()
    client.ok("west", pair["lender"]["id"], "supplierCannotSupply")
    client.ok(
        "east", pair["borrower"]["id"], "rerequest", {"isRequester": "true", "title": "Not much to go on"}
    )
    original = client.record("east", pair["borrower"]["id"])
    successor = client.record("east", original["succeededBy"]["id"])
    assert successor["precededBy"] == {"id": original["id"]}
    assert successor["title"] == "Not much to go on"
    assert successor["hrid"] == "EAST-2"
    assert successor["state"]["code"] == "REQ_REQUEST_SENT_TO_SUPPLIER"
    assert client.act("east", original["id"], "rerequest").status_code == 400


def test_a_borrower_request_created_through_the_api_reaches_the_lender(client):
    body = json.loads((SAMPLES.parent / "create-patron-request.json").read_text())
    body.update({"pickupLocationSlug": "east-science", "id": "b6b6bc1d-7665-4063-afca-baa907b82495"})
    response = client.http.post(f"{client.base}/rs/patronrequests", json=body, headers=client.headers("east"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"] == body["id"]
    assert created["state"]["code"] == "REQ_REQUEST_SENT_TO_SUPPLIER"
    assert created["requestingInstitutionSymbol"] == "RESHARE:EAST"
    assert created["resolvedPickupLocation"]["lmsLocationCode"] == "262630"
    lender = client.get("west", "/rs/patronrequests", filters=f"hrid=={created['hrid']}").json()
    assert [record["state"]["code"] for record in lender] == ["RES_NEW_AWAIT_PULL_SLIP"]


# ---------------------------------------------------------------- list queries


def _next_second(stamp: str) -> str:
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _poll(c: Client, tenant: str, cursor: str, per_page: int) -> list[dict[str, Any]]:
    """Every request changed since `cursor`, paged with perPage/offset as the bridge's poller would."""
    seen: list[dict[str, Any]] = []
    while True:
        page = c.get(
            tenant,
            "/rs/patronrequests",
            filters=f"lastUpdated>={cursor}",
            sort="lastUpdated;asc",
            perPage=per_page,
            offset=len(seen),
        ).json()
        seen.extend(page)
        if len(page) < per_page:
            return seen


def test_polling_with_a_last_updated_cursor_sees_exactly_the_changed_requests_in_order(client):
    client.clock("2031-01-01T10:00:00Z", step_ms=1000)  # one change per second: a strict order to check
    pairs = [client.pair(patron_barcode=f"P-{n}") for n in range(40)]
    borrowers = [pair["borrower"]["id"] for pair in pairs]
    east_cursor = _next_second(
        max(r["lastUpdated"] for r in client.get("east", "/rs/patronrequests", perPage=100).json())
    )
    west_cursor = _next_second(
        max(r["lastUpdated"] for r in client.get("west", "/rs/patronrequests", perPage=100).json())
    )

    # Given 200 saves without a state change on random borrower requests (simulator-only touch: the
    # requester has no localNote), then 60 changes on 20 lender requests
    rng = random.Random(18626)
    last_note: dict[str, int] = {}
    for step in range(200):
        request_id = rng.choice(borrowers)
        assert client.sim("POST", "/touch", {"tenant": "east", "id": request_id}).status_code == 200
        last_note[request_id] = step
    messaged = pairs[:20]
    for pair in messaged:
        client.ok("west", pair["lender"]["id"], "localNote", {"localNote": "lender note"})
        client.ok("west", pair["lender"]["id"], "localNote", {"localNote": "lender note again"})
        client.ok("west", pair["lender"]["id"], "message", {"note": "hello"})

    # Then each side's poll returns exactly the changed requests, in the order of their last change
    messaged_borrowers = [pair["borrower"]["id"] for pair in messaged]
    noted_order = sorted(last_note, key=last_note.__getitem__)
    expected_east = [b for b in noted_order if b not in messaged_borrowers] + messaged_borrowers
    east = _poll(client, "east", east_cursor, 100)
    assert len(east) > 30
    assert [record["id"] for record in east] == expected_east
    stamps = [record["lastUpdated"] for record in east]
    assert stamps == sorted(set(stamps))
    west = _poll(client, "west", west_cursor, 100)
    assert [record["id"] for record in west] == [pair["lender"]["id"] for pair in messaged]
    assert {record["state"]["code"] for record in west} == {"RES_NEW_AWAIT_PULL_SLIP"}

    # And small pages give the same answer, as does a cursor moved past each page instead of an offset
    assert [record["id"] for record in _poll(client, "east", east_cursor, 7)] == expected_east
    moving, again = east_cursor, []
    while True:
        page = client.get(
            "east", "/rs/patronrequests", filters=f"lastUpdated>={moving}", sort="lastUpdated;asc", perPage=9
        ).json()
        again.extend(page)
        if len(page) < 9:
            break
        moving = _next_second(page[-1]["lastUpdated"])
    assert [record["id"] for record in again] == expected_east
    after_last = _next_second(again[-1]["lastUpdated"])
    assert client.get("east", "/rs/patronrequests", filters=f"lastUpdated>={after_last}").json() == []


def test_filters_sort_paging_and_stats(client):
    client.clock("2031-01-01T10:00:00Z", step_ms=1000)  # one change per second: dateCreated order is strict
    for n in range(12):
        client.pair(patron_barcode=f"P-{n:02d}", title=f"Title {n:02d}", lender_state="RES_AWAIT_PICKING")
    shipped = client.pair(patron_barcode="P-SHIP", title="Shipped one", lender_state="RES_ITEM_SHIPPED")
    checked_in = client.pair(patron_barcode="P-IN", title="Checked in one", lender_state="RES_ITEM_SHIPPED")
    client.ok("east", checked_in["borrower"]["id"], "requesterReceived")

    def ids(tenant: str, **params: Any) -> list[str]:
        response = client.get(tenant, "/rs/patronrequests", **params)
        assert response.status_code == 200, response.text
        return [record["id"] for record in response.json()]

    assert ids("east", filters="state.code==REQ_CHECKED_IN") == [checked_in["borrower"]["id"]]
    assert ids("east", filters=["isRequester==true", "state.code==REQ_CHECKED_IN"]) == [
        checked_in["borrower"]["id"]
    ]
    assert ids("east", filters="isRequester==false") == []
    either = ids("east", filters="state.code==REQ_CHECKED_IN||state.code==REQ_SHIPPED", sort="hrid;asc")
    assert set(either) == {checked_in["borrower"]["id"], shipped["borrower"]["id"]}
    assert ids("east", filters="title=~SHIPPED ONE") == [shipped["borrower"]["id"]]
    assert len(ids("east", filters="state.code!=REQ_EXPECTS_TO_SUPPLY", perPage=100)) == 2
    assert len(ids("east", filters="dueDateRS isNull", perPage=100)) == 12
    assert len(ids("east", filters="dueDateRS isNotNull", perPage=100)) == 2
    assert ids("west", filters="isRequester==false", sort="hrid;asc", perPage=3) == ids(
        "west", filters="isRequester==false", sort="hrid;asc", perPage=3, page=1
    )

    # default page size 10, stats wrapper
    assert len(ids("east")) == 10
    stats = client.get("east", "/rs/patronrequests", stats="true", perPage=5, offset=10).json()
    assert stats["totalRecords"] == stats["total"] == 14
    assert stats["totalPages"] == 3 and stats["page"] == 3 and stats["pageSize"] == 5
    assert stats["meta"] == {}
    assert len(stats["results"]) == 4

    # sorting: hrid, dateCreated, desc; no tie-break (rows equal on the sort key in no stable order)
    hrids = [r["hrid"] for r in client.get("east", "/rs/patronrequests", sort="hrid;asc", perPage=100).json()]
    assert hrids == sorted(hrids)
    created = client.get("east", "/rs/patronrequests", sort="dateCreated;asc", perPage=100).json()
    assert [r["hrid"] for r in created] == [f"EAST-{n}" for n in range(1, 15)]
    newest = client.get("east", "/rs/patronrequests", sort="lastUpdated;desc", perPage=1).json()
    assert newest[0]["id"] == checked_in["borrower"]["id"]
    by_state = client.get("east", "/rs/patronrequests", sort="state.code;asc", perPage=100).json()
    for left, right in itertools.pairwise(by_state):
        assert left["state"]["code"] <= right["state"]["code"]

    # perPage is clamped to 100 (not refused), an offset becomes a whole page, term without match is ignored
    assert len(ids("east", perPage=500)) == 14
    assert ids("east", sort="hrid;asc", perPage=5, offset=7) == ids(
        "east", sort="hrid;asc", perPage=5, page=2
    )
    assert len(ids("east", term="Shipped one", perPage=100)) == 14
    assert ids("east", term="Shipped one", match="title") == [shipped["borrower"]["id"]]

    # ISO date-times and dates
    assert len(ids("east", filters="dateCreated>=2000-01-01T00:00:00Z", perPage=100)) == 14
    assert ids("east", filters="lastUpdated<2000-01-01") == []


def test_list_records_are_full_records_less_what_the_gson_view_excludes(client):
    pair = client.pair(lender_state="RES_ITEM_SHIPPED")
    listed = client.get("east", "/rs/patronrequests").json()[0]
    full = client.record("east", pair["borrower"]["id"])
    # mod-rs views/patronRequest/_patronRequest.gson: lists render every scalar and the volumes too, and
    # leave out audit, notifications, conditions, resolvedPickupLocation, networkStatus, ...
    assert set(full) - set(listed) == {
        "audit",
        "notifications",
        "conditions",
        "resolvedPickupLocation",
        "networkStatus",
    }
    assert {key: listed[key] for key in listed} == {key: full[key] for key in listed}
    assert len(listed["volumes"]) == 1
    for key in ("lastUpdated", "dateCreated", "parsedDueDateRS"):
        assert ISO_SECOND.fullmatch(listed[key]), key
    assert "_ms" not in listed
    # fullRecord=true lists full records
    assert client.get("east", "/rs/patronrequests", fullRecord="true").json()[0] == full
    assert set(full["volumes"][0]) == {"id", "name", "itemId", "temporaryItemBarcode", "callNumber", "status"}
    assert set(full["resolvedPickupLocation"]) == {"id", "name", "lmsLocationCode"}
    annex = client.pair(pickup_location_slug="east-annex")
    assert client.record("east", annex["borrower"]["id"])["resolvedPickupLocation"]["lmsLocationCode"] is None


def test_settings_endpoint_filters_on_key(client):
    settings = client.get("east", "/rs/settings/appSettings", filters="key==host_lms_integration").json()
    assert len(settings) == 1
    setting = settings[0]
    assert {k: setting[k] for k in ("section", "key", "settingType", "value")} == {
        "section": "hostLMSIntegration",
        "key": "host_lms_integration",
        "settingType": "Refdata",
        "value": "manual",
    }
    assert setting["id"]
    client.sim(
        "POST",
        "/tenants",
        {
            "tenant": "north",
            "symbol": "RESHARE:NORTH",
            "username": "bridge",
            "password": "north-password",
            "settings": {"host_lms_integration": "wms2", "check_in_on_return": "off"},
            "pickup_locations": [{"slug": "north-main", "name": "North", "lmsLocationCode": "111"}],
        },
    )
    client.login("north", "north-password")
    north = client.get("north", "/rs/settings/appSettings").json()
    assert {s["key"]: s["value"] for s in north} == {
        "host_lms_integration": "wms2",
        "check_in_on_return": "off",
        "auto_responder_cancel": "on",  # every mod-rs tenant has it (SettingsData)
    }
    only = client.get("north", "/rs/settings/appSettings", filters="key==host_lms_integration").json()
    assert [s["value"] for s in only] == ["wms2"]
    pair = client.pair(borrower_tenant="north", lender_tenant="east", pickup_location_slug="north-main")
    assert pair["hrid"] == "1"  # no request_id_prefix: the sequence number alone (NewRequestService)


# ---------------------------------------------------------------- faults


def test_faults_http_error_latency_and_listing(client):
    fault = client.sim(
        "POST", "/faults", {"path_prefix": "/rs/patronrequests", "kind": "http_error", "status": 503}
    )
    assert fault.status_code == 201
    assert len(client.sim("GET", "/faults").json()) == 1
    assert client.get("east", "/rs/patronrequests").status_code == 503
    assert client.get("east", "/rs/patronrequests").status_code == 200
    assert client.sim("GET", "/faults").json() == []

    client.sim("POST", "/faults", {"path_prefix": "*", "method": "GET", "kind": "latency", "latency_ms": 300})
    started = time.monotonic()
    assert client.get("east", "/rs/patronrequests").status_code == 200
    assert time.monotonic() - started >= 0.3

    client.sim("POST", "/faults", {"path_prefix": "/rs", "kind": "http_error", "status": 500, "times": -1})
    assert [client.get("east", "/rs/patronrequests").status_code for _ in range(3)] == [500, 500, 500]
    assert client.sim("DELETE", "/faults").json() == {"cleared": 1}
    assert client.get("east", "/rs/patronrequests").status_code == 200
    calls = client.sim("GET", "/calls").json()
    assert [call["status"] for call in calls if call.get("fault") == "http_error"] == [503, 500, 500, 500]


def test_fault_expire_token_then_login_again(client):
    client.login("east")
    client.sim("POST", "/faults", {"path_prefix": "/rs/patronrequests", "kind": "expire_token"})
    assert client.get("east", "/rs/patronrequests").status_code == 401
    assert client.get("east", "/rs/patronrequests").status_code == 401  # the token stays expired
    client.login("east")
    assert client.get("east", "/rs/patronrequests").status_code == 200


def test_fault_drop_response_applies_the_action_but_never_answers(client):
    pair = client.pair(lender_state="RES_ITEM_SHIPPED")
    b = pair["borrower"]["id"]
    client.sim(
        "POST", "/faults", {"path_prefix": "/rs/patronrequests", "method": "POST", "kind": "drop_response"}
    )
    with pytest.raises(requests.ConnectionError):
        client.act("east", b, "requesterReceived")
    assert client.state("east", b) == "REQ_CHECKED_IN"
    retried = client.act("east", b, "requesterReceived")
    assert retried.status_code == 400  # the retry of a lost answer is refused: the bridge must re-read


def test_fault_timeout_holds_the_call_and_does_not_process_it(client):
    pair = client.pair(lender_state="RES_ITEM_SHIPPED")
    b = pair["borrower"]["id"]
    client.sim(
        "POST", "/faults", {"path_prefix": "/rs/", "method": "POST", "kind": "timeout", "timeout_s": 2}
    )
    headers = client.headers("east")
    with pytest.raises(requests.Timeout):
        requests.post(
            f"{client.base}/rs/patronrequests/{b}/performAction",
            json={"action": "requesterReceived", "actionParams": {}},
            headers=headers,
            timeout=0.4,
        )
    assert client.state("east", b) == "REQ_SHIPPED"


# ---------------------------------------------------------------- bad input


def _raw(
    sim: ReShareSimulator, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if "Content-Length" not in (headers or {}):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        payload = response.read()
        if payload:
            json.loads(payload)  # every answer is JSON
        return response.status
    finally:
        connection.close()


def test_bad_input_answers_4xx_json_and_the_server_keeps_serving(sim, client):
    pair = client.pair()
    b = pair["borrower"]["id"]
    auth = client.headers("east")
    url = f"{client.base}/rs/patronrequests"
    action_url = f"{url}/{b}/performAction"
    h = client.http
    json_headers = {**auth, "Content-Type": "application/json"}
    cases: dict[str, requests.Response | int] = {
        "malformed JSON": h.post(action_url, data=b"{not json", headers=json_headers),
        "invalid UTF-8": h.post(action_url, data=b'{"action": "\xff"}', headers=json_headers),
        "wrong content type": h.post(
            action_url, data=b'{"action":"localNote"}', headers={**auth, "Content-Type": "text/plain"}
        ),
        "body is a list": h.post(action_url, json=["localNote"], headers=auth),
        "empty body": h.post(action_url, headers=auth),
        "missing action": h.post(action_url, json={"actionParams": {}}, headers=auth),
        "action not a string": h.post(action_url, json={"action": 7}, headers=auth),
        "unknown action": h.post(action_url, json={"action": "teleport"}, headers=auth),
        "actionParams not an object": h.post(
            action_url, json={"action": "localNote", "actionParams": [1]}, headers=auth
        ),
        "unknown id": h.post(f"{url}/no-such-id/performAction", json={"action": "localNote"}, headers=auth),
        "unknown id GET": h.get(f"{url}/no-such-id", headers=auth),
        "bad filter syntax": h.get(url, params={"filters": "state.code"}, headers=auth),
        "bad operator": h.get(url, params={"filters": "title~x"}, headers=auth),
        "unknown filter field": h.get(url, params={"filters": "colour==red"}, headers=auth),
        "bad boolean": h.get(url, params={"filters": "isRequester==maybe"}, headers=auth),
        "empty filter": h.get(url, params={"filters": ""}, headers=auth),
        "perPage not a number": h.get(url, params={"perPage": "ten"}, headers=auth),
        "negative offset": h.get(url, params={"offset": -1}, headers=auth),
        "unknown sort field": h.get(url, params={"sort": "colour;asc"}, headers=auth),
        "bad sort direction": h.get(url, params={"sort": "lastUpdated;sideways"}, headers=auth),
        "bad stats flag": h.get(url, params={"stats": "maybe"}, headers=auth),
        "unknown tenant": h.get(url, headers={**auth, "X-Okapi-Tenant": "atlantis"}),
        "missing tenant header": h.get(url, headers={"X-Okapi-Token": auth["X-Okapi-Token"]}),
        "unknown endpoint": h.get(f"{client.base}/rs/unicorns", headers=auth),
        "wrong method": h.delete(url, headers=auth),
        "huge body": h.post(action_url, data=b"x" * (1024 * 1024 + 10), headers=json_headers),
        "login body not JSON": h.post(
            f"{client.base}/authn/login", data=b"user=bridge", headers={"X-Okapi-Tenant": "east"}
        ),
        "sim request unknown slug": client.sim(
            "POST", "/requests", {"title": "x", "patron_barcode": "p", "pickup_location_slug": "nowhere"}
        ),
        "sim request unknown field": client.sim(
            "POST",
            "/requests",
            {"title": "x", "patron_barcode": "p", "pickup_location_slug": "east-main", "x": 1},
        ),
        "sim request bad volumes": client.sim(
            "POST",
            "/requests",
            {"title": "x", "patron_barcode": "p", "pickup_location_slug": "east-main", "volumes": 3},
        ),
        "sim request bad due date": client.sim(
            "POST",
            "/requests",
            {
                "title": "x",
                "patron_barcode": "p",
                "pickup_location_slug": "east-main",
                "due_date": "31/12/2026",
            },
        ),
        "sim fault bad kind": client.sim("POST", "/faults", {"kind": "meteor"}),
        "sim tenant bad name": client.sim("POST", "/tenants", {"tenant": "../etc", "symbol": "X"}),
        "sim login mode bad": client.sim("POST", "/login-mode", {"mode": "sometimes"}),
        "path traversal": _raw(sim, "GET", "/rs/patronrequests/../settings/appSettings", headers=auth),
        "encoded path traversal": _raw(sim, "GET", "/rs/%2e%2e/_sim/requests", headers=auth),
        "bad Content-Length": _raw(
            sim,
            "POST",
            f"/rs/patronrequests/{b}/performAction",
            headers={**json_headers, "Content-Length": "lots"},
        ),
        "unknown HTTP method": _raw(sim, "BREW", "/rs/patronrequests", headers=auth),
        "chunked body": _raw(sim, "POST", "/_sim/requests", headers={"Transfer-Encoding": "chunked"}),
    }
    statuses = {name: (case if isinstance(case, int) else case.status_code) for name, case in cases.items()}
    assert len(statuses) >= 15
    wrong = {name: status for name, status in statuses.items() if not 400 <= status < 500}
    assert wrong == {}
    assert statuses["huge body"] == 413
    assert statuses["wrong content type"] == 415
    assert statuses["unknown id"] == 400  # performAction: "Unable to find request with id: ..."
    assert cases["unknown id"].json() == {"message": "Unable to find request with id: no-such-id"}
    assert statuses["unknown id GET"] == 404
    assert statuses["missing tenant header"] == 400
    assert statuses["wrong method"] == 405
    for name, case in cases.items():
        if isinstance(case, requests.Response):
            assert case.headers["Content-Type"] == "application/json", name
            assert case.json(), name

    # still serving, and nothing was changed by the bad calls
    assert client.record("east", b)["state"]["code"] == "REQ_REQUEST_SENT_TO_SUPPLIER"
    assert client.get("east", "/rs/patronrequests").status_code == 200
    assert all(
        call["status"] == "dropped" or call["status"] < 500 for call in client.sim("GET", "/calls").json()
    )


# ---------------------------------------------------------------- the command line


def test_cli_serves_the_demo_and_stops_on_ctrl_c():
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.reshare", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line, line + process.stderr.read()
        url = line.split()[3]
        tenants = requests.get(f"{url}/_sim/tenants", timeout=5).json()
        assert sorted(t["tenant"] for t in tenants) == ["east", "west"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


# ---------------------------------------------------------------- issue 13: mod-rs's answers, busy, overdue


def test_a_request_waiting_for_its_partner_is_busy_not_refused(client):
    # mod-rs ActionService: while networkStatus is Waiting or Retry, validActions is [] and performAction is
    # 400 "Unable to perform action as we are waiting for existing network activity to complete"
    pair = client.pair(lender_state="RES_AWAIT_SHIP")
    lender = pair["lender"]["id"]
    assert client.sim("POST", "/options", {"network_busy_ms": 60_000}).ok
    client.ok("west", lender, "supplierMarkShipped")  # the Loaned message leaves the lender waiting
    before = client.record("west", lender)
    assert before["networkStatus"] == "Waiting"
    assert client.get("west", f"/rs/patronrequests/{lender}/validActions").json() == {"actions": []}
    busy = client.act("west", lender, "message", {"note": "hello"})
    assert busy.status_code == 400
    assert busy.json() == {
        "message": "Unable to perform action as we are waiting for existing network activity to complete"
        ", network status: Waiting, Action being performed: message"
    }
    after = client.record("west", lender)
    assert after["state"] == before["state"]
    assert after["audit"][-1]["message"] == busy.json()["message"]  # audited and saved, state unchanged
    # the fault switch: Retry for a while, then idle again
    assert client.sim(
        "POST", "/network", {"tenant": "west", "id": lender, "status": "Retry", "for_ms": 60_000}
    ).ok
    assert "network status: Retry" in client.act("west", lender, "message", {"note": "x"}).json()["message"]
    assert client.sim(
        "POST", "/network", {"tenant": "west", "id": lender, "status": "Waiting", "for_ms": 0}
    ).ok
    assert client.record("west", lender)["networkStatus"] == "Idle"
    assert client.ok("west", lender, "message", {"note": "hello"}) == {}
    assert client.sim("POST", "/options", {"network_busy_ms": 0}).ok


def test_unknown_ids_answer_as_mod_rs_does(client):
    # PatronRequestController.validActions: 200 {actions: [], message}; performAction: 400 {message}
    assert client.get("east", "/rs/patronrequests/nope/validActions").json() == {
        "actions": [],
        "message": "Unable to locate request",
    }
    refused = client.act("east", "nope", "localNote", {"localNote": "x"})
    assert refused.status_code == 400
    assert refused.json() == {"message": "Unable to find request with id: nope"}


def test_only_the_lender_has_an_overdue_timer_and_its_message_moves_the_borrower_on_every_loan_state(client):
    # TimerCheckForOverdueSupplierRequestsService: lender in RES_ITEM_SHIPPED, due before the start of today
    shipped = client.pair(lender_state="RES_ITEM_SHIPPED", due_date="2024-05-30")
    returning = client.pair(lender_state="RES_ITEM_SHIPPED", due_date="2024-05-30")
    # the reading in which the lender stays RES_ITEM_SHIPPED after "Received" (lender_on_received)
    assert client.sim("POST", "/options", {"lender_on_received": "RES_ITEM_SHIPPED"}).ok
    client.ok("east", returning["borrower"]["id"], "requesterReceived")
    client.ok("east", returning["borrower"]["id"], "patronReturnedItem")
    sent_back = client.pair(lender_state="RES_ITEM_SHIPPED", due_date="2024-05-30")
    client.ok("east", sent_back["borrower"]["id"], "requesterReceived")
    client.ok("east", sent_back["borrower"]["id"], "patronReturnedItemAndShippedReturn")  # lender: returned
    due_today = client.pair(lender_state="RES_ITEM_SHIPPED", due_date="2024-06-01")
    result = client.sim("POST", "/run-overdue", {"now": "2024-06-01T15:00:00Z"}).json()
    assert {ref["id"] for ref in result["lender"]} == {shipped["lender"]["id"], returning["lender"]["id"]}
    assert client.state("east", shipped["borrower"]["id"]) == "REQ_OVERDUE"
    assert (
        client.state("east", returning["borrower"]["id"]) == "REQ_OVERDUE"
    )  # from REQ_AWAITING_RETURN_SHIPPING
    # no timer for RES_ITEM_RETURNED, and none on the borrower side: that borrower stays where it is
    assert client.state("west", sent_back["lender"]["id"]) == "RES_ITEM_RETURNED"
    assert client.state("east", sent_back["borrower"]["id"]) == "REQ_SHIPPED_TO_SUPPLIER"
    assert client.state("west", due_today["lender"]["id"]) == "RES_ITEM_SHIPPED"  # due today is not overdue


def test_hrids_are_the_prefix_and_the_sequence_with_no_separator(client):
    client.sim(
        "POST",
        "/tenants",
        {
            "tenant": "south",
            "symbol": "RESHARE:SOUTH",
            "username": "bridge",
            "password": "south-password",
            "settings": {"host_lms_integration": "manual", "request_id_prefix": "SO"},
            "pickup_locations": [{"slug": "south-main", "name": "South", "lmsLocationCode": "222"}],
        },
    )
    first = client.pair(borrower_tenant="south", lender_tenant="west", pickup_location_slug="south-main")
    second = client.pair(borrower_tenant="south", lender_tenant="west", pickup_location_slug="south-main")
    assert (first["hrid"], second["hrid"]) == ("SO1", "SO2")  # NewRequestService.generateHrid
    client.login("south", "south-password")
    # the temp-barcode rule still holds: hrid alone for one volume
    client.ok("west", first["lender"]["id"], "supplierPrintPullSlip")
    client.ok("west", first["lender"]["id"], "supplierCheckInToReshareAndSupplierMarkShipped")
    assert [
        v["temporaryItemBarcode"] for v in client.record("south", first["borrower"]["id"])["volumes"]
    ] == ["SO1"]


def test_filters_follow_web_toolkit_s_grammar(client):
    # SimpleLookupWtk.g4: ! binds tightest, then &&, then ||; parentheses; <> is !=; =i=, =~; isEmpty/isNull
    client.clock("2031-01-01T10:00:00Z", step_ms=1000)
    shipped = client.pair(patron_barcode="P-A", title="Alpha", lender_state="RES_ITEM_SHIPPED")
    waiting = client.pair(patron_barcode="P-B", title="Beta", lender_state="RES_AWAIT_PICKING")
    received = client.pair(patron_barcode="P-C", title="Gamma", lender_state="RES_ITEM_SHIPPED")
    client.ok("east", received["borrower"]["id"], "requesterReceived")
    s, w, c = (p["borrower"]["id"] for p in (shipped, waiting, received))

    def ids(*filters: str) -> set[str]:
        response = client.get("east", "/rs/patronrequests", filters=list(filters), perPage=100)
        assert response.status_code == 200, response.text
        return {record["id"] for record in response.json()}

    assert ids("state.code==REQ_SHIPPED||state.code==REQ_CHECKED_IN") == {s, c}
    assert ids("isRequester==true&&state.code==REQ_SHIPPED") == {s}
    assert ids("!state.code==REQ_SHIPPED") == {w, c}
    assert ids("state.code<>REQ_SHIPPED") == {w, c}
    assert ids("title==Alpha||title==Beta&&state.code==REQ_SHIPPED") == {s}  # && before ||
    assert ids("(title==Alpha||title==Beta)&&state.code==REQ_EXPECTS_TO_SUPPLY") == {w}
    assert ids("!(title==Alpha||title==Beta)") == {c}
    assert ids("title=i=gamma") == {c}
    assert ids("title=~amm") == {c}
    assert ids("dueDateRS isEmpty") == {w}
    assert ids("dueDateRS isNotEmpty", "patronIdentifier=P-A") == {s}
    assert ids("volumes.itemId isNotNull") == {s, c}  # the borrower has volumes once shipped
    assert ids("title==Alpha", "title==Beta") == set()  # filters are ANDed
    # a query the simulator cannot read is refused, never answered with wrong rows
    for bad_filter in ("(title==Alpha", "title==Alpha)", "title==Alpha&&", "&&title==Alpha", "colour==red"):
        assert client.get("east", "/rs/patronrequests", filters=bad_filter).status_code == 400, bad_filter
