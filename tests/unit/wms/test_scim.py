"""WMS patron look-up over SCIM: every sample answer, served by a real local HTTP server."""

from __future__ import annotations

import json
from base64 import b64decode
from datetime import UTC, date, datetime
from urllib.parse import parse_qs

import pytest
from wms_fakes import Reply, settings_for, token_reply

from illbridge.errors import PatronNotFound, WmsAuthError, WmsProtocolError, WmsUnavailable
from illbridge.wms.auth import TokenCache
from illbridge.wms.client import WmsClient
from illbridge.wms.scim import Patron, search_body
from tests.reference import CIRCILL, SCIM

SEARCH = "/idaas/scim/v2/Users/.search"


def scim_sample(name: str, status: int = 200) -> Reply:
    return Reply(status, (SCIM / name).read_bytes(), "application/scim+json")


@pytest.fixture
def client(fake_wms):
    fake_wms.route("/oauth/token", token_reply("tok-1"), token_reply("tok-2"))
    with WmsClient(settings_for(fake_wms), tokens=TokenCache()) as wms:
        yield wms


def test_good_patron_and_the_request_sent(fake_wms, client, exchanges):
    # Given WMS knows the patron
    fake_wms.route(SEARCH, scim_sample("wmsLookupUserGoodPatron.json"))
    # When the bridge looks the barcode up
    patron = client.lookup_patron("2200555")
    # Then the patron is read: expiry date, not blocked, category, home branch
    assert patron == Patron(
        barcode="2200555",
        expires=date(2030, 9, 7),
        blocked=False,
        borrower_category="ADULT",
        home_branch="128963",
        expires_at=datetime(2030, 9, 7, tzinfo=UTC),
        ill_blocked=False,
    )
    assert not patron.is_expired(date(2030, 9, 6))
    assert patron.is_expired(date(2030, 9, 7))
    # And the search was a SCIM SearchRequest on External_ID with a SCIM:read_user bearer token
    (search,) = fake_wms.requests_to(SEARCH)
    assert search.headers["content-type"] == "application/scim+json"
    assert search.headers["accept"] == "application/scim+json"
    assert search.headers["authorization"] == "Bearer tok-1"
    assert json.loads(search.body) == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'External_ID eq "2200555"',
    }
    (token,) = fake_wms.requests_to("/oauth/token")
    assert parse_qs(token.body.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["WMS_NCIP SCIM:read_user"],  # one token for every scope the bridge uses
    }
    assert b64decode(token.headers["authorization"].split()[1]) == b"east-wskey:east-secret"
    # And the history line masks the barcode
    assert exchanges[-1].operation == "PatronSearch"
    assert exchanges[-1].outcome == "ok"
    assert "2200555" not in str(exchanges[-1].as_dict())


def test_blocked_patron(fake_wms, client):
    fake_wms.route(SEARCH, scim_sample("wmsLookupUserBlockedPatron.json"))
    patron = client.lookup_patron("joe_blocker")
    assert patron.blocked is True
    assert patron.barcode == "joe_blocker"
    assert patron.expires == date(2021, 12, 31)
    assert patron.home_branch == "129479"


def test_expired_patron(fake_wms, client):
    fake_wms.route(SEARCH, scim_sample("wmsLookupUserExpired.json"))
    patron = client.lookup_patron("doe_expired")
    assert patron.blocked is False
    assert patron.expires == date(2017, 11, 1)
    assert patron.is_expired(date(2025, 1, 1))
    assert patron.is_expired(datetime(2017, 11, 1, 0, 0, 1, tzinfo=UTC))
    assert not patron.is_expired(datetime(2017, 10, 31, 23, 59, tzinfo=UTC))


def test_not_found(fake_wms, client, exchanges):
    # Given WMS knows no such patron (empty Resources)
    fake_wms.route(SEARCH, scim_sample("wmsLookupUserNotFound.json"))
    # When it is looked up
    with pytest.raises(PatronNotFound) as caught:
        client.lookup_patron("NOBODY-0001")
    # Then PatronNotFound, without the full barcode, and the history says not_found
    assert "NOBODY-0001" not in str(caught.value)
    assert exchanges[-1].outcome == "not_found"


def test_401_refetches_the_token_once_then_is_an_auth_error(fake_wms, client, exchanges):
    # Given WMS refuses every token
    fake_wms.route(SEARCH, scim_sample("wmsLookupUserAuthNotWorking.json", 401))
    # When a patron is looked up
    with pytest.raises(WmsAuthError, match="Missing or invalid authorization token"):
        client.lookup_patron("2200555")
    # Then a second token was fetched and the search sent exactly twice, once with each
    searches = fake_wms.requests_to(SEARCH)
    assert [s.headers["authorization"] for s in searches] == ["Bearer tok-1", "Bearer tok-2"]
    assert len(fake_wms.requests_to("/oauth/token")) == 2
    assert exchanges[-1].attempts == 2
    assert exchanges[-1].outcome == "auth_error"


@pytest.mark.parametrize(
    ("name", "status", "error", "detail"),
    [
        ("wmsLookupUserMissingPermissions.json", 403, WmsAuthError, "sufficient permissions"),
        ("wmsLookupUserUnableToHandle.json", 500, WmsUnavailable, "Unable to to handle the request."),
        ("wmsLookupUserUnsupportedEndpoint.json", 404, WmsProtocolError, "Unsupported endpoint."),
        ("wmsLookupUserUnsupportedMediaType.json", 415, WmsProtocolError, "Unsupported media type."),
    ],
)
def test_error_samples_become_typed_errors(fake_wms, client, name, status, error, detail):
    # Given WMS answers a SCIM error with its HTTP status
    fake_wms.route(SEARCH, scim_sample(name, status))
    # When a patron is looked up
    with pytest.raises(error) as caught:
        client.lookup_patron("2200555")
    # Then the error type fits and carries SCIM's detail; a 403 is not retried with a new token
    assert detail in str(caught.value)
    assert type(caught.value) is error
    assert len(fake_wms.requests_to(SEARCH)) == 1


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("wmsLookupUserMissingPermissions.json", WmsAuthError),
        ("wmsLookupUserUnableToHandle.json", WmsUnavailable),
        ("wmsLookupUserUnsupportedEndpoint.json", WmsProtocolError),
    ],
)
def test_a_scim_error_body_with_http_200_is_still_an_error(fake_wms, client, name, error):
    fake_wms.route(SEARCH, scim_sample(name, 200))
    with pytest.raises(error):
        client.lookup_patron("2200555")


def test_unreadable_answer_is_a_protocol_error(fake_wms, client):
    fake_wms.route(SEARCH, Reply(200, b"<html>login</html>", "text/html"))
    with pytest.raises(WmsProtocolError):
        client.lookup_patron("2200555")


def test_several_resources_prefer_the_exact_barcode(fake_wms, client):
    good = json.loads((SCIM / "wmsLookupUserGoodPatron.json").read_bytes())
    blocked = json.loads((SCIM / "wmsLookupUserBlockedPatron.json").read_bytes())
    both = {**good, "totalResults": 2, "Resources": blocked["Resources"] + good["Resources"]}
    fake_wms.route(SEARCH, Reply.json(both))
    assert client.lookup_patron("2200555").blocked is False


def test_quotes_and_backslashes_in_the_barcode_are_escaped():
    # Given a barcode that would break out of the SCIM string literal
    body = json.loads(search_body('AB"C\\D'))
    # Then the filter keeps it one literal
    assert body["filter"] == 'External_ID eq "AB\\"C\\\\D"'


def test_a_blank_barcode_is_refused():
    with pytest.raises(ValueError):
        search_body("  ")


def test_a_patron_look_up_and_a_check_in_share_one_token(fake_wms, client):
    # Given WMS answers a SCIM search and an NCIP check-in
    fake_wms.route(SEARCH, scim_sample("wmsLookupUserGoodPatron.json"))
    fake_wms.route("/ncip", Reply.xml((CIRCILL / "CheckInItemMinimalResponseSuccess.xml").read_bytes()))
    # When the bridge looks a patron up and checks an item in
    client.lookup_patron("2200555")
    client.check_in_item(item_barcode="ITEM-1")
    # Then one token, asked for both scopes, served both calls
    (token,) = fake_wms.requests_to("/oauth/token")
    assert parse_qs(token.body.decode())["scope"] == ["WMS_NCIP SCIM:read_user"]
    assert fake_wms.requests_to("/ncip")[0].headers["authorization"] == "Bearer tok-1"


def test_a_wskey_refused_every_scope_at_once_gets_a_token_per_scope(fake_wms):
    # Given an OAuth server that refuses the list of scopes (sources do not say whether OCLC does, for a
    # WSKey not granted all of them) and grants each one on its own
    refused = Reply.json({"error": "invalid_scope", "error_description": "not granted"}, status=400)
    fake_wms.route("/oauth/token", refused, token_reply("tok-scim"), token_reply("tok-ncip"))
    fake_wms.route(SEARCH, scim_sample("wmsLookupUserGoodPatron.json"))
    fake_wms.route("/ncip", Reply.xml((CIRCILL / "CheckInItemMinimalResponseSuccess.xml").read_bytes()))
    with WmsClient(settings_for(fake_wms), tokens=TokenCache()) as wms:
        # When the bridge looks a patron up and checks an item in
        wms.lookup_patron("2200555")
        wms.check_in_item(item_barcode="ITEM-1")
    # Then after the one refusal each call had a token for its own scope, and both calls went through
    scopes = [parse_qs(t.body.decode())["scope"] for t in fake_wms.requests_to("/oauth/token")]
    assert scopes == [["WMS_NCIP SCIM:read_user"], ["SCIM:read_user"], ["WMS_NCIP"]]
    assert fake_wms.requests_to(SEARCH)[0].headers["authorization"] == "Bearer tok-scim"
    assert fake_wms.requests_to("/ncip")[0].headers["authorization"] == "Bearer tok-ncip"
