"""HTTP plumbing the simulators share (ReShare: `sandbox.reshare.server`, WMS: `sandbox.wms.server`).

- `TrackingServer`: a `ThreadingHTTPServer` (daemon threads, address reuse) that knows its open connections so
  `stop()` can shut them down (`close_connections()`); with `track_threads` it also runs each connection in a
  thread of its own that `join_threads(timeout)` waits for; `serve_in_thread(name)` and `stop_serving(thread)`
  are the start and the stop of a simulator.
- `ServedSimulator`: the simulators' public objects: a context manager over `start()`/`stop()`, and `base_url`.
- `AllMethodsHandler`: a request handler whose `do_GET` ... `do_OPTIONS` all call `handle_method(method)`.
- `read_body(handler, rules)`: the request body by `Content-Length`, or `BodyError` (411, 400, 413) for each
  simulator to answer in its own error envelope with the messages its `BodyRules` give.

What differs between the simulators (protocol version, error envelopes, `send_error`, logging) stays with them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

_DRAIN_CHUNK = 65536


class TrackingServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its open connections (and, with `track_threads`, their threads)."""

    daemon_threads = True
    allow_reuse_address = True
    track_threads = False  # serve each connection in a tracked thread (see `join_threads`)
    connection_thread_name: str | None = None  # the name of those threads

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._track_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self._track_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._track_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.track_threads:
            super().process_request(request, client_address)
            return
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=self.connection_thread_name,
            daemon=self.daemon_threads,
        )
        with self._track_lock:
            self._conn_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._track_lock:
                self._conn_threads.discard(threading.current_thread())

    def serve_in_thread(self, name: str) -> threading.Thread:
        """Run `serve_forever` (polling every 0.1 s) in a started daemon thread called `name`."""
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )
        thread.start()
        return thread

    def stop_serving(self, thread: threading.Thread | None, timeout: float = 5.0) -> None:
        """Stop serving, shut the open connections, wait for the tracked connection threads, close the
        listening socket and wait for `thread` (the one `serve_in_thread` gave), each wait up to `timeout`."""
        self.shutdown()
        self.close_connections()
        self.join_threads(timeout)
        self.server_close()
        if thread is not None:
            thread.join(timeout)

    def close_connections(self) -> None:
        """Shut down every open connection (the handlers then see end of file or a reset)."""
        with self._track_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def join_threads(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for each tracked connection thread (only with `track_threads`)."""
        with self._track_lock:
            threads = list(self._conn_threads)
        for thread in threads:
            thread.join(timeout)


class ServedSimulator:
    """A simulator's public object: `start()` serves, `stop()` stops, `with` does both; `base_url` from host and port."""

    host: str

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class AllMethodsHandler(BaseHTTPRequestHandler):
    """A handler answering GET, POST, PUT, PATCH, DELETE, HEAD and OPTIONS through one `handle_method`."""

    def handle_method(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self.handle_method("GET")

    def do_POST(self) -> None:
        self.handle_method("POST")

    def do_PUT(self) -> None:
        self.handle_method("PUT")

    def do_PATCH(self) -> None:
        self.handle_method("PATCH")

    def do_DELETE(self) -> None:
        self.handle_method("DELETE")

    def do_HEAD(self) -> None:
        self.handle_method("HEAD")

    def do_OPTIONS(self) -> None:
        self.handle_method("OPTIONS")


@dataclass(frozen=True)
class BodyRules:
    """How one simulator reads request bodies, and the words of its refusals."""

    max_body: int  # longer bodies: 413
    drain_limit: int  # a refused body up to this long is read away first, so the client gets the answer
    refused_encoding: str  # 411 message; the refusal's condition is `only_chunked`
    bad_length: str  # 400 message for a Content-Length that is not a number; may use {raw!r}
    negative_length: str  # 400 message for a negative Content-Length
    too_large: str  # 413 message; may use {length} and {limit}
    only_chunked: bool = False  # refuse only a chunked Transfer-Encoding, else any but identity
    strip_length: bool = False  # str.strip() the Content-Length first (int() alone refuses \x1c-\x1f)
    drain_errors_ok: bool = False  # a connection error while draining still answers 413
    strict_length: bool = False  # a body shorter than its Content-Length raises BodyTruncated


class BodyError(Exception):
    """A body refused with `status`; `read_body` has already marked the connection to be closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BodyTruncated(Exception):
    """The client sent less than its Content-Length (only with `BodyRules.strict_length`)."""


def _encoding_refused(encoding: str | None, only_chunked: bool) -> bool:
    if only_chunked:
        return "chunked" in (encoding or "").lower()
    return bool(encoding) and (encoding or "").strip().lower() != "identity"


def read_body(handler: BaseHTTPRequestHandler, rules: BodyRules) -> bytes:
    """The request body as `Content-Length` gives it (none: b""); `BodyError` if it is refused."""
    if _encoding_refused(handler.headers.get("Transfer-Encoding"), rules.only_chunked):
        handler.close_connection = True
        raise BodyError(411, rules.refused_encoding)
    raw = handler.headers.get("Content-Length")
    if raw is None:
        return b""
    try:
        length = int(raw.strip() if rules.strip_length else raw)
    except ValueError:
        handler.close_connection = True
        raise BodyError(400, rules.bad_length.format(raw=raw)) from None
    if length < 0:
        handler.close_connection = True
        raise BodyError(400, rules.negative_length.format(raw=raw))
    if length > rules.max_body:
        handler.close_connection = True
        if length <= rules.drain_limit:
            with contextlib.suppress(*((OSError,) if rules.drain_errors_ok else ())):
                _drain(handler, length)
        raise BodyError(413, rules.too_large.format(length=length, limit=rules.max_body))
    if not length:
        return b""
    body = handler.rfile.read(length)
    if rules.strict_length and len(body) < length:
        raise BodyTruncated()
    return body


def _drain(handler: BaseHTTPRequestHandler, length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = handler.rfile.read(min(remaining, _DRAIN_CHUNK))
        if not chunk:
            break
        remaining -= len(chunk)
