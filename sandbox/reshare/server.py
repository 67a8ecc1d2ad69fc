"""The HTTP face of the ReShare simulator: Okapi login, the mod-rs API subset, and `/_sim/` control endpoints.

Okapi / mod-rs (every `/rs/` call needs `X-Okapi-Tenant` (missing/unknown: 400) and `X-Okapi-Token`
(missing, unknown, expired or another tenant's: 401)):

- `POST /authn/login-with-expiry` {username, password} -> 201
  `{accessTokenExpiration, refreshTokenExpiration}`, token in `Set-Cookie: folioAccessToken=...`;
  wrong credentials -> 422 `{"errors": [{message, type, code}]}`.
- `POST /authn/login` (older) -> 201 `{"okapiToken": ...}` and header `x-okapi-token`.
- `GET /rs/patronrequests` (filters, sort, perPage, offset/page, stats, fullRecord, term/match: query.py)
  -> [brief records] (or full with fullRecord=true; wrapped with stats=true).
- `POST /rs/patronrequests` {title, patronIdentifier, pickupLocationSlug?, author?, isbn?, publisher?,
  publicationDate?, patronNote?, id?, supplyingInstitutionSymbol?} -> 201 full borrower record. The
  requesting symbol is the tenant's; the lender is the tenant with supplyingInstitutionSymbol, else the first
  other tenant by name; an unknown pickupLocationSlug leaves resolvedPickupLocation null.
- `GET /rs/patronrequests/{id}` -> full record; `GET /rs/patronrequests/{id}/validActions` -> {"actions": []}
- `POST /rs/patronrequests/{id}/performAction` {action, actionParams} -> 200 `{}`, or 400 `{"message"}` with
  mod-rs's words (unknown id, busy with network activity, not a valid action now: `Store.perform_action`).
- `GET /rs/settings/appSettings[?filters=key==host_lms_integration]` -> [{id, section, key, settingType,
  value, vocab?}] (same list parameters; default perPage 100).

Control (no auth, JSON in and out):

- `POST /_sim/requests` {borrower_tenant="east", lender_tenant="west", title, author?, isbn?, publisher?,
  publication_date?, patron_barcode, patron_note?, pickup_location_slug (must exist in the borrower tenant),
  volumes?: [{item_barcode, call_number?, name?}] (default one volume "<LENDER>-ITEM-0001"),
  due_date?: "YYYY-MM-DD" (that day, 00:00Z, as loanDateOverride) or an instant,
  lender_state?: RES_IDLE | RES_NEW_AWAIT_PULL_SLIP (default) | RES_AWAIT_PICKING |
  RES_AWAIT_SHIP | RES_ITEM_SHIPPED, borrower_state?: REQ_INVALID_PATRON | REQ_DUPLICATE_REVIEW |
  REQ_LOCAL_REVIEW, next_lenders?: [tenant, ...] (the rest of the rota, asked in turn when a lender cannot
  supply)}
  -> 201 {hrid, borrower: {tenant, id}, lender: {tenant, id} | null}. Unknown fields are refused.
- `GET /_sim/requests[?tenant=&hrid=]` -> [full record + "tenant"];
  `GET /_sim/requests/{tenant}/{id}` -> full record + "tenant"
- `POST /_sim/tenants` {tenant, symbol, username?, password?, users?: [{username, password}],
  settings?: {key: value} (default {"host_lms_integration": "manual"}),
  pickup_locations?: [{slug, name, lmsLocationCode}]} -> 201 summary (upsert; requests are kept);
  `GET /_sim/tenants` -> [summary]
- `POST /_sim/faults` (faults.py) -> 201 fault; `GET /_sim/faults`; `DELETE /_sim/faults` -> {cleared}
- `POST /_sim/settings` {tenant, key, value} -> 200: set one app setting (e.g. host_lms_integration = wms2)
- `POST /_sim/relay` {tenant, url, secret: "whsec_...", attempts?: 1-10 (default 3)} -> 201: play a site's
  Kafka-to-HTTP relay (relay.py): from now on every state change of that tenant's requests is posted to `url`
  as mod-rs's event, signed per Standard Webhooks, retried with the same webhook-id on failure;
  `GET /_sim/relay` -> {targets, pending, deliveries: [{webhook_id, tenant, event, request_id, state,
  delivered, statuses, headers, body}]}; `POST /_sim/relay/wait` -> {idle} once every delivery was tried;
  `DELETE /_sim/relay` -> {cleared}
- `POST /_sim/expire-tokens` -> {expired}; `POST /_sim/login-mode` {mode: both | legacy-only | expiry-only};
  `GET /_sim/login-mode`
- `POST /_sim/run-overdue` {now?: ISO} -> {now, lender: [{tenant, id, hrid, state}], borrower: [...]}
- `POST /_sim/clock` {at: ISO | null, step_ms?: 0} -> {at, pinned_ms}: pin the clock (with step_ms 0 every
  change then shares one `lastUpdated`, as a burst inside one second does; step_ms 1000 gives each change
  its own second) or follow the wall clock again
- `GET|POST /_sim/options` {lender_on_received: RES_AWAITING_RETURN_SHIPPING (default) | RES_ITEM_SHIPPED,
  network_busy_ms: 0..600000 (how long a request that sent a partner message stays networkStatus Waiting)}
- `POST /_sim/network` {tenant, id, status: Waiting | Retry, for_ms} -> keep one request busy that long
- `POST /_sim/touch` {tenant, id} -> {id, lastUpdated}: SIMULATOR-ONLY, save a request unchanged so only its
  `lastUpdated` moves (mod-rs's requester has no such action; localNote is the responder's)
- `POST /_sim/reset` {seed_demo?: bool}; `POST /_sim/seed-demo`;
  `GET /_sim/calls` -> [{time, method, path, query, tenant, status, action?, fault?}]; `DELETE /_sim/calls`

Errors are JSON `{"status": false, "message": ...}` with a 4xx status (bodies over 1 MiB: 413; a non-JSON
Content-Type: 415); nothing answers 5xx unless a fault says so. An unexpected exception is logged with its
traceback and answered 400.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..http import AllMethodsHandler, BodyError, BodyRules, ServedSimulator, TrackingServer, read_body
from . import records as r
from .faults import CallLog, Fault, FaultBook
from .query import QueryError, UnparseableFilterDate, parse_flag, run_list_query, stats_wrapper
from .records import ItemSpec, PickupLocation
from .relay import WebhookRelay
from .state import SimError, Store, bad
from .timefmt import iso_from_ms, iso_seconds

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_DRAINED = 16 * MAX_BODY
_BODY_RULES = BodyRules(
    max_body=MAX_BODY,
    drain_limit=MAX_DRAINED,
    refused_encoding="chunked bodies are not supported: send Content-Length",
    bad_length="bad Content-Length: {raw!r}",
    negative_length="bad Content-Length: negative",
    too_large="body too large: {length} bytes (limit {limit})",
    only_chunked=True,
)
_TENANT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,48}$")


@dataclass
class Response:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False  # close the connection without answering


@dataclass
class Call:
    """One parsed HTTP call as the route handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    raw_body: bytes
    params: dict[str, str] = field(default_factory=dict)
    note: dict[str, Any] = field(default_factory=dict)  # extra facts for the call log

    @property
    def tenant(self) -> str | None:
        return self.headers.get("X-Okapi-Tenant")

    def json(self, *, required: bool = True) -> Any:
        if not self.raw_body.strip():
            if required:
                raise bad("missing JSON body")
            return {}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise SimError(415, f"Content-Type must be application/json, not '{content_type or 'none'}'")
        try:
            return json.loads(self.raw_body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise bad(f"malformed JSON body: {error}") from None

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        body = self.json(required=required)
        if not isinstance(body, dict):
            raise bad("the body must be a JSON object")
        return body


Route = tuple[str, re.Pattern[str], Callable[["ReShareSimulator", Call], Response], bool]


def _route(method: str, pattern: str, auth: bool = False):
    def register(function: Callable[[ReShareSimulator, Call], Response]):
        _ROUTES.append((method, re.compile(pattern), function, auth))
        return function

    return register


_ROUTES: list[Route] = []


# ================================================================ Okapi login


def _login_refused(path: str) -> Response:
    return Response(404, {"status": False, "message": f"No suitable module found for path {path}"})


def _credentials(call: Call) -> tuple[Any, Any]:
    body = call.json_object()
    return body.get("username"), body.get("password")


@_route("POST", r"/authn/login-with-expiry")
def login_with_expiry(sim: ReShareSimulator, call: Call) -> Response:
    if sim.store.login_mode == "legacy-only":
        return _login_refused(call.path)
    sim.store.tenant(call.tenant)
    token = sim.store.login(call.tenant, *_credentials(call))
    refresh_expires = datetime.now(UTC) + timedelta(days=7)
    max_age = max(math.ceil(sim.store.token_ttl), 1)  # 0 would tell clients to drop the cookie
    return Response(
        201,
        {
            "accessTokenExpiration": iso_from_ms(token.expires_ms, millis=False),
            "refreshTokenExpiration": refresh_expires.isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
        [
            (
                "Set-Cookie",
                f"folioAccessToken={token.value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax",
            ),
            (
                "Set-Cookie",
                f"folioRefreshToken=r-{token.value}; Max-Age=604800; Path=/authn; HttpOnly; SameSite=Lax",
            ),
        ],
    )


@_route("POST", r"/authn/login")
def login_legacy(sim: ReShareSimulator, call: Call) -> Response:
    if sim.store.login_mode == "expiry-only":
        return _login_refused(call.path)
    sim.store.tenant(call.tenant)
    token = sim.store.login(call.tenant, *_credentials(call))
    return Response(201, {"okapiToken": token.value}, [("x-okapi-token", token.value)])


# ================================================================ mod-rs


@_route("GET", r"/rs/patronrequests", auth=True)
def list_requests(sim: ReShareSimulator, call: Call) -> Response:
    full = parse_flag(call.query, "fullRecord")
    stats = parse_flag(call.query, "stats")
    with sim.store.lock:  # one consistent read, as one SELECT
        page_records, total, page = run_list_query(
            sim.store.tenant(call.tenant or "").requests,
            call.query,
            r.REQUEST_FIELDS,
            term_fields=r.REQUEST_TERM_FIELDS,
            need_total=stats,
        )
    results = [
        {key: value for key, value in record.items() if key != "_ms"} if full else r.brief_of(record)
        for record in page_records
    ]
    return Response(200, stats_wrapper(results, total or 0, page) if stats else results)


@_route("POST", r"/rs/patronrequests", auth=True)
def create_request(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object()
    if "isRequester" in body and str(body["isRequester"]).lower() != "true":
        raise SimError(
            422, "only borrower requests (isRequester true) can be created; lender copies arrive by ISO 18626"
        )
    fields = {
        "title": _required_str(body, "title"),
        "author": _optional_str(body, "author"),
        "isbn": _optional_str(body, "isbn"),
        "publisher": _optional_str(body, "publisher"),
        "publication_date": _optional_str(body, "publicationDate"),
        "patron_identifier": _required_str(body, "patronIdentifier"),
        "patron_note": _optional_str(body, "patronNote"),
        "pickup_location_slug": _optional_str(body, "pickupLocationSlug"),
    }
    tenant_name = call.tenant or ""
    with sim.store.lock:
        lender = _lender_for(sim.store, tenant_name, _optional_str(body, "supplyingInstitutionSymbol"))
        request_id = _optional_str(body, "id")
        borrower = sim.store.create_pair(tenant_name, lender, fields, [], request_id=request_id)
        return Response(201, borrower.full())


def _lender_for(store: Store, borrower_tenant: str, symbol: str | None) -> str | None:
    """The supplying tenant: the one with `symbol`, else the first other tenant by name (our one-lender rota)."""
    others = sorted(name for name in store.tenants if name != borrower_tenant)
    if symbol:
        for name in others:
            if store.tenants[name].symbol == symbol:
                return name
        raise SimError(422, f"no tenant has the symbol {symbol}")
    return others[0] if others else None


@_route("GET", r"/rs/patronrequests/(?P<id>[^/]+)", auth=True)
def get_request(sim: ReShareSimulator, call: Call) -> Response:
    with sim.store.lock:
        return Response(200, sim.store.request(call.tenant or "", call.params["id"]).full())


@_route("POST", r"/rs/patronrequests/(?P<id>[^/]+)/performAction", auth=True)
def perform_action(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json()
    if isinstance(body, dict) and isinstance(body.get("action"), str):
        call.note["action"] = body["action"]
    return Response(200, sim.store.perform_action(call.tenant or "", call.params["id"], body))


@_route("GET", r"/rs/patronrequests/(?P<id>[^/]+)/validActions", auth=True)
def valid_actions(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, sim.store.valid_actions(call.tenant or "", call.params["id"]))


@_route("GET", r"/rs/settings/appSettings", auth=True)
def app_settings(sim: ReShareSimulator, call: Call) -> Response:
    records, total, page = run_list_query(
        sim.store.settings(call.tenant or ""), call.query, r.SETTING_FIELDS, default_per_page=100
    )
    return Response(
        200, stats_wrapper(records, total or 0, page) if parse_flag(call.query, "stats") else records
    )


# ================================================================ /_sim/ control

_SIM_REQUEST_KEYS = {
    "borrower_tenant",
    "lender_tenant",
    "title",
    "author",
    "isbn",
    "publisher",
    "publication_date",
    "patron_barcode",
    "patron_note",
    "pickup_location_slug",
    "volumes",
    "due_date",
    "lender_state",
    "borrower_state",
    "next_lenders",
}


@_route("POST", r"/_sim/requests")
def sim_create_request(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object()
    _no_unknown_keys(body, _SIM_REQUEST_KEYS, "request")
    borrower_tenant = _optional_str(body, "borrower_tenant") or "east"
    lender_tenant = _optional_str(body, "lender_tenant") or "west"
    if borrower_tenant == lender_tenant:
        raise bad("borrower_tenant and lender_tenant must differ")
    fields = {
        "title": _required_str(body, "title"),
        "author": _optional_str(body, "author"),
        "isbn": _optional_str(body, "isbn"),
        "publisher": _optional_str(body, "publisher"),
        "publication_date": _optional_str(body, "publication_date"),
        "patron_identifier": _required_str(body, "patron_barcode"),
        "patron_note": _optional_str(body, "patron_note"),
        "pickup_location_slug": _required_str(body, "pickup_location_slug"),
    }
    specs = _item_specs(body.get("volumes"))
    lender_state = _optional_str(body, "lender_state")
    borrower_state = _optional_str(body, "borrower_state")
    if lender_state and borrower_state:
        raise bad("give lender_state or borrower_state, not both")
    with sim.store.lock:
        tenant = sim.store.tenant(borrower_tenant)
        sim.store.tenant(lender_tenant)
        if fields["pickup_location_slug"] not in tenant.pickup_locations:
            raise bad(
                f"pickup_location_slug {fields['pickup_location_slug']!r} is not a pickup location of "
                f"{borrower_tenant} (known: {', '.join(sorted(tenant.pickup_locations))})"
            )
        next_lenders = body.get("next_lenders") or []
        if not isinstance(next_lenders, list) or not all(isinstance(t, str) for t in next_lenders):
            raise bad("next_lenders must be a list of tenant names (the rest of the rota)")
        for name in next_lenders:
            sim.store.tenant(name)
        borrower = sim.store.create_pair(
            borrower_tenant,
            lender_tenant,
            fields,
            specs,
            due_date=_optional_str(body, "due_date"),
            lender_state=lender_state or r.RES_NEW_AWAIT_PULL_SLIP,
            borrower_state=borrower_state,
            next_lenders=next_lenders,
        )
        lender = {"tenant": borrower.partner[0], "id": borrower.partner[1]} if borrower.partner else None
        return Response(
            201,
            {
                "hrid": borrower.hrid,
                "borrower": {"tenant": borrower.tenant, "id": borrower.id},
                "lender": lender,
            },
        )


def _item_specs(value: Any) -> list[ItemSpec]:
    if value is None:
        return []  # the lender copy then gets one volume, item barcode "<LENDER TENANT>-ITEM-0001"
    if not isinstance(value, list) or not value:
        raise bad("volumes must be a non-empty list of {item_barcode, call_number?, name?}")
    specs = []
    for entry in value:
        if not isinstance(entry, dict):
            raise bad("each volume must be an object {item_barcode, call_number?, name?}")
        _no_unknown_keys(entry, {"item_barcode", "call_number", "name"}, "volume")
        specs.append(
            ItemSpec(
                item_barcode=_required_str(entry, "item_barcode"),
                call_number=_optional_str(entry, "call_number"),
                name=_optional_str(entry, "name"),
            )
        )
    return specs


@_route("GET", r"/_sim/requests")
def sim_list_requests(sim: ReShareSimulator, call: Call) -> Response:
    records = sim.store.all_full_records()
    for key, record_key in (("tenant", "tenant"), ("hrid", "hrid")):
        wanted = call.query.get(key)
        if wanted:
            records = [record for record in records if record[record_key] in wanted]
    return Response(200, records)


@_route("GET", r"/_sim/requests/(?P<tenant>[^/]+)/(?P<id>[^/]+)")
def sim_get_request(sim: ReShareSimulator, call: Call) -> Response:
    with sim.store.lock:
        req = sim.store.request(call.params["tenant"], call.params["id"])
        return Response(200, {"tenant": req.tenant, **req.full()})


@_route("POST", r"/_sim/tenants")
def sim_upsert_tenant(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object()
    _no_unknown_keys(
        body, {"tenant", "symbol", "username", "password", "users", "settings", "pickup_locations"}, "tenant"
    )
    name = _required_str(body, "tenant")
    if not _TENANT_NAME.match(name):
        raise bad("tenant must be lower case letters, digits and _ (starting with a letter)")
    symbol = _required_str(body, "symbol")
    users: dict[str, str] = {}
    if body.get("username") is not None or body.get("password") is not None:
        users[_required_str(body, "username")] = _required_str(body, "password")
    extra_users = body.get("users") or []
    if not isinstance(extra_users, list):
        raise bad("users must be a list of {username, password}")
    for entry in extra_users:
        if not isinstance(entry, dict):
            raise bad("users must be a list of {username, password}")
        users[_required_str(entry, "username")] = _required_str(entry, "password")
    settings = body.get("settings")
    if settings is not None and (
        not isinstance(settings, dict) or not all(isinstance(v, str | dict) for v in settings.values())
    ):
        raise bad("settings must be an object {key: value-string}")
    locations = []
    raw_locations = body.get("pickup_locations") or []
    if not isinstance(raw_locations, list):
        raise bad("pickup_locations must be a list of {slug, name, lmsLocationCode}")
    for entry in raw_locations:
        if not isinstance(entry, dict):
            raise bad("pickup_locations must be a list of {slug, name, lmsLocationCode}")
        _no_unknown_keys(entry, {"slug", "name", "lmsLocationCode"}, "pickup location")
        locations.append(
            PickupLocation(
                _required_str(entry, "slug"),
                _required_str(entry, "name"),
                _optional_str(entry, "lmsLocationCode"),
            )
        )
    tenant = sim.store.upsert_tenant(name, symbol, users, settings, locations)
    with sim.store.lock:
        return Response(201, tenant.summary())


@_route("GET", r"/_sim/tenants")
def sim_list_tenants(sim: ReShareSimulator, call: Call) -> Response:
    with sim.store.lock:
        return Response(200, [tenant.summary() for tenant in sim.store.tenants.values()])


@_route("POST", r"/_sim/faults")
def sim_add_fault(sim: ReShareSimulator, call: Call) -> Response:
    return Response(201, sim.faults.add(call.json()).to_json())


@_route("GET", r"/_sim/faults")
def sim_list_faults(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, sim.faults.list())


@_route("DELETE", r"/_sim/faults")
def sim_clear_faults(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, {"cleared": sim.faults.clear()})


@_route("POST", r"/_sim/settings")
def sim_set_setting(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object()
    _no_unknown_keys(body, {"tenant", "key", "value"}, "setting")
    tenant, key, value = (_optional_str(body, name) for name in ("tenant", "key", "value"))
    if not tenant or not key or value is None:
        raise SimError(422, "tenant, key and value are required")
    with sim.store.lock:
        sim.store.tenant(tenant).settings[key] = r.make_setting(key, value)
    return Response(200, {"tenant": tenant, "key": key, "value": value})


@_route("POST", r"/_sim/relay")
def sim_configure_relay(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object()
    _no_unknown_keys(body, {"tenant", "url", "secret", "attempts"}, "relay")
    tenant, url, secret = (_optional_str(body, key) for key in ("tenant", "url", "secret"))
    if not tenant or tenant not in sim.store.tenants:
        raise SimError(422, f"tenant must be one of {', '.join(sorted(sim.store.tenants)) or 'none'}")
    if not url or not url.startswith(("http://", "https://")):
        raise SimError(422, "url must be an http(s) URL (the bridge's POST /webhooks/reshare)")
    attempts = body.get("attempts", 3)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
        raise SimError(422, "attempts must be an integer from 1 to 10")
    try:
        target = sim.relay.configure(tenant, url, secret or "", attempts)
    except Exception as exc:  # standardwebhooks refuses a malformed secret
        raise SimError(422, f"secret must be a Standard Webhooks secret (whsec_<base64>): {exc}") from exc
    return Response(201, target.summary())


@_route("GET", r"/_sim/relay")
def sim_relay(sim: ReShareSimulator, call: Call) -> Response:
    return Response(
        200,
        {"targets": sim.relay.targets(), "pending": sim.relay.pending, "deliveries": sim.relay.deliveries()},
    )


@_route("POST", r"/_sim/relay/wait")
def sim_relay_wait(sim: ReShareSimulator, call: Call) -> Response:
    idle = sim.relay.wait_idle(timeout=30)
    return Response(200 if idle else 504, {"idle": idle, "pending": sim.relay.pending})


@_route("DELETE", r"/_sim/relay")
def sim_clear_relay(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, {"cleared": sim.relay.clear()})


@_route("POST", r"/_sim/expire-tokens")
def sim_expire_tokens(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, {"expired": sim.store.expire_tokens()})


@_route("GET", r"/_sim/login-mode")
def sim_get_login_mode(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, {"mode": sim.store.login_mode})


@_route("POST", r"/_sim/login-mode")
def sim_set_login_mode(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, {"mode": sim.store.set_login_mode(call.json_object().get("mode"))})


@_route("POST", r"/_sim/run-overdue")
def sim_run_overdue(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object(required=False)
    _no_unknown_keys(body, {"now"}, "run-overdue")
    return Response(200, sim.store.run_overdue(body.get("now")))


@_route("POST", r"/_sim/clock")
def sim_set_clock(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object()
    _no_unknown_keys(body, {"at", "step_ms"}, "clock")
    pinned = sim.store.set_clock(body.get("at"), body.get("step_ms", 0))
    return Response(200, {"at": iso_seconds(pinned) if pinned is not None else None, "pinned_ms": pinned})


@_route("POST", r"/_sim/touch")
def sim_touch(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object()
    _no_unknown_keys(body, {"tenant", "id"}, "touch")
    return Response(200, sim.store.touch(str(body.get("tenant") or ""), str(body.get("id") or "")))


@_route("POST", r"/_sim/network")
def sim_set_network(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object()
    _no_unknown_keys(body, {"tenant", "id", "status", "for_ms"}, "network")
    return Response(
        200,
        sim.store.set_network(
            _required_str(body, "tenant"),
            _required_str(body, "id"),
            body.get("status", "Waiting"),
            body.get("for_ms"),
        ),
    )


@_route("GET", r"/_sim/options")
def sim_get_options(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, dict(sim.store.options))


@_route("POST", r"/_sim/options")
def sim_set_options(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, sim.store.set_options(call.json_object()))


@_route("POST", r"/_sim/reset")
def sim_reset(sim: ReShareSimulator, call: Call) -> Response:
    body = call.json_object(required=False)
    _no_unknown_keys(body, {"seed_demo"}, "reset")
    sim.reset()
    if body.get("seed_demo"):
        sim.seed_demo()
    return Response(200, {"status": "reset", "tenants": sorted(sim.store.tenants)})


@_route("POST", r"/_sim/seed-demo")
def sim_seed_demo(sim: ReShareSimulator, call: Call) -> Response:
    sim.seed_demo()
    return Response(200, {"status": "seeded", "tenants": sorted(sim.store.tenants)})


@_route("GET", r"/_sim/calls")
def sim_calls(sim: ReShareSimulator, call: Call) -> Response:
    return Response(200, sim.calls.list())


@_route("DELETE", r"/_sim/calls")
def sim_clear_calls(sim: ReShareSimulator, call: Call) -> Response:
    sim.calls.clear()
    return Response(200, {"cleared": True})


# ---------------------------------------------------------------- validation helpers


def _required_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{key} is required (a non-empty string)")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad(f"{key} must be a string")
    return value


def _no_unknown_keys(body: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise bad(
            f"unknown {what} field(s): {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})"
        )


# ================================================================ HTTP plumbing


def _error(status: int, message: str) -> Response:
    return Response(status, {"status": False, "message": message})


class _Server(TrackingServer):
    sim: ReShareSimulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


class _Handler(AllMethodsHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ReShareSimulator/1.0"
    timeout = 60  # seconds a client may idle on a kept-alive connection
    disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms delayed-ACK stalls
    wbufsize = 64 * 1024  # buffered: one write per answer (flushed after each call)
    server: _Server

    # -- one call ---------------------------------------------------------

    def handle_method(self, method: str) -> None:
        sim = self.server.sim
        record: dict[str, Any] = {
            "method": method,
            "path": self.path,
            "tenant": self.headers.get("X-Okapi-Tenant"),
        }
        try:
            response = self._respond(sim, method, record)
        except SimError as error:
            response = Response(error.status, error.body or {"status": False, "message": error.message})
        except BodyError as error:
            response = _error(error.status, error.message)
        except QueryError as error:
            response = _error(400, str(error))
        except UnparseableFilterDate as error:
            response = Response(500, error.body)
        except Exception as error:
            log.exception("unexpected error handling %s %s", method, self.path)
            response = _error(400, f"unexpected error handling the request: {type(error).__name__}: {error}")
        if not record.get("sim"):
            record["status"] = "dropped" if response.drop else response.status
            record.pop("sim", None)
            sim.calls.record(**record)
        if response.drop:
            self.close_connection = True
            return
        self._write(response, head_only=method == "HEAD")

    def _respond(self, sim: ReShareSimulator, method: str, record: dict[str, Any]) -> Response:
        target = urlsplit(self.path)
        path = unquote(target.path)
        record["path"] = path
        record["query"] = target.query
        if not path.startswith("/") or "\x00" in path or "\\" in path:
            raise bad("bad request path")
        if any(segment in ("..", ".") for segment in path.split("/")):
            raise bad("path traversal is not allowed")
        control = path == "/_sim" or path.startswith("/_sim/")
        record["sim"] = control  # control calls stay out of the call log
        raw_body = read_body(self, _BODY_RULES)
        try:
            query = parse_qs(target.query, keep_blank_values=True, max_num_fields=500)
        except ValueError as error:
            raise bad(f"bad query string: {error}") from None
        call = Call(method, path, query, self.headers, raw_body)
        if control:
            return self._dispatch(sim, call)
        fault = sim.faults.take(method, path)
        if fault is not None:
            record["fault"] = fault.kind
            early = self._apply_fault(sim, fault)
            if early is not None:
                return early
        response = self._dispatch(sim, call)
        record.update(call.note)
        if fault is not None and fault.kind == "drop_response":
            response.drop = True
        return response

    def _apply_fault(self, sim: ReShareSimulator, fault: Fault) -> Response | None:
        """Faults acting before the call is processed; a Response ends the call there."""
        if fault.kind == "latency":
            sim.stopping.wait(fault.latency_ms / 1000)
        elif fault.kind == "http_error":
            return _error(fault.status, f"simulated fault: HTTP {fault.status}")
        elif fault.kind == "timeout":
            sim.stopping.wait(fault.timeout_s)
            return Response(0, None, drop=True)
        elif fault.kind == "expire_token":
            token = self.headers.get("X-Okapi-Token")
            if token:
                sim.store.expire_tokens(token)
        return None

    def _dispatch(self, sim: ReShareSimulator, call: Call) -> Response:
        path_known = False
        for method, pattern, function, auth in _ROUTES:
            match = pattern.fullmatch(call.path)
            if not match:
                continue
            path_known = True
            if method != call.method:
                continue
            call.params = match.groupdict()
            if auth:
                sim.store.tenant(call.tenant)
                sim.store.authenticate(call.tenant or "", call.headers.get("X-Okapi-Token"))
            return function(sim, call)
        if path_known:
            return _error(405, f"method {call.method} is not allowed on {call.path}")
        return _error(404, f"no such endpoint: {call.path}")

    def _write(self, response: Response, head_only: bool = False) -> None:
        body = json.dumps(response.body).encode("utf-8")
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head_only:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- the standard library's own error path (bad request line, unsupported method...) --

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code = HTTPStatus.METHOD_NOT_ALLOWED
        elif code >= 500:
            code = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        text = message or HTTPStatus(code).phrase
        body = json.dumps({"status": False, "message": text}).encode("utf-8")
        try:
            self.send_response(code, text)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if getattr(self, "command", None) != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


# ================================================================ the public object


class ReShareSimulator(ServedSimulator):
    """A ReShare (mod-rs through Okapi) simulator serving real HTTP on loopback.

    >>> sim = ReShareSimulator(port=0); url = sim.start(); sim.seed_demo(); ...; sim.stop()
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token_ttl: float = 600) -> None:
        self.host = host
        self._wanted_port = port
        self.store = Store(token_ttl)
        self.faults = FaultBook(self.store.lock)
        self.calls = CallLog(self.store.lock)
        self.relay = WebhookRelay()
        self.store.state_listeners.append(self.relay.state_changed)
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------

    def start(self) -> str:
        """Bind and serve in a background thread; returns the base URL."""
        if self._server is not None:
            return self.base_url
        self.stopping.clear()
        server = _Server((self.host, self._wanted_port), _Handler)
        server.sim = self
        self._server = server
        self._thread = server.serve_in_thread("reshare-simulator")
        self.relay.start()
        log.info("ReShare simulator listening on %s", self.base_url)
        return self.base_url

    def stop(self) -> None:
        """Stop serving, close open connections and wait for the server thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.stopping.set()
        self.relay.stop()
        server.stop_serving(thread, timeout=5)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return int(self._server.server_address[1])

    # -- data ----------------------------------------------------------------

    def seed_demo(self) -> None:
        """Tenants east (RESHARE:EAST) and west (RESHARE:WEST) with their users, settings and pickup locations."""
        self.store.seed_demo()

    def reset(self) -> None:
        """Forget every tenant, request, token, fault and logged call."""
        with self.store.lock:
            self.store.reset()
            self.faults.clear()
            self.calls.clear()
            self.relay.clear()
