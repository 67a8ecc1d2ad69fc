"""OAuth client-credentials tokens: cached, refreshed shortly before expiry, refetched once on a 401."""

from __future__ import annotations

import threading

import pytest
from wms_fakes import Reply, settings_for, token_reply

from illbridge.errors import WmsAuthError, WmsProtocolError, WmsUnavailable
from illbridge.wms.auth import FetchedToken, TokenCache
from illbridge.wms.client import WmsClient
from illbridge.wms.transport import new_session
from tests.reference import CIRCILL

TIMEOUT = (1.0, 2.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(cache: TokenCache, server, scope: str = "WMS_NCIP", wskey: str = "east-wskey") -> str:
    return cache.get(
        new_session(),
        oauth_url=server.url("/oauth/token"),
        wskey=wskey,
        secret="east-secret",
        scope=scope,
        timeout=TIMEOUT,
    )


def test_token_is_cached_until_60_seconds_before_expiry(fake_wms):
    # Given an OAuth server issuing 1200-second tokens and a controllable clock
    fake_wms.route("/oauth/token", token_reply("tok-1", 1200), token_reply("tok-2", 1200))
    clock = Clock()
    cache = TokenCache(clock=clock)
    # When tokens are asked for up to 61 s before expiry
    first = get(cache, fake_wms)
    clock.now += 1139
    second = get(cache, fake_wms)
    # Then the first token is reused and only one was fetched
    assert first == second == "tok-1"
    assert len(fake_wms.requests_to("/oauth/token")) == 1
    # When the clock reaches 60 s before expiry
    clock.now += 1
    # Then a new token is fetched
    assert get(cache, fake_wms) == "tok-2"
    assert cache.fetches == 2


def test_expires_in_defaults_to_1200_seconds(fake_wms):
    # Given an answer without expires_in
    fake_wms.route("/oauth/token", token_reply("tok-1", None), token_reply("tok-2", None))
    clock = Clock()
    cache = TokenCache(clock=clock)
    get(cache, fake_wms)
    # Then it is reused for 1200 - 60 seconds
    clock.now += 1139
    assert get(cache, fake_wms) == "tok-1"
    clock.now += 1
    assert get(cache, fake_wms) == "tok-2"


def test_short_lived_tokens_are_reused_for_half_their_life(fake_wms):
    fake_wms.route("/oauth/token", token_reply("tok-1", 30), token_reply("tok-2", 30))
    clock = Clock()
    cache = TokenCache(clock=clock)
    get(cache, fake_wms)
    clock.now += 14
    assert get(cache, fake_wms) == "tok-1"
    clock.now += 1
    assert get(cache, fake_wms) == "tok-2"


def test_tokens_are_kept_per_scope_and_key(fake_wms):
    fake_wms.route("/oauth/token", token_reply("a"), token_reply("b"), token_reply("c"))
    cache = TokenCache()
    assert get(cache, fake_wms, scope="WMS_NCIP") == "a"
    assert get(cache, fake_wms, scope="SCIM:read_user") == "b"
    assert get(cache, fake_wms, wskey="west-wskey") == "c"
    assert get(cache, fake_wms, scope="WMS_NCIP") == "a"
    scopes = [request.body.decode() for request in fake_wms.requests_to("/oauth/token")]
    assert scopes == [
        "grant_type=client_credentials&scope=WMS_NCIP",
        "grant_type=client_credentials&scope=SCIM%3Aread_user",
        "grant_type=client_credentials&scope=WMS_NCIP",
    ]


def test_concurrent_callers_share_one_fetch():
    # Given a slow token fetch and many threads asking at once
    started = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def fetcher(session, **_: object) -> FetchedToken:
        calls.append("fetch")
        started.set()
        release.wait(2)
        return FetchedToken("shared", 1200)

    cache = TokenCache(fetcher=fetcher)
    results: list[str] = []

    def ask() -> None:
        results.append(
            cache.get(None, oauth_url="u", wskey="k", secret="s", scope="WMS_NCIP", timeout=TIMEOUT)  # type: ignore[arg-type]
        )

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait(2)
    release.set()
    for thread in threads:
        thread.join(3)
    # Then one fetch served them all
    assert calls == ["fetch"]
    assert results == ["shared"] * 8


def test_invalidate_only_drops_the_token_that_was_refused():
    tokens = iter(["one", "two"])
    cache = TokenCache(fetcher=lambda session, **_: FetchedToken(next(tokens), 1200))
    key = {"oauth_url": "u", "wskey": "k", "scope": "WMS_NCIP"}
    assert cache.get(None, secret="s", timeout=TIMEOUT, **key) == "one"  # type: ignore[arg-type]
    # When a stale 401 for another token arrives, the cached one stays
    cache.invalidate(token="zero", **key)
    assert cache.get(None, secret="s", timeout=TIMEOUT, **key) == "one"  # type: ignore[arg-type]
    # When the cached one is refused, it goes
    cache.invalidate(token="one", **key)
    assert cache.get(None, secret="s", timeout=TIMEOUT, **key) == "two"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (
            Reply.json({"error": "invalid_client", "error_description": "bad secret"}, 401),
            WmsAuthError,
            "bad secret",
        ),
        (Reply.json({"error": "invalid_scope"}, 400), WmsAuthError, "invalid_scope"),
        (Reply.json({"message": "forbidden"}, 403), WmsAuthError, "forbidden"),
        (Reply(503, b"down"), WmsUnavailable, "503"),
        (Reply(429, b"slow down"), WmsUnavailable, "429"),
        (Reply(404, b""), WmsProtocolError, "404"),
        (Reply(200, b"<html/>", "text/html"), WmsProtocolError, "not JSON"),
        (Reply.json({"token_type": "bearer"}), WmsProtocolError, "access_token"),
    ],
)
def test_token_endpoint_failures_are_typed(fake_wms, reply, error, match):
    fake_wms.route("/oauth/token", reply)
    with pytest.raises(error, match=match) as caught:
        get(TokenCache(), fake_wms)
    assert "east-secret" not in str(caught.value)


def test_token_endpoint_unreachable_is_unavailable(closed_port):
    cache = TokenCache()
    with pytest.raises(WmsUnavailable):
        cache.get(
            new_session(),
            oauth_url=f"http://127.0.0.1:{closed_port}/oauth/token",
            wskey="k",
            secret="s",
            scope="WMS_NCIP",
            timeout=TIMEOUT,
        )


# --- the client's 401 handling ----------------------------------------------------------------------------


def test_ncip_401_refetches_the_token_once_and_succeeds(fake_wms, exchanges):
    # Given a cached token WMS no longer accepts, and a fresh one it does
    fake_wms.route("/oauth/token", token_reply("stale"), token_reply("fresh"))
    success = Reply.xml((CIRCILL / "CheckOutItemResponseSuccess.xml").read_bytes())
    fake_wms.route(
        "/ncip",
        lambda seen: success if seen.headers["authorization"] == "Bearer fresh" else Reply(401, b"expired"),
    )
    tokens = TokenCache()
    with WmsClient(settings_for(fake_wms), tokens=tokens) as client:
        # When a checkout is sent
        result = client.check_out_item(item_barcode="ABCDE", institution_symbol="NDOSU")
        # Then it succeeded transparently after exactly one refetch and one re-send
        assert result.item_barcode == "ABCDE"
        assert [s.headers["authorization"] for s in fake_wms.requests_to("/ncip")] == [
            "Bearer stale",
            "Bearer fresh",
        ]
        assert exchanges[-1].attempts == 2
        assert exchanges[-1].outcome == "ok"
        # And the fresh token is the one cached for the next call
        client.check_out_item(item_barcode="ABCDE", institution_symbol="NDOSU")
        assert len(fake_wms.requests_to("/oauth/token")) == 2
        assert fake_wms.requests_to("/ncip")[-1].headers["authorization"] == "Bearer fresh"


def test_ncip_401_twice_is_an_auth_error(fake_wms):
    fake_wms.route("/oauth/token", token_reply("one"), token_reply("two"), token_reply("three"))
    fake_wms.route("/ncip", Reply(401, b"nope"))
    with WmsClient(settings_for(fake_wms), tokens=TokenCache()) as client:
        with pytest.raises(WmsAuthError, match="401"):
            client.check_in_item(item_barcode="ABCDE")
        # Then the call went out twice, never a third time
        assert len(fake_wms.requests_to("/ncip")) == 2
        assert len(fake_wms.requests_to("/oauth/token")) == 2
