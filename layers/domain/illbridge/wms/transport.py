"""One HTTP POST to WMS, with failures mapped to what they mean for a call that is not idempotent.

The question every failure must answer is "could WMS have acted?":
- the request never left (connection refused, DNS failure, connect timeout, TLS or proxy failure)
  -> ``WmsUnavailable``: safe to send again;
- it left and no answer came back (read timeout, connection dropped or reset after sending, a body cut short)
  -> ``WmsOutcomeUnknown`` for an operation that changes WMS (verify before sending again), and
  ``WmsUnavailable`` for a read-only one (nothing can have changed, so there is nothing to verify).

No retries happen here: urllib3 retries are off (``Retry(total=0, read=False)``), redirects are not followed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

from illbridge.errors import ConfigurationError, WmsOutcomeUnknown, WmsProtocolError, WmsUnavailable

MAX_RESPONSE_BYTES = 2 * 1024 * 1024
USER_AGENT = "reshare-wms-bridge/0.1"


def new_session(*, pool_maxsize: int = 10) -> requests.Session:
    """A session with a connection pool and no automatic retries (NCIP is not idempotent)."""
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_maxsize,
        max_retries=Retry(total=0, connect=0, read=False, redirect=0, status=0, other=0),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def text_excerpt(self, limit: int = 300) -> str:
        """The start of the body as text, for error messages and history lines."""
        snippet = self.body[:limit].decode("utf-8", "replace")
        snippet = " ".join(snippet.split())
        return snippet + ("…" if len(self.body) > limit else "")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and what urllib3 wraps in args / ``reason``."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        related = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        related.extend(arg for arg in current.args if isinstance(arg, BaseException))
        stack.extend(item for item in related if isinstance(item, BaseException))


_NEVER_SENT = (
    NewConnectionError,
    NameResolutionError,
    ConnectTimeoutError,
    ConnectionRefusedError,
    socket.gaierror,
)


def never_sent(exc: BaseException) -> bool:
    """True when the failure happened while connecting, i.e. before any byte of the request left."""
    return any(isinstance(cause, _NEVER_SENT) for cause in _causes(exc))


def _lost(operation: str, url: str, exc: BaseException, *, mutating: bool) -> Exception:
    if mutating:
        return WmsOutcomeUnknown(
            f"{operation}: sent to {url} but no answer came back ({type(exc).__name__}); "
            "WMS may or may not have acted: verify before sending again"
        )
    return WmsUnavailable(f"{operation}: no answer from {url} ({type(exc).__name__})")


def post(
    session: requests.Session,
    url: str,
    *,
    operation: str,
    data: bytes | Mapping[str, str],
    headers: Mapping[str, str],
    timeout: tuple[float, float],
    mutating: bool,
    auth: tuple[str, str] | None = None,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> HttpAnswer:
    """POST once and read the whole answer (up to ``max_bytes``), whatever its status."""
    try:
        response = session.post(
            url,
            data=data,
            headers=dict(headers),
            timeout=timeout,
            auth=auth,
            stream=True,
            allow_redirects=False,
        )
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    ) as exc:
        raise ConfigurationError(f"{operation}: cannot send to {url!r}: {exc}") from exc
    except requests.exceptions.ConnectTimeout as exc:
        raise WmsUnavailable(f"{operation}: could not connect to {url} in time") from exc
    except (requests.exceptions.SSLError, requests.exceptions.ProxyError) as exc:
        raise WmsUnavailable(f"{operation}: could not connect to {url} ({type(exc).__name__})") from exc
    except requests.exceptions.ReadTimeout as exc:
        raise _lost(operation, url, exc, mutating=mutating) from exc
    except requests.exceptions.ConnectionError as exc:
        if never_sent(exc):
            raise WmsUnavailable(f"{operation}: could not connect to {url}: {exc}") from exc
        raise _lost(operation, url, exc, mutating=mutating) from exc
    except requests.exceptions.RequestException as exc:  # anything else: assume it may have left
        raise _lost(operation, url, exc, mutating=mutating) from exc

    with response:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > max_bytes:
                    raise WmsProtocolError(
                        f"{operation}: the answer from {url} is larger than {max_bytes} bytes"
                    )
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:  # cut short, reset or timed out mid-body
            raise _lost(operation, url, exc, mutating=mutating) from exc
        return HttpAnswer(response.status_code, b"".join(chunks), dict(response.headers))
