"""A tiny programmable HTTP server on 127.0.0.1 for the WMS client's unit tests (real sockets, real requests).

Imported by the tests as ``wms_fakes`` (this directory is on sys.path under pytest's default import mode);
the fixtures are re-exported by ``conftest.py``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from illbridge.config.library import WmsSettings
from illbridge.wms.client import Exchange, WmsClient


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address: the same port means a reused connection


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (a slow server)
    drop: bool = False  # read the request, then close the connection without answering

    @classmethod
    def json(cls, payload: object, status: int = 200, content_type: str = "application/json") -> Reply:
        return cls(status, json.dumps(payload).encode(), content_type)

    @classmethod
    def xml(cls, body: bytes, status: int = 200) -> Reply:
        return cls(status, body, "application/xml")


Responder = Reply | Callable[[Seen], Reply]


@dataclass
class FakeServer:
    routes: dict[str, list[Responder]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def route(self, path: str, *replies: Responder) -> None:
        """Answer ``path`` with the replies in turn; the last one repeats."""
        self.routes[path] = list(replies)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_to(self, path: str) -> list[Seen]:
        return [request for request in self.seen if request.path == path]

    def _next(self, path: str) -> Responder | None:
        queue = self.routes.get(path)
        if not queue:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            seen = Seen(
                "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, self.client_address
            )
            server.seen.append(seen)
            responder = server._next(self.path)
            reply = Reply(404, b'{"detail":"no route"}') if responder is None else responder
            if callable(reply):
                reply = reply(seen)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    return Handler


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[Exchange]:
    """Every call any ``WmsClient`` logs during the test, in order (the client logs one ``Exchange`` per call)."""
    seen: list[Exchange] = []
    record = WmsClient._record

    def keep(self: WmsClient, exchange: Exchange) -> None:
        seen.append(exchange)
        record(self, exchange)

    monkeypatch.setattr(WmsClient, "_record", keep)
    return seen


@pytest.fixture
def fake_wms() -> Iterator[FakeServer]:
    state = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    httpd.block_on_close = False  # do not wait for handlers still sleeping (slow-server tests)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def settings_for(server: FakeServer, **overrides: object) -> WmsSettings:
    values: dict[str, object] = {
        "registry_id": "128807",
        "ncip_url": server.url("/ncip"),
        "oauth_url": server.url("/oauth/token"),
        "scim_url": server.url("/idaas/scim/v2/Users/.search"),
        "wskey": "east-wskey",
        "wskey_secret": "east-secret",
        "timeout_seconds": 2.0,
    }
    values.update(overrides)
    return WmsSettings.model_validate(values)


def token_reply(token: str = "tok-1", expires_in: object = 1200) -> Reply:  # noqa: S107 (a test token)
    payload: dict[str, object] = {"access_token": token, "token_type": "bearer"}
    if expires_in is not None:
        payload["expires_in"] = expires_in
    return Reply.json(payload)
