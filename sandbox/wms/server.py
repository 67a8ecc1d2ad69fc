"""The HTTP side of the WMS simulator: a real loopback server (stdlib ``ThreadingHTTPServer``).

Endpoints: ``POST /oauth/token`` (form ``grant_type=client_credentials&scope=WMS_NCIP [SCIM:read_user]``,
HTTP Basic WSKey:secret; ``context:*`` scope words are ignored), ``POST /ncip`` (see :mod:`.ncip`),
``POST /idaas/scim/v2/Users/.search`` (see :mod:`.scim`) and the unauthenticated ``/_sim/`` control API (JSON;
``?registry_id=`` filters every GET list, default all institutions; every record carries ``registry_id``):

* ``GET /_sim/state`` everything; ``POST /_sim/reset`` empty all (also faults, log, token TTL);
  ``POST /_sim/seed-demo`` (re)create the demo institutions 128807 and 262626;
  ``POST /_sim/seed-oclc-samples`` ``{patron?: true, item?: true}`` (re)create the institution OCLC's CircILL
  samples address (91475, symbol OCWMS, WSKey ``ocwms-key``/``ocwms-secret``), so they run unmodified
* ``GET|POST /_sim/institutions`` ``{registry_id, wskey, secret, name?, symbol?, branches: ["id" |
  {branch_id, name, main}], ill_settings: {holding_location, shelving_location, home_branch},
  policies?: {patron_loan_days, ill_loan_days}}`` (upsert; ``patron_loan_days``/``ill_loan_days`` also accepted
  at top level)
* ``GET|POST /_sim/branches`` ``{registry_id, branch_id, name, main?}``
* ``GET|POST /_sim/patrons`` ``{registry_id, barcode, expires: "YYYY-MM-DD", blocked, borrower_category,
  home_branch, symbol?, given_name?, family_name?, email?}`` (upsert)
* ``GET|POST /_sim/items`` ``{registry_id, barcode, branch, collection_type: "circulating" | "non-circulating",
  call_number, title, author?, status?}`` (upsert; real items only); ``GET /_sim/items/{barcode}`` the item
  with its ``holds``, ``loans``, ``active_loan``, ``active_hold`` (400 if the barcode is in several
  institutions and no ``registry_id`` is given)
* ``GET|POST /_sim/policies`` ``{registry_id, patron_loan_days, ill_loan_days}``
* ``GET /_sim/temp-items``, ``/_sim/holds``, ``/_sim/loans``, ``/_sim/notices``, ``/_sim/requests-log``
* ``POST /_sim/checkin`` ``{barcode, branch?, registry_id?}`` (branch default: the main branch) ->
  ``{registry_id, branch, item, hold, loan, notice, destination, in_transit}``;
  ``POST /_sim/checkout`` ``{item_barcode, patron_barcode, registry_id?}`` ->
  ``{registry_id, item, hold, loan, patron, existing}``; refusals -> 409 ``{error, problem_type,
  problem_detail, problem_element, problem_value}`` (unknown item/patron, blocked, expired, not checked out,
  on loan / on hold for someone else, unknown branch); bad payload -> 400; unknown registry_id -> 404
* ``GET|POST|DELETE /_sim/faults`` ``{operation, kind, latency_ms, status, timeout_s, problem_type,
  problem_detail, times, probability, seed}`` (``probability`` 0 < p <= 1, default 1: the share of matching
  calls the fault fires on, drawn from its own ``random.Random(seed)``; a call it passes over goes on to the
  next matching fault) (POST answers the fault with its ``fault_id``; DELETE -> ``{cleared: n}``)
* ``GET|POST /_sim/token-ttl`` ``{token_ttl: seconds}``; ``POST /_sim/expire-tokens`` -> ``{expired: n}``
* ``GET /_sim/options`` -> ``{options: {switch: value}, switches: [{name, values, default, value, known}]}``;
  ``POST /_sim/options`` ``{switch: value, ...}`` (all or nothing: an unknown switch or value -> 400, nothing
  changed) -> the same as GET. The switches are declared in :mod:`.options`.
* ``/_sim/requests-log`` records every ``/ncip`` call and every token request (``operation`` ``token``), so
  calls per token can be counted.

Transport rules: bodies over 1 MiB -> 413 (JSON); ``Transfer-Encoding`` other than identity -> 411; a bad
``Content-Length`` -> 400; unknown path -> 404 JSON; known path, wrong method (or a method the server has
no handler for at all) -> 405 JSON (with ``Allow`` where the path is known); malformed request line -> 400 JSON.
``/ncip``: no/expired/unknown bearer token or one without scope ``WMS_NCIP`` -> 401 JSON (``invalid_token``);
body empty or not XML (JSON, binary, text) -> 400 JSON; XML with a non-XML ``Content-Type`` (e.g.
``text/plain``, ``application/json``) -> 415 JSON; everything else -> HTTP 200 with an NCIP message.
Any unexpected exception is logged with its traceback and answered (``/ncip``: NCIP top-level Problem
``Temporary Processing Failure``, HTTP 200; elsewhere JSON 400); the server keeps serving.

Faults (``/_sim/faults``) are taken per matching request after authentication and parsing (so the operation is
known): ``latency`` sleeps then answers normally; ``http_error`` answers ``status`` with a JSON body and does
nothing; ``timeout`` holds the request ``timeout_s`` without answering, then closes the connection (nothing
applied); ``drop_response`` applies the operation, then closes the connection without any response;
``problem`` answers a Problem without applying (NCIP: inside the response element, HTTP 200; SCIM: 500 SCIM
error; token: 400 JSON ``{"error": <problem_type>, "error_description": <problem_detail>}``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..http import (
    AllMethodsHandler,
    BodyError,
    BodyRules,
    BodyTruncated,
    ServedSimulator,
    TrackingServer,
    read_body,
)
from . import ncip as nc
from . import scim
from . import state as st
from .options import OptionError

log = logging.getLogger("sandbox.wms")

MAX_BODY = 1024 * 1024
DRAIN_LIMIT = 16 * 1024 * 1024
XML_MEDIA_TYPES = ("application/xml", "text/xml")
_BODY_RULES = BodyRules(
    max_body=MAX_BODY,
    drain_limit=DRAIN_LIMIT,
    refused_encoding="Transfer-Encoding is not supported; send Content-Length",
    bad_length="invalid Content-Length",
    negative_length="invalid Content-Length",
    too_large="payload too large",
    strip_length=True,
    drain_errors_ok=True,
    strict_length=True,
)


class _Drop(Exception):
    """Close the connection without answering."""


class _HttpError(Exception):
    def __init__(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(payload.get("error", ""))
        self.status = status
        self.payload = payload
        self.headers = headers or {}


class _Server(TrackingServer):
    track_threads = True
    connection_thread_name = "wms-sim-conn"

    def __init__(self, address: tuple[str, int], sim: WmsSimulator) -> None:
        self.sim = sim
        self.stop_event = threading.Event()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)


class WmsSimulator(ServedSimulator):
    """The WMS Circulation simulator: ``start()`` serves on loopback in a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: int = 1200,
        options: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.state = st.WmsState(token_ttl=token_ttl, options=options)
        self.ncip = nc.NcipService(self.state)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # lifecycle ------------------------------------------------------------------------------------
    def start(self) -> str:
        with self._lifecycle:
            if self._server is not None:
                return self.base_url
            server = _Server((self.host, self._requested_port), self)
            self._server = server
            self._thread = server.serve_in_thread("wms-sim")
            log.info("WMS simulator listening on %s", self.base_url)
            return self.base_url

    def stop(self) -> None:
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None:
                return
            server.stop_event.set()
            server.stop_serving(thread, timeout=5.0)
            self._server = None
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    def seed_demo(self) -> None:
        self.state.seed_demo()

    def reset(self) -> None:
        self.state.reset()


# The request handler -----------------------------------------------------------------------------

_SIM_ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = []


def _route(pattern: str, **methods: str) -> None:
    _SIM_ROUTES.append((re.compile("^" + pattern + "$"), methods))


_route("/oauth/token", POST="token")
_route("/ncip", POST="ncip")
_route("/idaas/scim/v2/Users/\\.search", POST="scim_search")
_route("/_sim/state", GET="sim_state")
_route("/_sim/reset", POST="sim_reset")
_route("/_sim/seed-demo", POST="sim_seed_demo")
_route("/_sim/seed-oclc-samples", POST="sim_seed_oclc_samples")
_route("/_sim/institutions", GET="sim_institutions", POST="sim_add_institution")
_route("/_sim/branches", GET="sim_branches", POST="sim_add_branch")
_route("/_sim/patrons", GET="sim_patrons", POST="sim_add_patron")
_route("/_sim/items", GET="sim_items", POST="sim_add_item")
_route("/_sim/items/(?P<barcode>[^/]+)", GET="sim_item")
_route("/_sim/policies", GET="sim_policies", POST="sim_set_policy")
_route("/_sim/temp-items", GET="sim_temp_items")
_route("/_sim/holds", GET="sim_holds")
_route("/_sim/loans", GET="sim_loans")
_route("/_sim/notices", GET="sim_notices")
_route("/_sim/checkin", POST="sim_checkin")
_route("/_sim/checkout", POST="sim_checkout")
_route("/_sim/requests-log", GET="sim_requests_log")
_route("/_sim/faults", GET="sim_faults", POST="sim_add_fault", DELETE="sim_clear_faults")
_route("/_sim/token-ttl", GET="sim_token_ttl", POST="sim_set_token_ttl")
_route("/_sim/expire-tokens", POST="sim_expire_tokens")
_route("/_sim/options", GET="sim_options", POST="sim_set_options")


class _Handler(AllMethodsHandler):
    server: _Server
    server_version = "WmsSimulator/1.0"
    sys_version = ""
    protocol_version = "HTTP/1.0"
    timeout = 15  # socket timeout for reading a request

    # plumbing -------------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (bad request line, unknown method, huge headers) as JSON; 501 -> 405."""
        if code == 501:
            code, message = 405, f"method {str(self.command)[:40]!r} not allowed"
        self._responded = True
        self.close_connection = True
        text = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"error": text}).encode("utf-8")
        with contextlib.suppress(OSError):
            self.send_response(code, text)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    @property
    def sim(self) -> WmsSimulator:
        return self.server.sim

    @property
    def state(self) -> st.WmsState:
        return self.server.sim.state

    def handle_method(self, method: str) -> None:
        self._responded = False
        self._method = method
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        self._query = parse_qs(parts.query)
        try:
            for pattern, methods in _SIM_ROUTES:
                match = pattern.match(path)
                if match is None:
                    continue
                handler = methods.get(method)
                if handler is None:
                    allowed = ", ".join(sorted(methods))
                    self._send_json(
                        405, {"error": f"method {method} not allowed", "allow": allowed}, Allow=allowed
                    )
                    return
                getattr(self, "_" + handler)(**{k: unquote(v) for k, v in match.groupdict().items()})
                return
            self._send_json(404, {"error": "not found", "path": path[:200]})
        except _Drop:
            self.close_connection = True
        except _HttpError as exc:
            self._send_json(exc.status, exc.payload, **exc.headers)
        except (ConnectionError, TimeoutError):
            log.debug("client connection failed", exc_info=True)
            self.close_connection = True
        except Exception as exc:
            log.exception("unexpected error handling %s %s", method, path[:200])
            self.close_connection = True
            if self._responded:
                return
            with contextlib.suppress(OSError):
                if path == "/ncip":
                    body = nc.top_level_problem(
                        "Temporary Processing Failure", f"internal error: {type(exc).__name__}"
                    )
                    self._send(200, body, "application/xml; charset=utf-8")
                else:
                    self._send_json(
                        400, {"error": "request could not be processed", "detail": type(exc).__name__}
                    )

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self._method != "HEAD":
            self.wfile.write(body)

    def _send_json(
        self, status: int, payload: Any, content_type: str = "application/json", **headers: str
    ) -> None:
        body = json.dumps(payload, indent=None, sort_keys=False).encode("utf-8")
        self._send(status, body, content_type, **headers)

    def _read_body(self) -> bytes:
        try:
            return read_body(self, _BODY_RULES)
        except BodyError as exc:
            payload: dict[str, Any] = {"error": exc.message}
            if exc.status == 413:
                payload["limit_bytes"] = MAX_BODY
            raise _HttpError(exc.status, payload) from None
        except BodyTruncated:
            raise _Drop() from None

    def _json_body(self) -> dict[str, Any]:
        body = self._read_body()
        if not body.strip():
            return {}
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _HttpError(400, {"error": f"body is not JSON: {exc}"}) from None
        if not isinstance(payload, dict):
            raise _HttpError(400, {"error": "body must be a JSON object"})
        return payload

    def _param(self, name: str) -> str | None:
        values = self._query.get(name)
        return values[0] if values else None

    def _bearer(self) -> st.Token | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return self.state.token(value.strip())

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.server.stop_event.wait(seconds)

    def _fault_prelude(self, fault: st.Fault | None) -> None:
        """Apply the fault kinds that act before the operation; ``problem``/``drop_response`` are left to the caller."""
        if fault is None:
            return
        if fault.kind == "latency":
            self._wait(fault.latency_ms / 1000.0)
        elif fault.kind == "http_error":
            raise _HttpError(
                fault.status, {"error": "injected fault", "status": fault.status, "fault_id": fault.fault_id}
            )
        elif fault.kind == "timeout":
            self._wait(fault.timeout_s)
            raise _Drop()

    # OAuth ----------------------------------------------------------------------------------------
    def _logged(self, entry: dict[str, Any], serve: Callable[[dict[str, Any]], None]) -> None:
        """Serve one request and put it in the request log with its outcome, whatever happens.

        The answer is held back until the request is logged: a client that has its answer (and sends its next
        request, or reads the log) always finds this request in the log, in the order the calls were made.
        """
        wire, answer = self.wfile, io.BytesIO()
        self.wfile = answer  # type: ignore[assignment]
        try:
            serve(entry)
        except _HttpError as exc:
            entry.setdefault("outcome", f"http_{exc.status}")
            entry["http_status"] = exc.status
            raise
        except _Drop:
            entry.setdefault("outcome", "connection_closed")
            entry["http_status"] = None
            raise
        finally:
            entry.setdefault("outcome", "error")
            self.state.log_request(entry)
            self.wfile = wire
            if answer.getvalue():
                self.wfile.write(answer.getvalue())

    def _token(self) -> None:
        def serve(entry: dict[str, Any]) -> None:
            self._token_inner(entry)
            entry.setdefault("outcome", "success")
            entry.setdefault("http_status", 200)

        self._logged({"operation": "token", "registry_id": None}, serve)

    def _token_inner(self, entry: dict[str, Any]) -> None:
        body = self._read_body()
        fault = self.state.take_fault("token")
        self._fault_prelude(fault)
        if fault is not None and fault.kind == "problem":
            raise _HttpError(400, {"error": fault.problem_type, "error_description": fault.problem_detail})
        inst = self._client_credentials()
        if inst is None:
            raise _HttpError(
                401,
                {"error": "invalid_client", "error_description": "unknown WSKey or wrong secret"},
                {"WWW-Authenticate": 'Basic realm="oauth"'},
            )
        form = (
            parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body else dict(self._query)
        )
        grant = (form.get("grant_type") or [""])[0]
        if grant != "client_credentials":
            raise _HttpError(
                400, {"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r}"}
            )
        requested = " ".join(form.get("scope") or []).split()
        scopes = tuple(s for s in requested if not s.startswith(("context:", "refresh_token")))
        unknown = [s for s in scopes if s not in st.ALLOWED_SCOPES]
        if not scopes or unknown:
            detail = f"unknown scope(s): {' '.join(unknown)}" if unknown else "scope is required"
            raise _HttpError(400, {"error": "invalid_scope", "error_description": detail})
        token = self.state.issue_token(inst, scopes)
        entry.update(registry_id=token.registry_id, scopes=list(token.scopes))
        payload = {
            "access_token": token.access_token,
            "token_type": "bearer",
            "expires_in": int((token.expires_at - token.issued_at).total_seconds()),
            "expires_at": st.iso(token.expires_at),
            "scope": " ".join(token.scopes),
            "context_institution_id": token.registry_id,
        }
        if fault is not None and fault.kind == "drop_response":
            raise _Drop()
        self._send_json(200, payload)

    def _client_credentials(self) -> st.Institution | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        wskey, sep, secret = decoded.partition(":")
        if not sep:
            return None
        return self.state.authenticate_client(wskey, secret)

    # NCIP -----------------------------------------------------------------------------------------
    def _ncip(self) -> None:
        self._logged({"operation": None, "registry_id": None}, self._ncip_inner)

    def _ncip_inner(self, entry: dict[str, Any]) -> None:
        body = self._read_body()
        token = self._bearer()
        if token is None or "WMS_NCIP" not in token.scopes:
            entry["outcome"] = "unauthorized"
            raise _HttpError(
                401,
                {
                    "error": "invalid_token",
                    "error_description": "missing, unknown or expired token, or no WMS_NCIP",
                },
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        entry["registry_id"] = token.registry_id
        if not body.strip(b" \t\r\n\x00") or not nc.looks_like_xml(body):
            entry["outcome"] = "not_xml"
            raise _HttpError(400, {"error": "the body must be an NCIP XML message"})
        media = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if media and media not in XML_MEDIA_TYPES and not media.endswith("+xml"):
            entry["outcome"] = "unsupported_media_type"
            raise _HttpError(
                415, {"error": f"unsupported Content-Type {media[:100]!r}; send application/xml"}
            )
        try:
            request = nc.parse_request(body)
        except nc.NonXmlBody as exc:
            entry["outcome"] = "not_xml"
            raise _HttpError(400, {"error": str(exc)}) from None
        except nc.MessageRejected as exc:
            entry.update(
                operation=exc.operation, outcome="problem", problem_type=exc.problem_type, http_status=200
            )
            self._send(
                200,
                nc.top_level_problem(exc.problem_type, exc.detail, exc.element),
                "application/xml; charset=utf-8",
            )
            return
        entry["operation"] = request.operation
        fault = self.state.take_fault(request.operation)
        if fault is not None:
            entry["fault"] = fault.kind
            entry["outcome"] = f"fault_{fault.kind}"
        self._fault_prelude(fault)
        if fault is not None and fault.kind == "problem":
            body_out = nc.problem_response(
                request, token.registry_id, fault.problem_type, fault.problem_detail
            )
            entry.update(outcome="problem", problem_type=fault.problem_type, http_status=200)
            self._send(200, body_out, "application/xml; charset=utf-8")
            return
        result = self.sim.ncip.execute(token.registry_id, request)
        if fault is not None and fault.kind == "drop_response":
            entry.update(applied=result.outcome, problem_type=result.problem_type)
            raise _Drop()
        entry.update(outcome=result.outcome, problem_type=result.problem_type, http_status=200)
        self._send(200, result.body, "application/xml; charset=utf-8")

    # SCIM -----------------------------------------------------------------------------------------
    def _scim_search(self) -> None:
        body = self._read_body()
        header = (self.headers.get("Authorization") or "").strip()
        token = self._bearer()
        if token is None:
            status, payload = scim.unauthorized()
        elif scim.READ_SCOPE not in token.scopes:
            status, payload = scim.forbidden()
        elif not scim.media_type_ok(self.headers.get("Content-Type")):
            status, payload = scim.unsupported_media_type()
        else:
            fault = self.state.take_fault("scim")
            self._fault_prelude(fault)
            if fault is not None and fault.kind == "problem":
                status, payload = scim.unable_to_handle(fault.problem_detail)
            else:
                status, payload = scim.search(self.state, token.registry_id, body, self.sim.base_url)
                if fault is not None and fault.kind == "drop_response":
                    raise _Drop()
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 and not header else {}
        self._send_json(status, payload, scim.SCIM_CONTENT_TYPE, **extra)

    # /_sim/ ---------------------------------------------------------------------------------------
    def _sim_call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except st.NotFound as exc:
            raise _HttpError(404, {"error": str(exc)}) from None
        except st.AmbiguousBarcode as exc:
            raise _HttpError(400, {"error": str(exc)}) from None
        except st.CircError as exc:
            raise _HttpError(409, exc.to_dict()) from None
        except (ValueError, TypeError) as exc:
            raise _HttpError(400, {"error": str(exc)}) from None

    def _sim_state(self) -> None:
        self._send_json(200, self.state.snapshot())

    def _sim_reset(self) -> None:
        self._read_body()
        self.state.reset()
        self._send_json(200, {"ok": True})

    def _sim_seed_demo(self) -> None:
        self._read_body()
        self.state.seed_demo()
        self._send_json(200, {"ok": True, "institutions": [i["registry_id"] for i in self._institutions()]})

    def _institutions(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [i.summary() for i in self.state.institutions.values()]

    def _sim_institutions(self) -> None:
        wanted = self._param("registry_id")
        self._send_json(200, [i for i in self._institutions() if not wanted or i["registry_id"] == wanted])

    def _sim_add_institution(self) -> None:
        payload = self._json_body()
        allowed = {"registry_id", "wskey", "secret", "name", "symbol", "branches", "ill_settings", "policies"}
        args = {k: v for k, v in payload.items() if k in allowed}
        policies = dict(args.pop("policies", None) or {})
        for key in ("patron_loan_days", "ill_loan_days"):
            if key in payload:
                policies[key] = payload[key]
        inst = self._sim_call(self.state.upsert_institution, policies=policies or None, **args)
        self._send_json(200, inst.summary())

    def _sim_branches(self) -> None:
        self._send_json(200, self._sim_call(self.state.list_branches, self._param("registry_id")))

    def _sim_add_branch(self) -> None:
        payload = self._json_body()
        registry_id = self._sim_call(st.required_str, payload.get("registry_id"), "registry_id")
        self._send_json(200, self._sim_call(self.state.add_branch, registry_id, payload))

    def _sim_patrons(self) -> None:
        self._send_json(200, self._sim_call(self.state.list_patrons, self._param("registry_id")))

    def _sim_add_patron(self) -> None:
        payload = self._json_body()
        allowed = {
            "registry_id",
            "barcode",
            "expires",
            "blocked",
            "borrower_category",
            "home_branch",
            "symbol",
            "given_name",
            "family_name",
            "email",
        }
        args = {k: v for k, v in payload.items() if k in allowed}
        self._send_json(200, self._sim_call(self.state.upsert_patron, **args))

    def _sim_items(self) -> None:
        self._send_json(200, self._sim_call(self.state.list_items, self._param("registry_id")))

    def _sim_add_item(self) -> None:
        payload = self._json_body()
        allowed = {
            "registry_id",
            "barcode",
            "branch",
            "collection_type",
            "call_number",
            "title",
            "author",
            "status",
        }
        args = {k: v for k, v in payload.items() if k in allowed}
        self._send_json(200, self._sim_call(self.state.upsert_item, **args))

    def _sim_item(self, barcode: str) -> None:
        self._send_json(200, self._sim_call(self.state.item_details, barcode, self._param("registry_id")))

    def _sim_policies(self) -> None:
        self._send_json(200, self._sim_call(self.state.list_policies, self._param("registry_id")))

    def _sim_set_policy(self) -> None:
        payload = self._json_body()
        registry_id = self._sim_call(st.required_str, payload.get("registry_id"), "registry_id")
        self._send_json(200, self._sim_call(self.state.set_policy, registry_id, payload))

    def _sim_temp_items(self) -> None:
        self._send_json(
            200, self._sim_call(self.state.list_items, self._param("registry_id"), temporary=True)
        )

    def _sim_holds(self) -> None:
        self._send_json(200, self._sim_call(self.state.list_holds, self._param("registry_id")))

    def _sim_loans(self) -> None:
        self._send_json(200, self._sim_call(self.state.list_loans, self._param("registry_id")))

    def _sim_notices(self) -> None:
        self._send_json(200, self._sim_call(self.state.list_notices, self._param("registry_id")))

    def _sim_requests_log(self) -> None:
        self._send_json(200, self._sim_call(self.state.list_requests_log, self._param("registry_id")))

    def _staff_institution(self, barcode: str, registry_id: Any) -> st.Institution:
        if registry_id not in (None, ""):
            self._sim_call(self.state.institution, str(registry_id))
        try:
            return self.state.institution_for_item(barcode, str(registry_id) if registry_id else None)
        except st.AmbiguousBarcode as exc:
            raise _HttpError(400, {"error": str(exc)}) from None
        except st.NotFound:
            error = st.CircError(
                "Unknown Item", "UNKNOWN_ITEM", f"no item with barcode {barcode!r}", value=barcode
            )
            raise _HttpError(409, error.to_dict()) from None

    def _sim_checkin(self) -> None:
        payload = self._json_body()
        barcode = self._sim_call(st.required_str, payload.get("barcode"), "barcode")
        inst = self._staff_institution(barcode, payload.get("registry_id"))
        branch = payload.get("branch")
        branch = inst.main_branch if branch in (None, "") else str(branch)
        result = self._sim_call(self.state.check_in, inst.registry_id, barcode=barcode, branch=branch)
        rid = inst.registry_id
        with self.state.lock:
            item = result.item
            self._send_json(
                200,
                {
                    "registry_id": rid,
                    "branch": branch,
                    "item": item.to_dict(rid) if item else None,
                    "hold": result.hold.to_dict(rid) if result.hold else None,
                    "loan": result.loan.to_dict(rid) if result.loan else None,
                    "notice": result.notice.to_dict(rid) if result.notice else None,
                    "destination": result.destination,
                    "in_transit": result.in_transit,
                },
            )

    def _sim_checkout(self) -> None:
        payload = self._json_body()
        item_barcode = self._sim_call(st.required_str, payload.get("item_barcode"), "item_barcode")
        patron_barcode = self._sim_call(st.required_str, payload.get("patron_barcode"), "patron_barcode")
        inst = self._staff_institution(item_barcode, payload.get("registry_id"))
        result = self._sim_call(
            self.state.check_out,
            inst.registry_id,
            item_barcode=item_barcode,
            patron_value=patron_barcode,
            source="staff",
        )
        rid = inst.registry_id
        with self.state.lock:
            self._send_json(
                200,
                {
                    "registry_id": rid,
                    "item": result.item.to_dict(rid),
                    "hold": result.hold.to_dict(rid) if result.hold else None,
                    "loan": result.loan.to_dict(rid),
                    "patron": result.patron.to_dict(rid),
                    "existing": result.existing,
                },
            )

    def _sim_faults(self) -> None:
        self._send_json(200, self.state.list_faults())

    def _sim_add_fault(self) -> None:
        payload = self._json_body()
        self._send_json(200, self._sim_call(self.state.add_fault, payload))

    def _sim_clear_faults(self) -> None:
        self._read_body()
        self._send_json(200, {"cleared": self.state.clear_faults()})

    def _sim_token_ttl(self) -> None:
        self._send_json(200, {"token_ttl": self.state.token_ttl})

    def _sim_set_token_ttl(self) -> None:
        payload = self._json_body()
        value = payload.get("token_ttl", payload.get("seconds"))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _HttpError(400, {"error": "token_ttl must be a non-negative integer (seconds)"})
        self.state.set_token_ttl(value)
        self._send_json(200, {"token_ttl": value})

    def _sim_expire_tokens(self) -> None:
        self._read_body()
        self._send_json(200, {"expired": self.state.expire_tokens()})

    def _sim_options(self) -> None:
        self._send_json(200, self.state.options.describe())

    def _sim_set_options(self) -> None:
        payload = self._json_body()
        try:
            self.state.options.set(payload)
        except OptionError as exc:
            raise _HttpError(400, {"error": str(exc)}) from None
        self._send_json(200, self.state.options.describe())

    def _sim_seed_oclc_samples(self) -> None:
        payload = self._json_body()
        flags = {k: payload.get(k, True) for k in ("patron", "item")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise _HttpError(400, {"error": "patron and item must be booleans"})
        inst = self.state.seed_oclc_samples(**flags)
        self._send_json(200, inst.summary())
