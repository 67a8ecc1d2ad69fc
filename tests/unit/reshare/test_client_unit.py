"""ReShareClient against a tiny local HTTP server this test controls: paging, login and error mapping."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from illbridge.config.library import ReShareSettings
from illbridge.errors import (
    ReShareActionRejected,
    ReShareAuthError,
    ReShareBusy,
    ReShareError,
    ReShareNotFound,
    ReShareOutcomeUnknown,
    ReShareProtocolError,
    ReShareUnavailable,
)
from illbridge.reshare import ReShareClient
from illbridge.reshare.client import Listing

TENANT = "east"
PASSWORD = "s3cret-east-password"
START_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
_TIES = random.Random()


def iso_s(ms: int) -> str:
    """How mod-rs renders a date: ISO-8601 UTC to the second."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the fake ReShare -----------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


Script = Reply | Callable[[Call], Reply | None]


class FakeReShare:
    """Just enough of mod-rs + Okapi: login (both styles), list with filters, get, actions, settings."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.records: list[dict[str, Any]] = []
        self.clock = START_MS
        self.login_mode = "both"  # or "legacy-only"
        self.valid_tokens: set[str] = set()
        self.token_ttl = timedelta(minutes=10)
        self.scripted: dict[tuple[str, str], list[Script]] = {}
        self.after_list: Callable[[int], None] | None = None
        self.list_calls = 0
        self.settings = [{"key": "host_lms_integration", "value": "manual", "defValue": "none"}]
        self._tokens = 0
        self._lock = threading.Lock()

    # -- data (each change one second after the previous one unless same_time; dates render to the second)
    def add(self, count: int, *, is_requester: bool = True, same_time: bool = False) -> list[str]:
        ids = []
        for _ in range(count):
            if not same_time or not self.records:
                self.clock += 1000
            rid = f"req-{len(self.records) + 1:04d}"
            self.records.append(
                {
                    "id": rid,
                    "hrid": f"EAST-{len(self.records) + 1}",
                    "isRequester": is_requester,
                    "state": {"code": "REQ_SHIPPED", "terminal": False},
                    "lastUpdated": iso_s(self.clock),
                    "_ms": self.clock,
                    "futureField": {"kept": True},
                }
            )
            ids.append(rid)
        return ids

    def touch(self, rid: str) -> None:
        self.clock += 1000
        record = next(r for r in self.records if r["id"] == rid)
        record["lastUpdated"], record["_ms"] = iso_s(self.clock), self.clock

    def script(self, method: str, path: str, *replies: Script) -> None:
        self.scripted.setdefault((method, path), []).extend(replies)

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    # -- the list, as mod-rs pages it (by offset over the sorted, filtered list)
    def list_page(self, filters: list[str], offset: int, per_page: int) -> list[dict[str, Any]]:
        rows = list(self.records)
        for f in filters:
            if f.startswith("isRequester=="):
                wanted = f.split("==", 1)[1] == "true"
                rows = [r for r in rows if r["isRequester"] is wanted]
            elif f.startswith("lastUpdated>="):  # mod-rs takes ISO-8601 only (application.yml dateFormats)
                since = datetime.strptime(f.split(">=", 1)[1], "%Y-%m-%dT%H:%M:%S%z")
                rows = [r for r in rows if r["_ms"] >= since.timestamp() * 1000]
            else:
                raise AssertionError(f"unexpected filter {f}")
        _TIES.shuffle(rows)  # no tie-break in mod-rs's sort
        rows.sort(key=lambda r: r["_ms"])
        page = [{k: v for k, v in r.items() if k != "_ms"} for r in rows[offset : offset + per_page]]
        self.list_calls += 1
        if self.after_list:
            self.after_list(self.list_calls)
        return page

    # -- HTTP
    def dispatch(self, call: Call) -> Reply:
        with self._lock:
            self.calls.append(call)
            queue = self.scripted.get((call.method, call.path))
            while queue:
                scripted = queue.pop(0)
                reply = scripted(call) if callable(scripted) else scripted
                if reply is not None:
                    return reply
            return self._default(call)

    def _default(self, call: Call) -> Reply:
        if call.path.startswith("/authn/"):
            return self._login(call)
        if call.headers.get("X-Okapi-Token") not in self.valid_tokens:
            return Reply(401, b"Invalid token", [("Content-Type", "text/plain")])
        if call.headers.get("X-Okapi-Tenant") != TENANT:
            return Reply(400, b"no tenant")
        parts = call.path.strip("/").split("/")
        if call.method == "GET" and call.path == "/rs/patronrequests":
            page = self.list_page(
                call.query.get("filters", []),
                int(call.query.get("offset", ["0"])[0]),
                int(call.query.get("perPage", ["10"])[0]),
            )
            return Reply(200, page)
        if call.method == "GET" and call.path == "/rs/settings/appSettings":
            key = call.query["filters"][0].split("==", 1)[1]
            return Reply(200, [s for s in self.settings if s["key"] == key])
        if parts[:2] == ["rs", "patronrequests"] and len(parts) >= 3:
            record = next((r for r in self.records if r["id"] == parts[2]), None)
            if record is None:
                return Reply(404, {"message": f"no request {parts[2]}"})
            if len(parts) == 3 and call.method == "GET":
                return Reply(200, {k: v for k, v in record.items() if k != "_ms"} | {"volumes": []})
            if parts[3:] == ["validActions"]:
                return Reply(200, {"actions": ["requesterReceived", "message"]})
            if parts[3:] == ["performAction"] and call.method == "POST":
                self.touch(record["id"])
                return Reply(200, {"status": True})
        return Reply(404, b"no route")

    def _login(self, call: Call) -> Reply:
        if call.path == "/authn/login-with-expiry" and self.login_mode == "legacy-only":
            return Reply(404, b"No suitable module found for path /authn/login-with-expiry")
        body = call.json()
        if call.headers.get("X-Okapi-Tenant") != TENANT or body != {
            "username": "bridge",
            "password": PASSWORD,
        }:
            return Reply(422, {"errors": [{"message": "Password does not match"}]})
        self._tokens += 1
        token = f"token-{self._tokens}-abcdefghijklmnop"
        self.valid_tokens.add(token)
        if call.path == "/authn/login":
            return Reply(201, {"username": "bridge"}, [("x-okapi-token", token)])
        expires = datetime.now(UTC) + self.token_ttl
        return Reply(
            201,
            {"accessTokenExpiration": expires.isoformat(), "refreshTokenExpiration": expires.isoformat()},
            [
                (
                    "Set-Cookie",
                    f"folioAccessToken={token}; Max-Age=600; Path=/; Secure; HttpOnly; SameSite=None",
                ),
                ("Set-Cookie", "folioRefreshToken=refresh-xyz; Max-Age=600; Path=/authn; Secure; HttpOnly"),
            ],
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffer the answer so headers and body leave in one write (flushed after each request): two small
    # writes on a kept-alive connection meet Nagle + delayed ACK and cost 40 ms a call.
    wbufsize = -1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        url = urlsplit(self.path)
        call = Call(
            self.command,
            url.path,
            parse_qs(url.query),
            dict(self.headers.items()),
            self.rfile.read(length) if length else b"",
        )
        reply = self.server.fake.dispatch(call)  # type: ignore[attr-defined]
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-type" for name, _ in reply.headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left: nothing to report


@pytest.fixture
def fake() -> Iterator[FakeReShare]:
    fake = FakeReShare()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield fake
    server.shutdown()
    server.server_close()


def settings_for(base_url: str, password: str = PASSWORD) -> ReShareSettings:
    return ReShareSettings(
        base_url=base_url, tenant=TENANT, username="bridge", password=password, symbol="RESHARE:EAST"
    )


@pytest.fixture
def client(fake: FakeReShare) -> Iterator[ReShareClient]:
    client = ReShareClient(settings_for(fake.base_url), timeout=(1, 2), read_retries=2, backoff=0)  # type: ignore[attr-defined]
    yield client
    client.close()


def ids(requests: Any) -> list[str]:
    return [r.id for r in requests]


# --- login ----------------------------------------------------------------------------------------------


def test_logs_in_lazily_with_the_cookie_token_and_sends_the_okapi_headers(fake, client):
    # Given a client that has made no call yet
    assert fake.calls == []
    fake.add(1)

    # When it makes its first call
    client.get_request("req-0001")

    # Then it logged in with the tenant header and the credentials, took the token from the cookie, and sent
    # every Okapi header (but no token cookie) on the call itself
    login, get = fake.calls
    assert (login.method, login.path) == ("POST", "/authn/login-with-expiry")
    assert login.headers["X-Okapi-Tenant"] == TENANT
    assert login.json() == {"username": "bridge", "password": PASSWORD}
    assert get.headers["X-Okapi-Token"] == "token-1-abcdefghijklmnop"
    assert get.headers["X-Okapi-Tenant"] == TENANT
    assert get.headers["Content-Type"] == "application/json"
    assert get.headers["Accept"] == "application/json"
    assert "folioAccessToken" not in get.headers.get("Cookie", "")


def test_falls_back_to_the_legacy_login_and_remembers_it(fake, client):
    # Given an older Okapi without /authn/login-with-expiry (token in the x-okapi-token header)
    fake.login_mode = "legacy-only"
    fake.add(1)

    # When the client calls, and later must log in again
    client.get_request("req-0001")
    client.login()

    # Then it tried the new login once, then used the legacy one, and went straight to it the second time
    logins = [c.path for c in fake.calls if c.path.startswith("/authn/")]
    assert logins == ["/authn/login-with-expiry", "/authn/login", "/authn/login"]
    assert fake.calls_to("GET", "/rs/patronrequests/req-0001")[0].headers["X-Okapi-Token"] == (
        "token-1-abcdefghijklmnop"
    )


@pytest.mark.parametrize("status", [401, 422])
def test_refused_login_is_an_auth_error(fake, status):
    # Given ReShare refuses the service user's credentials
    fake.script("POST", "/authn/login-with-expiry", Reply(status, {"errors": [{"message": "Bad password"}]}))
    client = ReShareClient(settings_for(fake.base_url), backoff=0)

    # When the client makes a call, Then it raises ReShareAuthError and sends nothing else
    with pytest.raises(ReShareAuthError, match="Bad password"):
        client.get_request("req-0001")
    assert [c.path for c in fake.calls] == ["/authn/login-with-expiry"]


def test_wrong_password_against_the_default_login(fake):
    # Given a wrong password, When logging in, Then ReShareAuthError
    client = ReShareClient(settings_for(fake.base_url, password="wrong"), backoff=0)
    with pytest.raises(ReShareAuthError, match="Password does not match"):
        client.login()


def test_a_401_logs_in_again_once_and_repeats_the_call_once(fake, client):
    # Given a logged-in client whose token ReShare has since forgotten
    fake.add(1)
    client.get_request("req-0001")
    fake.valid_tokens.clear()

    # When it calls again
    record = client.get_request("req-0001")

    # Then it logged in again and the repeated call succeeded with the new token
    assert record.id == "req-0001"
    gets = fake.calls_to("GET", "/rs/patronrequests/req-0001")
    assert [g.headers["X-Okapi-Token"] for g in gets] == [
        "token-1-abcdefghijklmnop",
        "token-1-abcdefghijklmnop",
        "token-2-abcdefghijklmnop",
    ]
    assert len(fake.calls_to("POST", "/authn/login-with-expiry")) == 2


def test_a_second_401_is_an_auth_error(fake, client):
    # Given ReShare answers 401 to every call, even with a fresh token
    fake.add(1)
    fake.script("GET", "/rs/patronrequests/req-0001", *[Reply(401, b"nope")] * 5)

    # When the client calls, Then ReShareAuthError after exactly one re-login and one repeat
    with pytest.raises(ReShareAuthError):
        client.get_request("req-0001")
    assert len(fake.calls_to("GET", "/rs/patronrequests/req-0001")) == 2
    assert len(fake.calls_to("POST", "/authn/login-with-expiry")) == 2


def test_a_401_on_an_action_repeats_it_once_and_it_is_applied_once(fake, client):
    # Given the token expired (Okapi refuses with 401 before mod-rs sees the action)
    fake.add(1)
    fake.script("POST", "/rs/patronrequests/req-0001/performAction", Reply(401, b"expired"))

    # When the client performs an action
    client.perform_action("req-0001", "requesterReceived")

    # Then it was sent twice (refused, then accepted) and ReShare applied it once
    assert len(fake.calls_to("POST", "/rs/patronrequests/req-0001/performAction")) == 2
    assert fake.records[0]["_ms"] == START_MS + 2000


def test_a_token_about_to_expire_is_renewed_before_use(fake, client):
    # Given tokens that expire within the renewal margin
    fake.token_ttl = timedelta(seconds=5)
    fake.add(1)

    # When the client calls twice
    client.get_request("req-0001")
    client.get_request("req-0001")

    # Then it logged in before each call rather than waiting for a 401
    assert [c.path for c in fake.calls] == [
        "/authn/login-with-expiry",
        "/rs/patronrequests/req-0001",
        "/authn/login-with-expiry",
        "/rs/patronrequests/req-0001",
    ]


def test_neither_password_nor_token_is_logged_in_full(fake, client, caplog):
    # Given a client that logs in (once by cookie, once again after a 401)
    caplog.set_level("DEBUG")
    fake.add(1)
    client.get_request("req-0001")
    fake.valid_tokens.clear()
    client.get_request("req-0001")

    # Then the logs (messages and every extra field) never show the password or a whole token, but do show
    # the masked token
    logs = "\n".join(repr(vars(record)) for record in caplog.records)
    assert "Logged in to ReShare" in logs
    assert PASSWORD not in logs
    assert "token-1-abcdefghijklmnop" not in logs
    assert "token-2-abcdefghijklmnop" not in logs
    assert "mnop" in logs


def test_login_without_a_token_is_a_protocol_error(fake, client):
    # Given a login answer that carries no token at all
    fake.script("POST", "/authn/login-with-expiry", Reply(201, {}))

    # When logging in, Then ReShareProtocolError
    with pytest.raises(ReShareProtocolError, match="folioAccessToken"):
        client.login()


# --- paging ---------------------------------------------------------------------------------------------


def list_calls(fake: FakeReShare) -> list[Call]:
    return fake.calls_to("GET", "/rs/patronrequests")


def test_an_empty_listing_yields_nothing_after_one_page(fake, client):
    # Given no requests at all
    # When listing changes
    result = list(client.changed_since(is_requester=True, since=None, per_page=5))

    # Then nothing, after exactly one page
    assert result == []
    assert len(list_calls(fake)) == 1


def test_sends_the_filters_sort_and_paging_parameters(fake, client):
    # Given one borrower request
    fake.add(1)
    since = datetime.fromtimestamp(START_MS / 1000, tz=UTC)

    # When listing lender records since a time
    list(client.changed_since(is_requester=False, since=since, per_page=7))

    # Then the query carries both filters (the date as ISO-8601 UTC, as mod-rs's data binding takes it),
    # the sort, perPage and offset
    (call,) = list_calls(fake)
    assert call.query == {
        "filters": ["isRequester==false", "lastUpdated>=2023-11-14T22:13:20Z"],
        "sort": ["lastUpdated;asc"],
        "perPage": ["7"],
        "offset": ["0"],
    }


def test_without_since_there_is_no_lastupdated_filter(fake, client):
    # Given / When listing borrower records from the beginning
    list(client.changed_since(is_requester=True, since=None))

    # Then only the side filter is sent, and perPage defaults to 100
    (call,) = list_calls(fake)
    assert call.query["filters"] == ["isRequester==true"]
    assert call.query["perPage"] == ["100"]


def test_exactly_per_page_results_read_one_more_empty_page(fake, client):
    # Given exactly one full page of changes
    expected = fake.add(5)

    # When listing with perPage 5
    result = list(client.changed_since(is_requester=True, since=None, per_page=5))

    # Then all 5, once each, and a second (empty) page told it there was no more
    assert ids(result) == expected
    assert len(list_calls(fake)) == 2


def test_pages_through_everything_in_order_from_the_cursor_inclusive(fake, client):
    # Given 30 borrower requests and 5 lender requests interleaved
    all_ids = fake.add(10) + fake.add(5, is_requester=False) + fake.add(20)
    borrower_ids = [i for i in all_ids if next(r for r in fake.records if r["id"] == i)["isRequester"]]
    cursor_record = next(r for r in fake.records if r["id"] == borrower_ids[3])
    since = datetime.fromtimestamp(cursor_record["_ms"] / 1000, tz=UTC)

    # When listing borrower changes since the 4th one's lastUpdated, 4 per page
    result = list(client.changed_since(is_requester=True, since=since, per_page=4))

    # Then exactly the borrower requests changed at or after it, in lastUpdated order
    assert ids(result) == borrower_ids[3:]
    stamps = [r.last_updated for r in result]
    assert stamps == sorted(stamps)
    assert all(r.is_requester for r in result)
    assert result[0].model_extra == {"futureField": {"kept": True}}


def test_since_is_floored_to_the_second_so_the_second_itself_is_included(fake, client):
    # Given a since with sub-second precision, just after a request's lastUpdated second
    fake.add(1)
    since = datetime.fromtimestamp((START_MS + 1000) / 1000, tz=UTC) + timedelta(milliseconds=700)

    # When listing, Then the filter is that second, and the request is included
    assert ids(client.changed_since(is_requester=True, since=since)) == ["req-0001"]
    assert list_calls(fake)[0].query["filters"][1] == "lastUpdated>=2023-11-14T22:13:21Z"


def test_records_changing_while_paging_are_not_skipped(fake, client):
    # Given 9 requests, and a record of the first page that changes after that page was served
    original = fake.add(9)

    def change_after_first_page(list_call: int) -> None:
        if list_call == 1:
            fake.touch("req-0002")

    fake.after_list = change_after_first_page

    # When listing 3 per page
    result = ids(client.changed_since(is_requester=True, since=None, per_page=3))

    # Then every request appears (none skipped), and the changed one appears again, last, for its new change
    assert set(original) <= set(result)
    assert result == [*original, "req-0002"]


def test_the_changing_records_scenario_does_defeat_plain_offset_paging(fake):
    # Given the same scenario as above
    original = fake.add(9)
    fake.after_list = lambda n: fake.touch("req-0002") if n == 1 else None

    # When paging naively by offset alone
    seen: list[str] = []
    offset = 0
    while True:
        page = fake.list_page(["isRequester==true"], offset, 3)
        seen += [r["id"] for r in page]
        if len(page) < 3:
            break
        offset += 3

    # Then a request is skipped: the test above guards against a real problem
    assert set(original) - set(seen) == {"req-0004"}


def test_ties_across_a_page_boundary_are_each_yielded_once(fake, client):
    # Given 3 requests, then 4 changed in one second (in no stable order), then 3 more
    before = fake.add(3)
    fake.clock += 1000
    tied = fake.add(4, same_time=True)
    fake.clock += 1000
    after = fake.add(3)

    # When listing 5 per page (the tied second straddles the first page boundary), many times over
    for _ in range(20):
        result = ids(client.changed_since(is_requester=True, since=None, per_page=5))

        # Then each request appears exactly once, in lastUpdated order
        assert result[:3] == before
        assert sorted(result[3:7]) == tied
        assert result[7:] == after


def test_a_whole_page_sharing_one_second_pages_through_by_offset_and_says_so(fake, client):
    # Given 7 requests changed in the very same second, then 2 more later
    tied = fake.add(7, same_time=True)
    later = fake.add(2)
    listing = Listing()

    # When listing 3 per page
    result = ids(client.changed_since(is_requester=True, since=None, per_page=3, listing=listing))

    # Then the later ones appear once each after the tied ones, no tied one twice, and the listing ends
    assert result[-2:] == later
    assert len(set(result[:-2])) == len(result[:-2]) and set(result[:-2]) <= set(tied)
    # And, as rows tied beyond a page come in no stable order, the listing names that second as unsure
    assert listing.unsure_from == datetime.fromtimestamp((START_MS + 1000) / 1000, tz=UTC)


def test_the_listing_is_lazy(fake, client):
    # Given many pages of changes
    fake.add(50)

    # When only the first two results are taken
    first = list(islice(client.changed_since(is_requester=True, since=None, per_page=10), 2))

    # Then only one page was read
    assert ids(first) == ["req-0001", "req-0002"]
    assert len(list_calls(fake)) == 1


def test_stats_style_results_are_read_too(fake, client):
    # Given a list answer wrapped as {results, totalRecords}
    fake.add(2)
    fake.script(
        "GET",
        "/rs/patronrequests",
        lambda call: Reply(200, {"results": fake.list_page(call.query["filters"], 0, 10), "totalRecords": 2}),
    )

    # When listing, Then both requests
    assert ids(client.changed_since(is_requester=True, since=None)) == ["req-0001", "req-0002"]


@pytest.mark.parametrize("per_page", [0, 101])
def test_per_page_outside_what_reshare_serves_is_refused(client, per_page):
    with pytest.raises(ValueError):
        list(client.changed_since(is_requester=True, since=None, per_page=per_page))


@pytest.mark.parametrize(
    "body",
    [
        b"[{not json",
        b"",
        b'{"unexpected": true}',
        b'[{"id": "x"}]',
        b'[{"id": "x", "isRequester": true, "state": {"code": "REQ_IDLE"}, "lastUpdated": "yesterday"}]',
        b'[{"id": "x", "isRequester": true, "state": {"code": "REQ_IDLE"}, "lastUpdated": true}]',
    ],
    ids=["malformed", "empty", "not-a-list", "not-a-request", "bad-lastUpdated", "boolean-lastUpdated"],
)
def test_unreadable_list_answers_are_protocol_errors(fake, client, body):
    # Given ReShare answers the list with something unreadable
    fake.script("GET", "/rs/patronrequests", Reply(200, body))

    # When listing, Then ReShareProtocolError
    with pytest.raises(ReShareProtocolError):
        list(client.changed_since(is_requester=True, since=None))


# --- single requests, actions, settings -----------------------------------------------------------------


def test_get_request_reads_the_full_record_and_quotes_the_id(fake, client):
    # Given a request
    fake.add(1)

    # When reading it, and an id with characters that need quoting
    record = client.get_request("req-0001")
    with pytest.raises(ReShareNotFound):
        client.get_request("a/b c")

    # Then the record is read, and the odd id travelled as one path segment
    assert record.id == "req-0001" and record.volumes == []
    assert fake.calls[-1].path == "/rs/patronrequests/a%2Fb%20c"


def test_malformed_json_on_get_is_a_protocol_error(fake, client):
    fake.script("GET", "/rs/patronrequests/req-0001", Reply(200, b"<html>gateway</html>"))
    with pytest.raises(ReShareProtocolError, match="not JSON"):
        client.get_request("req-0001")


def test_perform_action_sends_exactly_the_action_body(fake, client):
    # Given a request
    fake.add(1)

    # When performing actions with and without parameters
    client.perform_action("req-0001", "requesterReceived")
    client.perform_action("req-0001", "supplierCheckInToReshare", {"itemBarcodes": [{"itemId": "123"}]})

    # Then the bodies have exactly the shape ReShare's own tests send
    bodies = [c.json() for c in fake.calls_to("POST", "/rs/patronrequests/req-0001/performAction")]
    assert bodies == [
        {"action": "requesterReceived", "actionParams": {}},
        {"action": "supplierCheckInToReshare", "actionParams": {"itemBarcodes": [{"itemId": "123"}]}},
    ]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            {"status": False, "message": "Action requesterReceived not valid in state REQ_IDLE"},
            "Action requesterReceived not valid in state REQ_IDLE",
        ),
        (422, b"itemBarcodes is required", "itemBarcodes is required"),
    ],
)
def test_a_rejected_action_carries_reshares_message(fake, client, status, body, message):
    # Given ReShare refuses the action
    fake.add(1)
    fake.script("POST", "/rs/patronrequests/req-0001/performAction", Reply(status, body))

    # When performing it, Then ReShareActionRejected with the action, the message and the status
    with pytest.raises(ReShareActionRejected) as caught:
        client.perform_action("req-0001", "requesterReceived")
    assert caught.value.action == "requesterReceived"
    assert caught.value.reason == message
    assert caught.value.status == status
    assert not caught.value.transient


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(404, {"message": "gone"}), ReShareNotFound),
        (Reply(500, b"boom"), ReShareUnavailable),
        (Reply(503, b"down"), ReShareUnavailable),
        (Reply(504, b"gateway timeout"), ReShareOutcomeUnknown),
        (Reply(403, b"forbidden"), ReShareAuthError),
        (Reply(drop=True), ReShareOutcomeUnknown),
        (Reply(200, {}, delay=2.5), ReShareOutcomeUnknown),
    ],
    ids=["404", "500", "503", "504", "403", "dropped", "read-timeout"],
)
def test_action_failures_are_typed_and_never_retried(fake, reply, error):
    # Given a short read timeout, and ReShare failing the action one way or another
    fake.add(1)
    fake.script("POST", "/rs/patronrequests/req-0001/performAction", reply)
    # (generous enough that the login before the action never times out on a loaded machine)
    client = ReShareClient(settings_for(fake.base_url), timeout=(2, 1.0), read_retries=3, backoff=0)

    # When performing the action, Then the typed error, after exactly one attempt
    with pytest.raises(error):
        client.perform_action("req-0001", "requesterReceived")
    assert len(fake.calls_to("POST", "/rs/patronrequests/req-0001/performAction")) == 1


def test_an_action_that_cannot_be_sent_is_unavailable_not_unknown(fake):
    # Given a client logged in, and then ReShare's port closes
    fake.add(1)
    client = ReShareClient(settings_for(fake.base_url), read_retries=0, backoff=0)
    client.login()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client._base = f"http://127.0.0.1:{closed_port}"

    # When performing an action, Then ReShareUnavailable (it never left): safe to retry
    with pytest.raises(ReShareUnavailable):
        client.perform_action("req-0001", "requesterReceived")


def test_perform_action_returns_the_answer_or_an_empty_dict(fake, client):
    fake.add(1)
    assert client.perform_action("req-0001", "message", {"note": "hi"}) == {"status": True}
    fake.script("POST", "/rs/patronrequests/req-0001/performAction", Reply(200, b""))
    assert client.perform_action("req-0001", "message", {"note": "hi"}) == {}


def test_reads_are_retried_with_capped_exponential_backoff(fake):
    # Given ReShare answers 503, 502, then 200
    fake.add(1)
    fake.script("GET", "/rs/patronrequests/req-0001", Reply(503, b"busy"), Reply(502, b"bad gateway"))
    client = ReShareClient(settings_for(fake.base_url), read_retries=3, backoff=0.5)
    sleeps: list[float] = []
    client._sleep = sleeps.append

    # When reading, Then it succeeded on the third attempt after waiting 0.5 s then 1 s
    assert client.get_request("req-0001").id == "req-0001"
    assert len(fake.calls_to("GET", "/rs/patronrequests/req-0001")) == 3
    assert sleeps == [0.5, 1.0]


def test_reads_give_up_after_the_retries_as_unavailable(fake):
    # Given ReShare keeps answering 503
    fake.add(1)
    fake.script("GET", "/rs/patronrequests/req-0001", *[Reply(503, b"busy")] * 10)
    client = ReShareClient(settings_for(fake.base_url), read_retries=5, backoff=3)
    sleeps: list[float] = []
    client._sleep = sleeps.append

    # When reading, Then ReShareUnavailable after 1 + 5 attempts, backoff capped at 4 s
    with pytest.raises(ReShareUnavailable, match="6 attempt"):
        client.get_request("req-0001")
    assert len(fake.calls_to("GET", "/rs/patronrequests/req-0001")) == 6
    assert sleeps == [3, 4, 4, 4, 4]


def test_read_timeouts_are_retried_then_unavailable(fake):
    # Given ReShare answers the read too slowly every time
    fake.add(1)
    fake.script("GET", "/rs/patronrequests/req-0001", *[Reply(200, {}, delay=1.0)] * 3)
    client = ReShareClient(settings_for(fake.base_url), timeout=(1, 0.2), read_retries=2, backoff=0)

    # When reading, Then ReShareUnavailable after 3 attempts
    with pytest.raises(ReShareUnavailable):
        client.get_request("req-0001")
    assert len(fake.calls_to("GET", "/rs/patronrequests/req-0001")) == 3


def test_a_500_on_a_read_is_not_retried(fake, client):
    fake.add(1)
    fake.script("GET", "/rs/patronrequests/req-0001", Reply(500, b"bug"))
    with pytest.raises(ReShareUnavailable):
        client.get_request("req-0001")
    assert len(fake.calls_to("GET", "/rs/patronrequests/req-0001")) == 1


def test_an_unexpected_4xx_on_a_read_is_a_permanent_error(fake, client):
    fake.script("GET", "/rs/patronrequests", Reply(400, {"message": "bad filter"}))
    with pytest.raises(ReShareError, match="bad filter") as caught:
        list(client.changed_since(is_requester=True, since=None))
    assert type(caught.value) is ReShareError
    assert not caught.value.transient


def test_valid_actions(fake, client):
    fake.add(1)
    assert client.valid_actions("req-0001") == ["requesterReceived", "message"]
    with pytest.raises(ReShareNotFound):
        client.valid_actions("nope")


def test_valid_actions_unreadable_is_a_protocol_error(fake, client):
    fake.script("GET", "/rs/patronrequests/req-0001/validActions", Reply(200, {"actions": "all"}))
    with pytest.raises(ReShareProtocolError):
        client.valid_actions("req-0001")


def test_app_setting_value_default_and_absent(fake, client):
    # Given a set value, a setting with only a default, and no setting
    fake.settings.append({"key": "check_in_on_return", "value": None, "defValue": "off"})

    # Then the value, the default, and None
    assert client.app_setting("host_lms_integration") == "manual"
    assert client.app_setting("check_in_on_return") == "off"
    assert client.app_setting("no_such_key") is None
    assert fake.calls[-1].query == {"filters": ["key==no_such_key"]}


# --- mod-rs's answers (issue 13) -------------------------------------------------------------------------

BUSY = (
    "Unable to perform action as we are waiting for existing network activity to complete, network status: "
    "Waiting, Action being performed: supplierCheckOutOfReshare"
)


def test_a_busy_refusal_is_waited_out_and_the_action_sent_again(fake, client):
    # Given a request busy for two tries (mod-rs ActionService: networkStatus Waiting), then idle
    fake.add(1)
    path = "/rs/patronrequests/req-0001/performAction"
    fake.script("POST", path, Reply(400, {"message": BUSY}), Reply(400, {"message": BUSY}))
    sleeps: list[float] = []
    client._sleep = sleeps.append

    # When the action is performed, Then it is accepted on the third try, after 1 s and 2 s
    assert client.perform_action("req-0001", "supplierCheckOutOfReshare") == {"status": True}
    assert len(fake.calls_to("POST", path)) == 3
    assert sleeps == [1.0, 2.0]


def test_a_request_busy_beyond_the_wait_is_a_transient_error_not_a_refusal(fake):
    # Given a request that stays busy
    fake.add(1)
    path = "/rs/patronrequests/req-0001/performAction"
    fake.script("POST", path, *[Reply(400, {"message": BUSY})] * 20)
    client = ReShareClient(settings_for(fake.base_url), timeout=(1, 2), busy_wait=20, busy_backoff=1)  # type: ignore[attr-defined]
    sleeps: list[float] = []
    client._sleep = sleeps.append

    # When the action is performed, Then ReShareBusy (transient, not ReShareActionRejected) after ~15 s
    with pytest.raises(ReShareBusy) as caught:
        client.perform_action("req-0001", "supplierCheckOutOfReshare")
    assert caught.value.transient is True
    assert not isinstance(caught.value, ReShareActionRejected)
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert len(fake.calls_to("POST", path)) == 5
    client.close()


def test_unknown_ids_are_not_found_for_actions_and_valid_actions(fake, client):
    # mod-rs: performAction 400 "Unable to find request with id: ..."; validActions 200 {actions: [], message}
    fake.add(1)
    fake.script(
        "POST",
        "/rs/patronrequests/req-0001/performAction",
        Reply(400, {"message": "Unable to find request with id: req-0001"}),
    )
    fake.script(
        "GET",
        "/rs/patronrequests/req-0001/validActions",
        Reply(200, {"actions": [], "message": "Unable to locate request"}),
    )
    with pytest.raises(ReShareNotFound):
        client.perform_action("req-0001", "requesterReceived")
    with pytest.raises(ReShareNotFound):
        client.valid_actions("req-0001")
    # and an empty list without a message is just "nothing allowed now" (e.g. busy)
    fake.script("GET", "/rs/patronrequests/req-0001/validActions", Reply(200, {"actions": []}))
    assert client.valid_actions("req-0001") == []


@pytest.mark.parametrize("answer", [{}, {"status": True}])
def test_performaction_success_bodies_are_read(fake, client, answer):
    fake.add(1)
    fake.script("POST", "/rs/patronrequests/req-0001/performAction", Reply(200, answer))
    assert client.perform_action("req-0001", "requesterReceived") == answer


def test_another_tenants_token_is_an_auth_error(fake, client):
    fake.add(1)
    fake.script(
        "GET", "/rs/patronrequests/req-0001", Reply(403, b"Tenant mismatch", [("Content-Type", "text/plain")])
    )
    with pytest.raises(ReShareAuthError, match="Tenant mismatch"):
        client.get_request("req-0001")
