"""A careful client for the part of ReShare's API (mod-rs, through Okapi) the bridge uses (docs/reshare.md#the-api).

What it promises:

* **Authentication.** Logs in lazily on the first call: ``POST /authn/login-with-expiry`` (token in the
  ``folioAccessToken`` cookie, expiry in the body's ``accessTokenExpiration``); when that answers 404 (an
  older Okapi) it falls back to ``POST /authn/login`` (token in the ``x-okapi-token`` header) and remembers to
  use that from then on. A token about to expire is renewed before use; a 401 makes it log in again once and
  repeat the call once (a 401 is Okapi refusing the token, so nothing was done and repeating is safe).
* **Timeouts and connections.** One ``requests.Session`` (connection reuse), explicit (connect, read) timeouts
  on every call.
* **Retries for reads only.** A GET is retried ``read_retries`` times with capped exponential backoff on a
  connection error, a timeout or HTTP 502/503/504, then :class:`ReShareUnavailable`. A POST (``performAction``
  is not idempotent) is never repeated by this client, except the single repeat after a 401 described above.
* **Typed errors** (see :meth:`ReShareClient.perform_action` for the full mapping of an action's outcomes).
* **Secrets.** The password is only ever sent in the login body; the token is logged masked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.cookiejar import CookieJar
from http.cookies import CookieError, SimpleCookie
from typing import Any, NoReturn
from urllib.parse import quote

import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

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
from illbridge.models.patron_request import PatronRequest
from illbridge.observability import logger, mask
from illbridge.timeutil import iso, to_utc, utcnow

MAX_PER_PAGE = 100  # mod-rs caps perPage at 100: asking for more would end paging after the first page
RETRYABLE_READ_STATUSES = frozenset({502, 503, 504})
BACKOFF_CAP_SECONDS = 4.0
TOKEN_RENEWAL_MARGIN = timedelta(seconds=30)  # renew a token this long before ReShare says it expires
# mod-rs ActionService.executeAction: the refusals that are not a "no" (400 with these messages)
BUSY_MESSAGE = "Unable to perform action as we are waiting for existing network activity to complete"
UNKNOWN_REQUEST_MESSAGE = "Unable to find request with id"
BUSY_BACKOFF_CAP_SECONDS = 8.0

_JSON = "application/json"
_ACCESS_COOKIE = "folioAccessToken"
_AUTH_COOKIES = frozenset({"folioAccessToken", "folioRefreshToken"})
# Failures after which a request may or may not have reached ReShare.
_MAYBE_SENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass
class Listing:
    """What a listing learnt besides its rows: ``unsure_from``, the earliest second it had to page through by
    offset (more rows in one second than fit a page, in no stable order), where rows may have been missed."""

    unsure_from: datetime | None = None


class ReShareClient:
    """One ReShare tenant, as the bridge's service user.

    Not thread-safe (one client per Lambda invocation context, as the functions use it).
    """

    def __init__(
        self,
        settings: ReShareSettings,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5, 20),
        read_retries: int = 3,
        backoff: float = 0.5,
        busy_wait: float = 20.0,
        busy_backoff: float = 1.0,
    ) -> None:
        if read_retries < 0:
            raise ValueError("read_retries must be >= 0")
        if backoff < 0:
            raise ValueError("backoff must be >= 0")
        self.settings = settings
        self._base = str(settings.base_url).rstrip("/")
        self._timeout = timeout
        self._read_retries = read_retries
        self._backoff = backoff
        self._busy_wait = busy_wait  # seconds an action waits out a busy request before ReShareBusy
        self._busy_backoff = busy_backoff
        self._session = session if session is not None else _new_session()
        self._token: str | None = None
        self._token_expires: datetime | None = None
        self._legacy_login = False
        self._sleep: Callable[[float], None] = time.sleep
        self._login_lock = threading.RLock()

    def close(self) -> None:
        self._session.close()

    # --- authentication ---------------------------------------------------------------------------------

    def login(self) -> None:
        """Log in as the service user and keep the token; raises ReShareAuthError if refused."""
        body = {"username": self.settings.username, "password": self.settings.password.get_secret_value()}
        if not self._legacy_login:
            response = self._post_login("/authn/login-with-expiry", body)
            if response.status_code != 404:
                self._check_login(response, "/authn/login-with-expiry")
                token = _cookie(response, _ACCESS_COOKIE)
                if not token:
                    raise ReShareProtocolError(
                        f"ReShare tenant {self.settings.tenant}: login-with-expiry answered "
                        f"{response.status_code} without a {_ACCESS_COOKIE} cookie"
                    )
                self._keep_token(token, _token_expiry(response), "/authn/login-with-expiry")
                return
            logger.info(
                "ReShare has no /authn/login-with-expiry: falling back to /authn/login",
                extra={"tenant": self.settings.tenant},
            )
            self._legacy_login = True
        response = self._post_login("/authn/login", body)
        self._check_login(response, "/authn/login")
        token = response.headers.get("x-okapi-token") or _json_field(response, "okapiToken")
        if not token:
            raise ReShareProtocolError(
                f"ReShare tenant {self.settings.tenant}: /authn/login answered {response.status_code} "
                "without an x-okapi-token header"
            )
        self._keep_token(token, None, "/authn/login")

    def _post_login(self, path: str, body: dict[str, str]) -> requests.Response:
        headers = {"X-Okapi-Tenant": self.settings.tenant, "Content-Type": _JSON, "Accept": _JSON}
        try:
            return self._session.post(self._url(path), json=body, headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            raise ReShareUnavailable(
                f"ReShare tenant {self.settings.tenant}: POST {path} failed: {_describe(exc)}"
            ) from exc

    def _check_login(self, response: requests.Response, path: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        what = f"ReShare tenant {self.settings.tenant}: login of {self.settings.username!r} at {path}"
        if status == 429 or status >= 500:
            raise ReShareUnavailable(f"{what} answered HTTP {status}")
        raise ReShareAuthError(f"{what} refused: HTTP {status} {_error_message(response)}")

    def _keep_token(self, token: str, expires: datetime | None, path: str) -> None:
        self._token = token
        self._token_expires = expires
        # The token travels in X-Okapi-Token only: a stale cookie next to a fresh header confuses Okapi.
        jar: CookieJar = self._session.cookies
        for cookie in list(jar):
            if cookie.name in _AUTH_COOKIES:
                jar.clear(cookie.domain, cookie.path, cookie.name)
        logger.info(
            "Logged in to ReShare",
            extra={
                "tenant": self.settings.tenant,
                "username": self.settings.username,
                "endpoint": path,
                "token": mask(token),
                "token_expires": expires.isoformat() if expires else None,
            },
        )

    def _ensure_token(self) -> None:
        with self._login_lock:  # the records of a batch share the client: one of them logs in
            self._ensure_token_locked()

    def _ensure_token_locked(self) -> None:
        if self._token is None:
            self.login()
        elif self._token_expires is not None and utcnow() >= self._token_expires - TOKEN_RENEWAL_MARGIN:
            logger.info(
                "ReShare token about to expire: logging in again", extra={"tenant": self.settings.tenant}
            )
            self.login()

    # --- the API ----------------------------------------------------------------------------------------

    def changed_since(
        self,
        *,
        is_requester: bool,
        since: datetime | None,
        per_page: int = 100,
        listing: Listing | None = None,
    ) -> Iterator[PatronRequest]:
        """Every request of one side whose ``lastUpdated`` is at or after ``since``, oldest change first.

        A generator: it reads one page at a time (memory stays flat), and raises the client's errors while
        iterating. ``since=None`` lists everything. The filter is ``lastUpdated>=<ISO-8601 UTC>``: mod-rs
        converts filter values through Grails data binding, which knows only the ISO formats of its
        ``application.yml`` (an epoch-milliseconds number is refused), and renders ``lastUpdated`` to the
        second, so ``since`` is cut to its second and many rows may share one ``lastUpdated``.

        Paging: plain offset paging over a list sorted by ``lastUpdated`` skips a record whenever a record of
        an earlier page changes meanwhile (it moves to the end and everything after it shifts down one place),
        and mod-rs's sort has no tie-break, so rows sharing a second may come in another order on every call.
        So each next page is *re-anchored* instead: ``lastUpdated>=<last second seen>`` from the first page,
        dropping the ids already yielded in exactly that second. Changes made while listing are never
        skipped; a request that changes during the listing may be yielded twice (once per change, in order),
        which the poller's state comparison absorbs. Only when a whole page shares one second does it fall
        back to moving the offset forward (whole pages, as mod-rs turns an offset into a page) within that
        second; rows in that second may then be missed or repeated (their order is not stable), so
        ``listing.unsure_from`` is set to that second: the poller keeps its cursor there, and its next run
        reads the second again. Paging ends at a page shorter than ``per_page``.
        """
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}, not {per_page}")
        anchor = _second(since) if since is not None else None
        offset = 0
        seen_at_anchor: set[str] = set()  # ids already yielded whose lastUpdated is the anchor's second
        while True:
            page = self._list_page(is_requester, anchor, offset, per_page)
            for changed, request in page:
                if (
                    anchor is not None
                    and changed is not None
                    and (changed < anchor or (changed == anchor and request.id in seen_at_anchor))
                ):
                    continue  # before the window, or already yielded in the anchor's second
                yield request
            if len(page) < per_page:
                return
            page_last = max((at for at, _ in page if at is not None), default=None)
            if page_last is not None and (anchor is None or page_last > anchor):
                anchor, offset = page_last, 0
                seen_at_anchor = {request.id for at, request in page if at == page_last}
            else:  # the whole page sits in the anchor's second: step over it by offset
                offset += per_page
                seen_at_anchor |= {request.id for at, request in page if at == anchor}
                if listing is not None and anchor is not None:
                    listing.unsure_from = min(anchor, listing.unsure_from or anchor)
            del page  # one page held at a time: not this one while the next is read and parsed

    def _list_page(
        self, is_requester: bool, anchor: datetime | None, offset: int, per_page: int
    ) -> list[tuple[datetime | None, PatronRequest]]:
        params: list[tuple[str, str]] = [("filters", f"isRequester=={'true' if is_requester else 'false'}")]
        if anchor is not None:
            params.append(("filters", f"lastUpdated>={iso(anchor)}"))
        params += [("sort", "lastUpdated;asc"), ("perPage", str(per_page)), ("offset", str(offset))]
        path = "/rs/patronrequests"
        what = f"GET {path}"
        response = self._request("GET", path, params=params)
        if not response.ok:
            self._fail(response, what)
        data = _results(self._json(response, what), what)
        page: list[tuple[datetime | None, PatronRequest]] = []
        for raw in data:
            request = _patron_request(raw, what)
            changed = _second(request.last_updated) if request.last_updated is not None else None
            page.append((changed, request))
        logger.debug(
            "Listed ReShare requests",
            extra={
                "tenant": self.settings.tenant,
                "is_requester": is_requester,
                "anchor": iso(anchor) if anchor is not None else None,
                "offset": offset,
                "count": len(page),
            },
        )
        return page

    def get_request(self, request_id: str) -> PatronRequest:
        """The full record of one request (with volumes and the resolved pickup location)."""
        path = f"/rs/patronrequests/{_segment(request_id)}"
        what = f"GET {path}"
        response = self._request("GET", path)
        if not response.ok:
            self._fail(response, what)
        return _patron_request(self._json(response, what), what)

    def find_by_hrid(self, hrid: str) -> PatronRequest | None:
        """The tenant's request with this human-readable id (what staff know it by), or None.

        ``GET /rs/patronrequests?filters=hrid==<hrid>`` (web-toolkit's filter grammar, as ``changed_since``
        uses it); then the full record by id. A tenant holds one request per hrid (the lender's copy of a
        request lives in the lender's tenant under the same hrid)."""
        if not hrid.strip() or any(ch in hrid for ch in "=<>!&|()\\\n"):
            return None  # not an hrid: nothing can match, and the filter grammar must not see it
        path = "/rs/patronrequests"
        what = f"GET {path} (hrid {hrid})"
        response = self._request("GET", path, params=[("filters", f"hrid=={hrid}"), ("perPage", "2")])
        if not response.ok:
            self._fail(response, what)
        found = [_patron_request(raw, what) for raw in _results(self._json(response, what), what)]
        found = [request for request in found if request.hrid == hrid]
        return self.get_request(found[0].id) if found else None

    def perform_action(
        self, request_id: str, action: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Perform a staff action, sent once: ``{"action": action, "actionParams": params or {}}``.

        Returns ReShare's JSON answer (``{}`` when it sends none). Errors:

        * 400 "Unable to perform action as we are waiting for existing network activity to complete" (the
          request waits for its partner's answer: networkStatus Waiting or Retry; nothing was done): sent
          again after 1, 2, 4, 8 s (capped) for up to ``busy_wait`` seconds, then :class:`ReShareBusy`
          (transient: the engine waits it out as it waits out an outage, within the library's
          ``outage_deadline_hours``; never a refusal for staff);
        * 400 "Unable to find request with id": :class:`ReShareNotFound`;
        * other 400/422: :class:`ReShareActionRejected` (not valid in the current state, or bad parameters),
          with ReShare's ``message``;
        * 404: :class:`ReShareNotFound`; 401 twice or 403: :class:`ReShareAuthError`;
        * not sent (connection refused, connect timeout), 429 or 5xx: :class:`ReShareUnavailable`;
        * sent but no answer (read timeout, connection lost) or 504 (the gateway gave up waiting for mod-rs,
          which may still have acted): :class:`ReShareOutcomeUnknown`: re-read the request before re-sending;
        * a success whose body is not JSON: :class:`ReShareProtocolError` (the action *was* accepted).
        """
        if not action:
            raise ValueError("action is required")
        path = f"/rs/patronrequests/{_segment(request_id)}/performAction"
        what = f"POST {path} ({action})"
        body = {"action": action, "actionParams": dict(params or {})}
        started = time.monotonic()
        waited, busy_tries = 0.0, 0
        while True:
            response = self._request("POST", path, body=body)
            if response.ok:
                break
            message = _error_message(response)
            if response.status_code != 400 or not message.startswith(BUSY_MESSAGE):
                self._fail(response, what, action=action)
            delay = min(BUSY_BACKOFF_CAP_SECONDS, self._busy_backoff * 2**busy_tries)
            if waited + delay > self._busy_wait:
                raise ReShareBusy(
                    f"ReShare tenant {self.settings.tenant}: {what}: still busy after {waited:.0f} s "
                    f"({busy_tries + 1} tries): {message}"
                )
            logger.info(
                "ReShare request busy with network activity: trying the action again",
                extra={
                    "tenant": self.settings.tenant,
                    "request_id": request_id,
                    "action": action,
                    "delay_s": delay,
                },
            )
            response.close()
            self._sleep(delay)
            waited += delay
            busy_tries += 1
        logger.info(
            "Performed ReShare action",
            extra={
                "tenant": self.settings.tenant,
                "request_id": request_id,
                "action": action,
                "status": response.status_code,
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )
        if not response.content.strip():
            return {}
        data = self._json(response, what)
        return data if isinstance(data, dict) else {"result": data}

    def valid_actions(self, request_id: str) -> list[str]:
        """The actions ReShare allows on this request now (``GET .../validActions``)."""
        path = f"/rs/patronrequests/{_segment(request_id)}/validActions"
        what = f"GET {path}"
        response = self._request("GET", path)
        if not response.ok:
            self._fail(response, what)
        data = self._json(response, what)
        items = data.get("actions") if isinstance(data, dict) else data
        if isinstance(data, dict) and data.get("message") and not items:  # mod-rs: 200 {actions: [], message}
            raise ReShareNotFound(f"ReShare tenant {self.settings.tenant}: {what}: {data['message']}")
        if not isinstance(items, list):
            raise ReShareProtocolError(f"{what}: expected {{'actions': [...]}}, got {type(data).__name__}")
        actions: list[str] = []
        for item in items:
            name = item if isinstance(item, str) else None
            if isinstance(item, dict):  # tolerate [{"actionCode": ...}] as some releases render it
                name = item.get("actionCode") or item.get("code") or item.get("action")
            if not isinstance(name, str):
                raise ReShareProtocolError(f"{what}: unreadable action {item!r}")
            actions.append(name)
        return actions

    def app_setting(self, key: str) -> str | None:
        """A tenant setting's effective value (its ``value``, else its ``defValue``); None if it has none."""
        path = "/rs/settings/appSettings"
        what = f"GET {path} ({key})"
        response = self._request("GET", path, params=[("filters", f"key=={key}")])
        if not response.ok:
            self._fail(response, what)
        for entry in _results(self._json(response, what), what):
            if entry.get("key") == key:
                value = entry.get("value")
                if value is None:
                    value = entry.get("defValue")
                return None if value is None else str(value)
        return None

    # --- plumbing ---------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self._base + path

    def _headers(self) -> dict[str, str]:
        assert self._token is not None
        return {
            "X-Okapi-Tenant": self.settings.tenant,
            "X-Okapi-Token": self._token,
            "Content-Type": _JSON,
            "Accept": _JSON,
        }

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
    ) -> requests.Response:
        """Send with a valid token; on a 401 log in again and repeat once."""
        self._ensure_token()
        sent_with = self._token
        response = self._send(method, path, params, body)
        if response.status_code == 401:
            logger.info(
                "ReShare refused the token: logging in again",
                extra={"tenant": self.settings.tenant, "path": path, "token": mask(self._token)},
            )
            response.close()
            with self._login_lock:  # unless another record of the batch has logged in since
                if self._token == sent_with:
                    self.login()
            response = self._send(method, path, params, body)
            if response.status_code == 401:
                raise ReShareAuthError(
                    f"ReShare tenant {self.settings.tenant}: {method} {path} refused a fresh token (401): "
                    f"{_error_message(response)}"
                )
        return response

    def _send(
        self, method: str, path: str, params: list[tuple[str, str]] | None, body: dict[str, Any] | None
    ) -> requests.Response:
        if method == "GET":
            return self._send_read(path, params)
        return self._send_write(method, path, params, body)

    def _send_read(self, path: str, params: list[tuple[str, str]] | None) -> requests.Response:
        attempts = 1 + self._read_retries
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                response = self._session.get(
                    self._url(path), params=params, headers=self._headers(), timeout=self._timeout
                )
            except _MAYBE_SENT as exc:
                problem = _describe(exc)
                if attempt == attempts:
                    raise ReShareUnavailable(
                        f"ReShare tenant {self.settings.tenant}: GET {path} failed after {attempts} "
                        f"attempt(s): {problem}"
                    ) from exc
            else:
                if response.status_code not in RETRYABLE_READ_STATUSES:
                    return response
                problem = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
                if attempt == attempts:
                    raise ReShareUnavailable(
                        f"ReShare tenant {self.settings.tenant}: GET {path} failed after {attempts} "
                        f"attempt(s): {problem} {_error_message(response)}"
                    )
                response.close()
            delay = min(BACKOFF_CAP_SECONDS, self._backoff * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(BACKOFF_CAP_SECONDS, max(delay, retry_after))
            logger.warning(
                "ReShare read failed: retrying",
                extra={
                    "tenant": self.settings.tenant,
                    "path": path,
                    "attempt": attempt,
                    "problem": problem,
                    "delay_s": delay,
                },
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_write(
        self, method: str, path: str, params: list[tuple[str, str]] | None, body: dict[str, Any] | None
    ) -> requests.Response:
        what = f"ReShare tenant {self.settings.tenant}: {method} {path}"
        try:
            return self._session.request(
                method,
                self._url(path),
                params=params,
                json=body,
                headers=self._headers(),
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            if _never_sent(exc):
                raise ReShareUnavailable(f"{what} could not be sent: {_describe(exc)}") from exc
            if isinstance(exc, _MAYBE_SENT):
                raise ReShareOutcomeUnknown(
                    f"{what} was sent but no answer came back: {_describe(exc)}"
                ) from exc
            raise ReShareError(f"{what} failed: {_describe(exc)}") from exc

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            snippet = response.text[:200]
            raise ReShareProtocolError(
                f"{what}: ReShare answered HTTP {response.status_code} with a body that is not JSON: "
                f"{snippet!r}"
            ) from exc

    def _fail(self, response: requests.Response, what: str, *, action: str | None = None) -> NoReturn:
        """Raise the typed error for an unsuccessful answer."""
        status = response.status_code
        message = _error_message(response)
        where = f"ReShare tenant {self.settings.tenant}: {what}"
        if status == 404 or (
            action is not None and status == 400 and message.startswith(UNKNOWN_REQUEST_MESSAGE)
        ):
            raise ReShareNotFound(f"{where}: not found ({message})")
        if status in (401, 403):
            raise ReShareAuthError(f"{where}: HTTP {status} {message}")
        if action is not None and status in (400, 422):
            raise ReShareActionRejected(action, message, status=status)
        if action is not None and status == 504:
            raise ReShareOutcomeUnknown(f"{where}: HTTP 504 (the gateway gave up waiting; it may have acted)")
        if status == 429 or status >= 500:
            raise ReShareUnavailable(f"{where}: HTTP {status} {message}")
        raise ReShareError(f"{where}: unexpected HTTP {status} {message}")


# --- helpers --------------------------------------------------------------------------------------------


def _new_session() -> requests.Session:
    session = requests.Session()
    # No transport-level retries: reads are retried by the client itself, writes never.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _segment(value: str) -> str:
    if not value:
        raise ValueError("request id is required")
    return quote(value, safe="")


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach ReShare (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = exc.args[0]
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        # NewConnectionError and NameResolutionError are ConnectTimeoutErrors too.
        return isinstance(reason, ConnectTimeoutError)
    return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _error_message(response: requests.Response) -> str:
    """ReShare's reason for an error: the JSON body's ``message`` (or ``error``/``errors``), else the text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "errors"):
            value = data.get(key)
            if isinstance(value, list) and value:
                value = value[0].get("message", value[0]) if isinstance(value[0], dict) else value[0]
            if value:
                return str(value)
    elif isinstance(data, str) and data:
        return data
    text = response.text.strip()
    return text[:500] if text else (response.reason or f"HTTP {response.status_code}")


def _json_field(response: requests.Response, key: str) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _cookie(response: requests.Response, name: str) -> str | None:
    """A cookie the response sets, read from the jar, else straight from the Set-Cookie headers."""
    try:
        value = response.cookies.get(name)
    except requests.cookies.CookieConflictError:
        value = None
    if value:
        return str(value)
    getlist = getattr(getattr(response.raw, "headers", None), "getlist", None)
    lines: list[str] = getlist("Set-Cookie") if callable(getlist) else []
    for line in lines:
        parsed: SimpleCookie = SimpleCookie()
        try:
            parsed.load(line)
        except CookieError:
            continue
        if name in parsed and parsed[name].value:
            return parsed[name].value
    return None


def _token_expiry(response: requests.Response) -> datetime | None:
    try:
        data = response.json()
        return to_utc(data.get("accessTokenExpiration")) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _results(data: Any, what: str) -> list[dict[str, Any]]:
    """A list answer: a bare JSON array, or ``{"results": [...]}`` (``stats=true``)."""
    if isinstance(data, dict) and "results" in data:
        data = data["results"]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ReShareProtocolError(f"{what}: expected a list of objects, got {type(data).__name__}")
    return data


def _patron_request(data: Any, what: str) -> PatronRequest:
    try:
        return PatronRequest.model_validate(data)
    except ValidationError as exc:
        raise ReShareProtocolError(f"{what}: not a patron request ({exc.error_count()} problem(s))") from exc


def _second(value: datetime) -> datetime:
    """A time cut to its second, in UTC: the precision at which mod-rs renders ``lastUpdated``."""
    moment = to_utc(value)
    assert moment is not None
    return moment.replace(microsecond=0)
