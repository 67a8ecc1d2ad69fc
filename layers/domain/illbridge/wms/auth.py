"""OCLC OAuth client-credentials tokens, cached until shortly before they expire (docs/wms.md#transport-and-auth).

``POST <oauth_url>`` with ``grant_type=client_credentials&scope=<scope>`` and HTTP Basic (WSKey, secret);
the answer is JSON with ``access_token`` and ``expires_in`` (1200 s assumed when absent).

The cache is keyed by (oauth_url, wskey, scope) and is thread-safe; one fetch per key at a time (threads
waiting for the same key reuse the token the first one fetched). A token is reused until
``refresh_margin_seconds`` (60 s) before it expires; for very short-lived tokens the margin shrinks to half
the lifetime so they are still reused. ``DEFAULT_TOKENS`` is the module-level cache a Lambda instance keeps
between invocations; tests inject their own ``TokenCache`` (and clock).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from illbridge.errors import WmsAuthError, WmsProtocolError, WmsUnavailable
from illbridge.observability import mask
from illbridge.wms.transport import post

NCIP_SCOPE = "WMS_NCIP"
SCIM_SCOPE = "SCIM:read_user"
# every scope the bridge uses, in one token: OCLC's client-credentials grant takes a space-separated list
# (OCLC-Developer-Network/oclc-auth-php, src/OCLC/Auth/AccessToken.php: buildAccessTokenURL joins the scope
# array with spaces); the WMS client falls back to a token per scope if the list is refused
ALL_SCOPES = f"{NCIP_SCOPE} {SCIM_SCOPE}"
DEFAULT_LIFETIME_SECONDS = 1200.0
REFRESH_MARGIN_SECONDS = 60.0

TokenKey = tuple[str, str, str]  # (oauth_url, wskey, scope)


@dataclass(frozen=True)
class FetchedToken:
    access_token: str = field(repr=False)
    expires_in: float | None


@dataclass(frozen=True)
class _Cached:
    access_token: str = field(repr=False)
    fetched_at: float
    lifetime: float

    def fresh(self, now: float, margin: float) -> bool:
        return now < self.fetched_at + self.lifetime - min(margin, self.lifetime / 2)


def _oauth_error(answer_body: bytes) -> str:
    try:
        payload = json.loads(answer_body)
    except ValueError:
        return answer_body[:200].decode("utf-8", "replace").strip()
    if not isinstance(payload, dict):
        return ""
    parts = [
        str(payload.get(key))
        for key in ("error", "error_description", "message", "detail")
        if payload.get(key)
    ]
    return ": ".join(parts)


def fetch_token(
    session: requests.Session,
    *,
    oauth_url: str,
    wskey: str,
    secret: str,
    scope: str,
    timeout: tuple[float, float],
) -> FetchedToken:
    """Ask the OAuth server for a client-credentials token. Raises WmsAuthError / WmsUnavailable /
    WmsProtocolError."""
    answer = post(
        session,
        oauth_url,
        operation="token",
        data={"grant_type": "client_credentials", "scope": scope},
        headers={"Accept": "application/json"},
        timeout=timeout,
        mutating=False,
        auth=(wskey, secret),
    )
    why = _oauth_error(answer.body)
    if answer.status in (408, 429) or answer.status >= 500:
        raise WmsUnavailable(
            f"token: the OAuth server answered HTTP {answer.status}" + (f" ({why})" if why else "")
        )
    if answer.status == 404:
        raise WmsProtocolError(f"token: no OAuth endpoint at {oauth_url} (HTTP 404)")
    if 400 <= answer.status < 500:
        raise WmsAuthError(
            f"token: WSKey {mask(wskey)!r} refused for scope {scope!r} (HTTP {answer.status})"
            + (f": {why}" if why else "")
        )
    if answer.status != 200:
        raise WmsProtocolError(f"token: unexpected HTTP {answer.status} from the OAuth server")
    try:
        payload = json.loads(answer.body)
    except ValueError as exc:
        raise WmsProtocolError("token: the OAuth server answered something that is not JSON") from exc
    token = payload.get("access_token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise WmsProtocolError("token: the OAuth answer has no access_token")
    expires_in = payload.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in is not None else None
    except (TypeError, ValueError):
        lifetime = None
    return FetchedToken(token, lifetime if lifetime and lifetime > 0 else None)


Fetcher = Callable[..., FetchedToken]


class TokenCache:
    """Access tokens per (oauth_url, wskey, scope), reused until shortly before expiry. Thread-safe."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin_seconds: float = REFRESH_MARGIN_SECONDS,
        default_lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS,
        fetcher: Fetcher = fetch_token,
    ) -> None:
        self._clock = clock
        self._margin = refresh_margin_seconds
        self._default_lifetime = default_lifetime_seconds
        self._fetch = fetcher
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, _Cached] = {}
        self._key_locks: dict[TokenKey, threading.Lock] = {}
        self.fetches = 0  # how many tokens were fetched (for tests and metrics)

    def get(
        self,
        session: requests.Session,
        *,
        oauth_url: str,
        wskey: str,
        secret: str,
        scope: str,
        timeout: tuple[float, float],
    ) -> str:
        """A valid access token for the key: the cached one while fresh, else a newly fetched one."""
        key = (oauth_url, wskey, scope)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached.fresh(self._clock(), self._margin):
                return cached.access_token
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:  # another thread may have fetched while this one waited
                cached = self._tokens.get(key)
                if cached and cached.fresh(self._clock(), self._margin):
                    return cached.access_token
            started = self._clock()  # count the lifetime from before the request: errs on the early side
            fetched = self._fetch(
                session, oauth_url=oauth_url, wskey=wskey, secret=secret, scope=scope, timeout=timeout
            )
            lifetime = fetched.expires_in or self._default_lifetime
            with self._lock:
                self._tokens[key] = _Cached(fetched.access_token, started, lifetime)
                self.fetches += 1
            return fetched.access_token

    def invalidate(self, *, oauth_url: str, wskey: str, scope: str, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given: after a 401 with it)."""
        key = (oauth_url, wskey, scope)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and (token is None or cached.access_token == token):
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


DEFAULT_TOKENS = TokenCache()
