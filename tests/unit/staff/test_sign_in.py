"""Signing in to the staff page on AWS (functions/ops_api: /ops/signin, /ops/callback, /ops/signout), as a
browser goes through it: to the user pool's authorize endpoint with a state and a PKCE challenge, back with a
code, the code redeemed at the pool's token endpoint (a stand-in on 127.0.0.1 that checks the PKCE verifier as
Cognito does), the session cookie set, and that cookie then let in by the ops routes' authorizer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.unit.staff.test_ops_authorizer import CLIENT, KEY, Pool, authorizer, load, token

ops = load("ops_api")
HOST = "abc123.execute-api.eu-west-1.amazonaws.com"
DOMAIN = "illbridge-staff-1c2fa620-982a-11e3-aff7-50e2416294e0.auth.eu-west-1.amazoncognito.com"
CALLBACK = f"https://{HOST}/Prod/ops/callback"


class TokenEndpoint:
    """The user pool's /oauth2/token for codes it issued: each code is bound to its client, redirect URI and
    PKCE challenge, and is redeemed once (Cognito developer guide: token endpoint, PKCE)."""

    def __init__(self) -> None:
        self.answer_once: Any = (
            None  # a broken answer for the next redemption (a body that is not the tokens)
        )
        self.codes: dict[str, dict[str, str]] = {}
        self.calls: list[dict[str, str]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                endpoint.calls.append(form)
                status, body = endpoint.redeem(self.path, form, self.headers.get("Content-Type", ""))
                if endpoint.answer_once is not None:
                    body, endpoint.answer_once = endpoint.answer_once, None
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def issue(self, authorize: dict[str, str]) -> str:
        """What the pool's sign-in page does once the staff member has signed in: a code for this request."""
        code = secrets.token_urlsafe(16)
        self.codes[code] = authorize
        return code

    def redeem(self, path: str, form: dict[str, str], content_type: str) -> tuple[int, dict[str, Any]]:
        if path != "/oauth2/token" or not content_type.startswith("application/x-www-form-urlencoded"):
            return 400, {"error": "invalid_request"}
        asked = self.codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or asked is None:
            return 400, {"error": "invalid_grant"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if (
            form.get("client_id") != asked["client_id"]
            or form.get("redirect_uri") != asked["redirect_uri"]
            or challenge != asked["code_challenge"]
        ):
            return 400, {"error": "invalid_grant"}
        return 200, {
            "id_token": token(),
            "access_token": token(token_use="access", aud=None, client_id=CLIENT),
            "refresh_token": "refresh",
            "expires_in": 3600,
            "token_type": "Bearer",
        }


@pytest.fixture
def cognito(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    real = ops.cognito_url
    assert real(DOMAIN, "/oauth2/token") == f"https://{DOMAIN}/oauth2/token"
    # only the token endpoint is called by the function itself; the others are where browsers are sent
    monkeypatch.setattr(
        ops,
        "cognito_url",
        lambda domain, path: f"{endpoint.url}{path}" if path == "/oauth2/token" else real(domain, path),
    )
    yield endpoint
    endpoint.server.shutdown()


def get(
    path: str, query: dict[str, str] | None = None, cookies: str | None = None, *, aws: bool = True
) -> Any:
    """``GET /Prod<path>`` through API Gateway (REST proxy event) to the ops function; its answer."""
    headers = {"Host": HOST if aws else "127.0.0.1:3000", "Accept": "text/html"}
    if cookies:
        headers["Cookie"] = cookies
    event = {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": None,
        "stageVariables": {"StaffClientId": CLIENT, "StaffSignInDomain": DOMAIN} if aws else None,
        "requestContext": {
            "stage": "Prod",
            "resourcePath": path,
            "httpMethod": "GET",
            "path": f"/Prod{path}",
        },
        "body": None,
        "isBase64Encoded": False,
    }
    return ops.app.resolve(event, None)


def header(answer: dict[str, Any], name: str) -> list[str]:
    return list((answer.get("multiValueHeaders") or {}).get(name) or [])


def cookie_attributes(set_cookie: str) -> tuple[str, str, dict[str, str]]:
    pair, *attributes = [p.strip() for p in set_cookie.split(";")]
    name, _, value = pair.partition("=")
    return name, value, {a.partition("=")[0]: a.partition("=")[2] for a in attributes}


def start() -> tuple[dict[str, str], str]:
    """GET /ops/signin: the authorize request's parameters and the pending sign-in cookie."""
    answer = get("/ops/signin")
    assert answer["statusCode"] == 302
    [location] = header(answer, "Location")
    url = urlsplit(location)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"https://{DOMAIN}/oauth2/authorize"
    [pending] = header(answer, "Set-Cookie")
    return {k: v[0] for k, v in parse_qs(url.query).items()}, pending


def test_signing_in_sets_the_session_cookie_the_authorizer_lets_in(
    cognito: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a staff member opening the sign-in: the pool's authorize endpoint, with state and PKCE (S256)
    authorize, pending = start()
    assert authorize["response_type"] == "code" and authorize["client_id"] == CLIENT
    assert authorize["redirect_uri"] == CALLBACK and authorize["scope"] == "openid email"
    assert authorize["code_challenge_method"] == "S256" and len(authorize["state"]) >= 32
    name, value, attributes = cookie_attributes(pending)
    assert name == ops.SIGNIN_COOKIE and value.startswith(authorize["state"] + ".")
    assert attributes == {
        "Path": "/Prod/ops/callback",
        "Max-Age": "600",
        "HttpOnly": "",
        "Secure": "",
        "SameSite": "Lax",
    }
    # When the pool sends the browser back with a code (and the browser sends the pending cookie back)
    code = cognito.issue(authorize)
    answer = get("/ops/callback", {"code": code, "state": authorize["state"]}, f"{name}={value}")
    # Then the code was redeemed with the PKCE verifier, and the session cookie holds the ID token
    assert answer["statusCode"] == 302 and header(answer, "Location") == ["/Prod/ops/"]
    assert cognito.calls[-1]["code_verifier"] == value.split(".", 1)[1]
    session, done = [cookie_attributes(c) for c in header(answer, "Set-Cookie")]
    assert session[0] == "illbridge_staff" and session[1].count(".") == 2
    assert session[2] == {
        "Path": "/Prod/ops",
        "Max-Age": "3600",
        "HttpOnly": "",
        "Secure": "",
        "SameSite": "Lax",
    }
    assert done[0] == ops.SIGNIN_COOKIE and done[1] == "" and done[2]["Max-Age"] == "0"
    # and the ops routes' authorizer lets that cookie in
    pool = Pool(KEY)
    verifier = authorizer.Verifier(
        authorizer_issuer(), CLIENT, fetch=pool, clock=lambda: session_now(session[1])
    )
    monkeypatch.setattr(authorizer, "_verifiers", {(authorizer_issuer(), CLIENT): verifier})
    monkeypatch.setenv("STAFF_USER_POOL_ID", "eu-west-1_Staff0001")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    allowed = authorizer.handler(authorizer_event(f"illbridge_staff={session[1]}"), None)
    assert allowed["context"]["email"] == "ill-staff@library.example"


def authorizer_issuer() -> str:
    return "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Staff0001"


def session_now(id_token: str) -> float:
    payload = id_token.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iat"])


def authorizer_event(cookie: str) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/Prod/GET/ops",
        "headers": {"Cookie": cookie},
        "multiValueHeaders": {"Cookie": [cookie]},
        "stageVariables": {"StaffClientId": CLIENT, "StaffSignInDomain": DOMAIN},
    }


def test_a_callback_that_did_not_start_here_sets_no_cookie(cognito: TokenEndpoint) -> None:
    authorize, pending = start()
    name, value, _ = cookie_attributes(pending)
    code = cognito.issue(authorize)
    # a state that is not the one this browser was given (a forged callback link)
    answer = get("/ops/callback", {"code": code, "state": "someone-elses-state"}, f"{name}={value}")
    assert answer["statusCode"] == 400 and not header(answer, "Set-Cookie")
    # no pending cookie at all (expired after 10 minutes, or another browser)
    answer = get("/ops/callback", {"code": code, "state": authorize["state"]})
    assert answer["statusCode"] == 400 and not header(answer, "Set-Cookie")
    assert "Sign in again" in answer["body"]
    assert cognito.calls == []  # the code was never sent anywhere


def test_a_code_redeemed_with_another_sign_in_s_verifier_is_refused_by_the_pool(
    cognito: TokenEndpoint,
) -> None:
    first, _ = start()
    second, pending = start()
    name, value, _ = cookie_attributes(pending)
    # the first request's code, arriving with the second sign-in's state and verifier
    code = cognito.issue(first)
    answer = get("/ops/callback", {"code": code, "state": second["state"]}, f"{name}={value}")
    assert answer["statusCode"] == 401 and not header(answer, "Set-Cookie")
    assert "did not succeed" in answer["body"]


def test_a_token_endpoint_answer_that_is_not_tokens_sets_no_cookie(cognito: TokenEndpoint) -> None:
    for broken in ({"id_token": ""}, {"access_token": "only"}, ["not", "an", "object"], "<html>oops</html>"):
        authorize, pending = start()
        name, value, _ = cookie_attributes(pending)
        cognito.answer_once = broken
        answer = get(
            "/ops/callback",
            {"code": cognito.issue(authorize), "state": authorize["state"]},
            f"{name}={value}",
        )
        assert answer["statusCode"] == 401 and not header(answer, "Set-Cookie"), broken


def test_a_refused_sign_in_and_an_unreachable_pool_set_no_cookie(
    cognito: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = get("/ops/callback", {"error": "access_denied", "state": "x"})
    assert answer["statusCode"] == 401 and not header(answer, "Set-Cookie")
    authorize, pending = start()
    name, value, _ = cookie_attributes(pending)
    monkeypatch.setattr(ops, "cognito_url", lambda domain, path: f"http://127.0.0.1:9{path}")  # nobody there
    answer = get("/ops/callback", {"code": "c", "state": authorize["state"]}, f"{name}={value}")
    assert answer["statusCode"] == 503 and not header(answer, "Set-Cookie")


def test_signing_out_clears_the_cookie_and_ends_the_pool_s_session() -> None:
    answer = get("/ops/signout", cookies="illbridge_staff=abc")
    assert answer["statusCode"] == 302
    [location] = header(answer, "Location")
    url = urlsplit(location)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"https://{DOMAIN}/logout"
    assert parse_qs(url.query) == {"client_id": [CLIENT], "logout_uri": [f"https://{HOST}/Prod/ops/signin"]}
    [gone] = [cookie_attributes(c) for c in header(answer, "Set-Cookie")]
    assert gone[0] == "illbridge_staff" and gone[1] == "" and gone[2]["Max-Age"] == "0"
    assert gone[2]["Path"] == "/Prod/ops"


def test_the_sandbox_s_open_gateway_has_no_sign_in() -> None:
    for path in ("/ops/signin", "/ops/callback", "/ops/signout"):
        answer = get(path, aws=False)
        assert answer["statusCode"] == 404 and "serves the staff page open" in answer["body"]
        assert not header(answer, "Set-Cookie")
