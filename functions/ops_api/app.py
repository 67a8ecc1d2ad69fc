"""The ops API and the staff page (behind StaffUserPool on AWS; open on the sandbox's loopback gateway).

On AWS a browser signs in with the user pool's own sign-in pages (authorization code with PKCE):

- ``GET /ops/signin`` -> 302 to the pool's ``/oauth2/authorize`` (stage variables ``StaffClientId`` and
  ``StaffSignInDomain``), with a random ``state`` and PKCE verifier kept in a short-lived cookie for the callback;
- ``GET /ops/callback?code=&state=`` -> checks ``state`` against that cookie, redeems the code at the pool's
  ``/oauth2/token`` and sets the session cookie (``illbridge_staff``: the ID token; Secure, HttpOnly,
  SameSite=Lax, Path ``/Prod/ops``, Max-Age the token's lifetime), then 302 to the page. The token comes
  straight from Cognito over TLS; the authorizer (functions/ops_authorizer) verifies it on every request;
- ``GET /ops/signout`` -> clears the cookie and 302 to the pool's ``/logout``, which comes back to the sign-in.

Every other route is behind the authorizer; a request without a good token is sent to ``/ops/signin`` by the
API's gateway response. Sources: Amazon Cognito developer guide (authorize, token and logout endpoints, PKCE).

- ``GET /ops/`` -> the staff page (HTML, no JavaScript): the attention list, a search by hrid, a request's
  timeline (``?hrid=EAST-12[&library=east]``), a Retry button per failed step;
- ``GET /ops/requests/{library}/{hrid}`` -> JSON: the request (ReShare state, mapping, steps, history, items);
- ``GET /ops/attention[?library=east]`` -> JSON: the open attention items, newest first;
- ``POST /ops/requests/{library}/{hrid}/retry`` [``{"step": "borrow_received"}``] -> JSON: what was retried;
  from the page's form (``application/x-www-form-urlencoded``) it answers 303 back to the request's page.

Unknown hrid or library: 404; a refusal (nothing to retry, an unknown step): 400; ReShare or the table out of
reach: 503. No answer carries the text of an internal error.
"""

import hmac
import secrets
from base64 import urlsafe_b64encode
from hashlib import sha256
from urllib.parse import parse_qs, urlencode

import requests
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from illbridge import staff
from illbridge import staffpage as page
from illbridge.errors import BridgeError, ConfigurationError
from illbridge.models import StepName
from illbridge.observability import logger, metrics, tracer
from illbridge.wiring import current_services

app = APIGatewayRestResolver()


def _json(status: int, body: object) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _html(status: int, body: str) -> Response:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={
            "Cache-Control": "no-store",
            # no script at all; forms post only back to the bridge
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        },
    )


def _base() -> str:
    """The path the page lives under: ``/Prod/ops`` through API Gateway's own host, ``/ops`` otherwise."""
    event = app.current_event
    host = (event.headers or {}).get("Host") or (event.headers or {}).get("host") or ""
    stage = event.request_context.stage
    return f"/{stage}/ops" if "execute-api" in host and stage else "/ops"


# --- signing in on AWS (the sandbox's gateway has no stage variables and serves the page open) ---------------

SIGNIN_COOKIE = "illbridge_signin"  # "<state>.<PKCE verifier>", for the callback only, 10 minutes
SIGNIN_SECONDS = 600
TOKEN_TIMEOUT = (2.0, 5.0)  # connect, read: well inside API Gateway's 29 s


def _sign_in_settings() -> tuple[str, str] | None:
    """(app client id, sign-in domain) from the stage variables, or None where there is no sign-in."""
    variables = app.current_event.stage_variables or {}
    client, domain = variables.get("StaffClientId"), variables.get("StaffSignInDomain")
    return (client, domain) if client and domain else None


def cognito_url(domain: str, path: str) -> str:
    """An endpoint of the user pool's domain (``/oauth2/authorize``, ``/oauth2/token``, ``/logout``)."""
    return f"https://{domain}{path}"


def _origin() -> str:
    headers = {k.lower(): v for k, v in (app.current_event.headers or {}).items()}
    return f"https://{headers.get('host', '')}"


def _cookie(name: str) -> str | None:
    headers = app.current_event.multi_value_headers or {}
    values = [v for k, vs in headers.items() if k.lower() == "cookie" for v in vs or []]
    if not values:
        values = [v for k, v in (app.current_event.headers or {}).items() if k.lower() == "cookie"]
    for header in values:
        for pair in header.split(";"):
            key, _, value = pair.strip().partition("=")
            if key == name:
                return value
    return None


def _page_cookie(name: str, value: str, path: str, max_age: int) -> Cookie:
    return Cookie(
        name, value, path=path, secure=True, http_only=True, max_age=max_age, same_site=SameSite.LAX_MODE
    )


def _redirect(location: str, cookies: list[Cookie] | None = None) -> Response:
    return Response(
        status_code=302, headers={"Location": location, "Cache-Control": "no-store"}, cookies=cookies, body=""
    )


def _no_sign_in(base: str) -> Response:
    return _html(404, page.error(base, "There is no sign-in here: this gateway serves the staff page open."))


@app.get("/ops/signin")
def sign_in() -> Response:
    base, settings = _base(), _sign_in_settings()
    if settings is None:
        return _no_sign_in(base)
    client, domain = settings
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = urlsafe_b64encode(sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client,
            "redirect_uri": f"{_origin()}{base}/callback",
            "scope": "openid email",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    pending = _page_cookie(SIGNIN_COOKIE, f"{state}.{verifier}", f"{base}/callback", SIGNIN_SECONDS)
    return _redirect(f"{cognito_url(domain, '/oauth2/authorize')}?{query}", [pending])


@app.get("/ops/callback")
def callback() -> Response:
    base, settings = _base(), _sign_in_settings()
    if settings is None:
        return _no_sign_in(base)
    client, domain = settings
    params = app.current_event.query_string_parameters or {}
    code, state = params.get("code") or "", params.get("state") or ""
    expected, _, verifier = (_cookie(SIGNIN_COOKIE) or "").partition(".")
    again = {"link": "/signin", "link_text": "Sign in again"}
    if params.get("error"):
        logger.info("staff sign-in refused by the user pool", extra={"error": params.get("error")})
        return _html(401, page.error(base, "The sign-in did not succeed.", **again))
    if not (code and state and expected and verifier and hmac.compare_digest(state, expected)):
        return _html(400, page.error(base, "This sign-in has expired or did not start here.", **again))
    try:
        answer = requests.post(
            cognito_url(domain, "/oauth2/token"),
            data={
                "grant_type": "authorization_code",
                "client_id": client,
                "code": code,
                "redirect_uri": f"{_origin()}{base}/callback",
                "code_verifier": verifier,
            },
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=TOKEN_TIMEOUT,
        )
    except requests.RequestException as exc:
        logger.warning("staff sign-in: the user pool cannot be reached", extra={"error": type(exc).__name__})
        return _html(503, page.error(base, "The sign-in service cannot be reached just now.", **again))
    try:
        tokens = answer.json()
    except ValueError:
        tokens = None
    tokens = tokens if isinstance(tokens, dict) else {}
    id_token = tokens.get("id_token") if answer.status_code == 200 else None
    lifetime = tokens.get("expires_in", 3600)
    if not (isinstance(id_token, str) and id_token and isinstance(lifetime, int) and lifetime > 0):
        logger.info(
            "staff sign-in: the code was not redeemed",
            extra={"status": answer.status_code, "error": tokens.get("error")},
        )
        return _html(401, page.error(base, "The sign-in did not succeed.", **again))
    session = _page_cookie(page.SESSION_COOKIE, id_token, base, lifetime)
    done = _page_cookie(SIGNIN_COOKIE, "", f"{base}/callback", 0)
    return _redirect(f"{base}/", [session, done])


@app.get("/ops/signout")
def sign_out() -> Response:
    base, settings = _base(), _sign_in_settings()
    if settings is None:
        return _no_sign_in(base)
    client, domain = settings
    query = urlencode({"client_id": client, "logout_uri": f"{_origin()}{base}/signin"})
    gone = _page_cookie(page.SESSION_COOKIE, "", base, 0)
    return _redirect(f"{cognito_url(domain, '/logout')}?{query}", [gone])


def _signed_in() -> str | None:
    """Who the authorizer let in (their e-mail), on AWS; None on the sandbox's open gateway."""
    context = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    return context.get("email") or context.get("username") or None


def _error(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, staff.NotFound | ConfigurationError):
        return 404, str(exc)
    if isinstance(exc, BridgeError) and exc.transient:
        logger.warning("ops API: a system is out of reach", extra={"error": str(exc)})
        return 503, "ReShare or the bridge's table cannot be reached just now: try again"
    if isinstance(exc, BridgeError):
        return 400, str(exc)
    logger.exception("ops API failed")
    return 500, "the bridge failed; its log has the details"


@app.get("/ops")  # and /ops/: API Gateway and the resolver take both
def staff_page() -> Response:
    params = app.current_event.query_string_parameters or {}
    library = (params.get("library") or "").strip() or None
    hrid = (params.get("hrid") or "").strip() or None
    services = current_services()
    base = _base()
    try:
        libraries = [(c.library_id, c.name) for c in staff.library_configs(services)]
        items = [i.model_dump(mode="json") for i in staff.attention(services, library)]
        views = staff.request_views(services, hrid, library) if hrid else []
    except Exception as exc:
        status, message = _error(exc)
        if not hrid or status >= 500:
            return _html(status, page.error(base, message))
        return _html(status, page.render(base, libraries, library, hrid, [], [], notice=message))
    retried = params.get("retried")
    notice = f"Retry sent for {retried}: the step runs again within seconds." if retried else None
    return _html(
        200, page.render(base, libraries, library, hrid, items, views, notice=notice, signed_in=_signed_in())
    )


@app.get("/ops/requests/<library>/<hrid>")
def request_view(library: str, hrid: str) -> Response:
    try:
        return _json(200, staff.request_view(current_services(), hrid, library))
    except Exception as exc:
        status, message = _error(exc)
        return _json(status, {"error": message})


@app.get("/ops/attention")
def attention_list() -> Response:
    library = (app.current_event.query_string_parameters or {}).get("library") or None
    try:
        items = staff.attention(current_services(), library)
    except Exception as exc:
        status, message = _error(exc)
        return _json(status, {"error": message})
    return _json(200, {"items": [i.model_dump(mode="json") for i in items]})


@app.post("/ops/requests/<library>/<hrid>/retry")
def retry(library: str, hrid: str) -> Response:
    event = app.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    from_page = headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    try:
        if from_page:
            step_text = (parse_qs(event.decoded_body or "").get("step") or [""])[0] or None
        else:
            body = event.json_body if event.body else {}
            step_text = body.get("step") if isinstance(body, dict) else None
        step = StepName(step_text) if step_text else None
    except (ValueError, TypeError):
        return _json(400, {"error": f"no step {step_text!r}: one of {', '.join(s.value for s in StepName)}"})
    try:
        sent = staff.retry_request(current_services(), hrid, library, step)
    except Exception as exc:
        status, message = _error(exc)
        if from_page and status < 500:
            return _html(status, page.error(_base(), message))
        return _json(status, {"error": message})
    metrics.add_metric(name="OpsRetries", unit="Count", value=len(sent))
    retried = [{"step": s["step"], "released": s["released"]} for s in sent]
    if from_page:
        query = urlencode({"library": library, "hrid": hrid, "retried": ", ".join(s["step"] for s in sent)})
        return Response(status_code=303, headers={"Location": f"{_base()}/?{query}"}, body="")
    return _json(202, {"library": library, "hrid": hrid, "retried": retried})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
