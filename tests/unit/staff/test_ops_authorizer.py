"""The ops routes' authorizer (functions/ops_authorizer) against real RS256 JWTs: tokens signed with a test
key in Cognito's shape (iss the pool, aud the staff app client, token_use id), and the pool's JWKS as a
document of public keys. Only a token whose signature, issuer, audience, token_use and expiry all hold lets a
request in; anything else is API Gateway's ``Unauthorized``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

ROOT = Path(__file__).resolve().parents[3]
REGION, POOL, CLIENT = "eu-west-1", "eu-west-1_Staff0001", "5ra91i9p4trq42m2vnjs0pv06q"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL}"
METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/Prod/GET/ops"
NOW = 1_795_000_000  # a fixed "now" for the verifier's clock


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


authorizer = load("ops_authorizer")
KEY = RSAKey.generate_key(2048, parameters={"kid": "pool-key-1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "pool-key-2"})  # not (yet) in the pool's JWKS


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "sub": "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab",
        "iss": ISSUER,
        "aud": CLIENT,
        "token_use": "id",
        "auth_time": NOW - 60,
        "iat": NOW - 60,
        "exp": NOW + 3540,
        "email": "ill-staff@library.example",
        "cognito:username": "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(key: RSAKey = KEY, **changes: Any) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims(**changes), key)


class Pool:
    """The user pool's JWKS endpoint: its public keys, and how often it was asked."""

    def __init__(self, *keys: RSAKey) -> None:
        self.keys = list(keys)
        self.fetched = 0

    def __call__(self, url: str) -> dict[str, Any]:
        assert url == f"{ISSUER}/.well-known/jwks.json"
        self.fetched += 1
        return {"keys": [{**k.as_dict(private=False), "alg": "RS256", "use": "sig"} for k in self.keys]}


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Pool:
    """A verifier for the stack's pool and client, as the handler builds it, with the test pool's keys."""
    keys = Pool(KEY)
    monkeypatch.setenv("STAFF_USER_POOL_ID", POOL)
    monkeypatch.setenv("AWS_REGION", REGION)
    verifier = authorizer.Verifier(ISSUER, CLIENT, clock=lambda: NOW, fetch=keys)
    monkeypatch.setattr(authorizer, "_verifiers", {(ISSUER, CLIENT): verifier})
    return keys


def event(cookie: str | None = None, authorization: str | None = None) -> dict[str, Any]:
    """A REQUEST authorizer event as API Gateway sends it for GET /ops/ (stage variables included)."""
    headers = {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "Accept": "text/html"}
    if cookie is not None:
        headers["Cookie"] = cookie
    if authorization is not None:
        headers["Authorization"] = authorization
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "resource": "/ops",
        "path": "/ops/",
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {
            "StaffClientId": CLIENT,
            "StaffSignInDomain": "x.auth.eu-west-1.amazoncognito.com",
        },
        "requestContext": {"stage": "Prod", "resourcePath": "/ops", "httpMethod": "GET"},
    }


def allowed(ev: dict[str, Any]) -> dict[str, Any]:
    return dict(authorizer.handler(ev, None))


def refused(ev: dict[str, Any]) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$") as caught:
        authorizer.handler(ev, None)
    assert type(caught.value) is Exception  # what API Gateway turns into 401 (and the gateway response 302)


def test_a_valid_id_token_in_the_session_cookie_lets_the_request_in(pool: Pool) -> None:
    answer = allowed(event(cookie=f"theme=dark; illbridge_staff={token()}; other=1"))
    assert answer["principalId"] == "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"
    assert answer["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": METHOD_ARN}
    ]
    assert answer["context"] == {
        "email": "ill-staff@library.example",
        "username": "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab",
    }


def test_tools_may_send_the_token_in_the_authorization_header_as_before(pool: Pool) -> None:
    assert allowed(event(authorization=token()))["principalId"]
    assert allowed(event(authorization=f"Bearer {token()}"))["principalId"]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"exp": NOW - 1}, id="expired"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param(
            {"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other0001"}, id="other-pool"
        ),
        pytest.param({"iss": ISSUER.replace("https://", "http://")}, id="issuer-not-exact"),
        pytest.param({"aud": "another-app-client-of-the-pool"}, id="wrong-client"),
        pytest.param({"aud": None, "client_id": CLIENT, "token_use": "access"}, id="access-token"),
        pytest.param({"token_use": "access"}, id="wrong-token-use"),
        pytest.param({"token_use": None}, id="no-token-use"),
    ],
)
def test_a_token_whose_claims_do_not_hold_is_refused(pool: Pool, bad: dict[str, Any]) -> None:
    refused(event(cookie=f"illbridge_staff={token(**bad)}"))
    refused(event(authorization=token(**bad)))


def test_a_tampered_token_is_refused(pool: Pool) -> None:
    import base64
    import json

    header, payload, signature = token().split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["email"] = "someone-else@library.example"  # the same signature over a changed payload
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    refused(event(cookie=f"illbridge_staff={header}.{forged}.{signature}"))
    # and a signature by a key that claims the pool's kid
    impostor = RSAKey.generate_key(2048, parameters={"kid": KEY.kid})
    refused(event(cookie=f"illbridge_staff={token(impostor)}"))


def test_unsigned_and_symmetric_tokens_are_refused(pool: Pool) -> None:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    refused(event(cookie=f"illbridge_staff={part({'alg': 'none', 'kid': KEY.kid})}.{part(claims())}."))
    from joserfc.jwk import OctKey

    shared = OctKey.import_key(b"a-shared-secret-of-thirty-two-bytes!!")
    hs = jwt.encode({"alg": "HS256", "kid": KEY.kid}, claims(), shared)
    refused(event(cookie=f"illbridge_staff={hs}"))


def test_a_key_the_pool_does_not_have_is_refused_and_asks_the_pool_once_more(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert allowed(event(cookie=f"illbridge_staff={token()}"))
    assert pool.fetched == 1  # cached for the process
    assert allowed(event(cookie=f"illbridge_staff={token()}")) and pool.fetched == 1
    # a token signed by a key not in the JWKS: refused; the pool is asked again only once per 5 minutes
    clock = [time.monotonic() + authorizer.REFETCH_SECONDS]
    monkeypatch.setattr(authorizer.time, "monotonic", lambda: clock[0])
    refused(event(cookie=f"illbridge_staff={token(OTHER)}"))
    assert pool.fetched == 2
    refused(event(cookie=f"illbridge_staff={token(OTHER)}"))
    assert pool.fetched == 2
    # Cognito rotates: the new key appears in the JWKS, and after the pause it is accepted
    pool.keys.append(OTHER)
    clock[0] += authorizer.REFETCH_SECONDS
    assert allowed(event(cookie=f"illbridge_staff={token(OTHER)}"))
    assert pool.fetched == 3


def test_no_cookie_no_header_or_a_garbled_one_is_refused(pool: Pool) -> None:
    refused(event())
    refused(event(cookie="theme=dark"))
    refused(event(cookie="illbridge_staff="))
    refused(event(cookie="illbridge_staff=not.a.jwt"))
    refused(event(authorization="Bearer "))
    assert pool.fetched == 0 or pool.fetched == 1


def test_without_the_client_stage_variable_nothing_is_let_in(pool: Pool) -> None:
    ev = event(cookie=f"illbridge_staff={token()}")
    ev["stageVariables"] = None
    refused(ev)


def test_the_pool_s_keys_are_fetched_over_https_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_COGNITO_IDP", raising=False)
    with pytest.raises(authorizer.Refused, match="not https"):
        authorizer.fetch_json(f"http://cognito-idp.{REGION}.amazonaws.com/{POOL}/.well-known/jwks.json")
    # only an SDK endpoint override (the sandbox's moto) may be plain HTTP, and only that endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5055")
    assert authorizer.jwks_url(ISSUER, POOL) == f"http://127.0.0.1:5055/{POOL}/.well-known/jwks.json"
    with pytest.raises(authorizer.Refused, match="not https"):
        authorizer.fetch_json(f"http://127.0.0.2:5055/{POOL}/.well-known/jwks.json")


def test_the_verifier_the_handler_builds_names_the_stack_s_pool_and_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STAFF_USER_POOL_ID", POOL)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_COGNITO_IDP", raising=False)
    monkeypatch.setattr(authorizer, "_verifiers", {})
    verifier = authorizer.verifier_for(event())
    assert (verifier.issuer, verifier.client_id) == (ISSUER, CLIENT)
    assert verifier.jwks_url == f"{ISSUER}/.well-known/jwks.json"
    assert authorizer.verifier_for(event()) is verifier  # one per process: its keys are cached
