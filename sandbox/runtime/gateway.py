"""A local API Gateway (REST, Lambda proxy integration), like ``sam local start-api``.

Routes are the template's ``Api`` events (Path + Method; ``{name}`` and greedy ``{name+}`` path parameters;
method ``any``). A request becomes the REST proxy event (payload version 1.0, the shape of ``sam local
generate-event apigateway aws-proxy``), the function runs in-process, and its answer (``statusCode``,
``headers``, ``multiValueHeaders``, ``body``, ``isBase64Encoded``) becomes the HTTP response.

As API Gateway: a path with one trailing slash reaches the same resource (``/ops/`` -> ``/ops``); an unknown
route (or a known path with another method) answers 403
``{"message":"Missing Authentication Token"}``; a body over 10 MiB answers 413; a function that fails, or
answers something that is not a proxy response, gives 502 ``{"message": "Internal server error"}``.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .functions import EventSource, Functions, HandlerError

log = logging.getLogger("sandbox.runtime")

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
STAGE = "Prod"  # SAM's implicit API stage
_PARAM = re.compile(r"\{([^}/]+?)(\+?)\}")


@dataclass
class Route:
    method: str  # upper case, or ANY
    path: str  # the template's resource path, e.g. /requests/{tenant}/{id}
    function: str
    pattern: re.Pattern[str]
    names: list[str]
    specificity: tuple[int, int, int]

    @classmethod
    def from_event(cls, source: EventSource) -> Route:
        path = str(source.properties["Path"])
        method = str(source.properties.get("Method", "any")).upper()
        names: list[str] = []
        regex = ""
        position = 0
        greedy = 0
        for match in _PARAM.finditer(path):
            regex += re.escape(path[position : match.start()])
            names.append(match.group(1))
            greedy += bool(match.group(2))
            regex += f"(?P<p{len(names) - 1}>{'.+' if match.group(2) else '[^/]+'})"
            position = match.end()
        regex += re.escape(path[position:])
        return cls(
            method=method,
            path=path,
            function=source.function,
            pattern=re.compile(f"^{regex}$"),
            names=names,
            specificity=(greedy, len(names), -len(path)),
        )

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path)
        if found is None and len(path) > 1 and path.endswith("/"):
            # as API Gateway (REST and HTTP APIs) routes /hello/ to the resource /hello: observed and reported in
            # aws-powertools/powertools-lambda-python#1552; the event's path keeps the slash as sent
            found = self.pattern.match(path[:-1])
        if found is None:
            return None
        return {name: unquote(found.group(f"p{i}")) for i, name in enumerate(self.names)}


def proxy_event(
    route: Route,
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    host: str,
    account_id: str,
    api_id: str,
) -> dict[str, Any]:
    """The API Gateway REST proxy event (v1.0) for a request."""
    split = urlsplit(raw_path)
    path = unquote(split.path)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    query = parse_qs(split.query, keep_blank_values=True)
    text: str | None
    encoded = False
    if not body:
        text = None
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    now = datetime.now(UTC)
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    request_id = str(uuid.uuid4())
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": route.match(path) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "extendedRequestId": request_id,
            "httpMethod": method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": source_ip,
                "user": None,
                "userAgent": user_agent,
                "userArn": None,
            },
            "path": f"/{STAGE}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": "local",
            "resourcePath": route.path,
            "stage": STAGE,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    gateway: Gateway


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("gateway: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        self.close_connection = True
        gateway = self.server.gateway
        started = time.monotonic()
        length_header = self.headers.get("Content-Length")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            self._reply(400, {"Content-Type": "application/json"}, b'{"message":"Bad Request"}')
            return
        if length > MAX_BODY:
            message = f'{{"message":"HTTP content length exceeded {MAX_BODY} bytes."}}'.encode()
            self._reply(413, {"Content-Type": "application/json"}, message)
            return
        body = self._read_chunked() if chunked else self.rfile.read(length) if length else b""
        if body is None:
            message = f'{{"message":"HTTP content length exceeded {MAX_BODY} bytes."}}'.encode()
            self._reply(413, {"Content-Type": "application/json"}, message)
            return
        path = urlsplit(self.path).path
        route = gateway.route(self.command, unquote(path))
        if route is None:
            self._reply(
                403,
                {
                    "Content-Type": "application/json",
                    "x-amzn-ErrorType": "MissingAuthenticationTokenException",
                },
                b'{"message":"Missing Authentication Token"}',
            )
            return
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in ("transfer-encoding",)]
        names = {k.lower() for k, _ in headers}
        host = self.headers.get("Host") or f"{gateway.host}:{gateway.port}"
        for name, value in (
            ("X-Forwarded-For", self.client_address[0]),
            ("X-Forwarded-Port", str(gateway.port)),
            ("X-Forwarded-Proto", "http"),
        ):
            if name.lower() not in names:
                headers.append((name, value))
        event = proxy_event(
            route,
            self.command,
            self.path,
            headers,
            body,
            self.client_address[0],
            host,
            gateway.account_id,
            gateway.api_id,
        )
        request_id = event["requestContext"]["requestId"]
        try:
            result = gateway.functions.invoke(route.function, event)
            status, out_headers, out_body = to_http(result)
        except HandlerError:
            status, out_headers, out_body = (
                502,
                [("Content-Type", "application/json")],
                (b'{"message": "Internal server error"}'),
            )
        except (TypeError, ValueError, KeyError) as exc:
            log.error("%s answered something that is not a proxy response: %s", route.function, exc)
            status, out_headers, out_body = (
                502,
                [("Content-Type", "application/json")],
                (b'{"message": "Internal server error"}'),
            )
        out_headers.append(("x-amzn-RequestId", request_id))
        self._reply(status, out_headers, out_body)
        log.info(
            "%s %s -> %s %d (%.0f ms)",
            self.command,
            path,
            route.function,
            status,
            (time.monotonic() - started) * 1000,
        )

    def _read_chunked(self) -> bytes | None:
        data = bytearray()
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(data)
            if len(data) + size > MAX_BODY:
                return None
            data += self.rfile.read(size)
            self.rfile.readline(65537)

    def _reply(self, status: int, headers: Any, body: bytes) -> None:
        items = list(headers.items()) if isinstance(headers, dict) else list(headers)
        self.send_response(status)
        for name, value in items:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def to_http(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A proxy integration answer as (status, headers, body bytes); raises ValueError if it is not one."""
    if not isinstance(result, dict) or "statusCode" not in result:
        raise ValueError(f"not a proxy response: {type(result).__name__}")
    status = int(result["statusCode"])
    headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise ValueError("multiValueHeaders values must be lists")
        single = {k.lower() for k, _ in headers}
        if name.lower() in single:  # API Gateway: multiValueHeaders win over headers of the same name
            headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
        headers.extend((str(name), str(v)) for v in values)
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    body = result.get("body")
    if body is None:
        raw = b""
    elif result.get("isBase64Encoded"):
        raw = base64.b64decode(body)
    elif isinstance(body, str):
        raw = body.encode("utf-8")
    else:
        raise ValueError("body must be a string")
    return status, headers, raw


class Gateway:
    """The HTTP server: ``start()`` returns its base URL; ``stop()`` frees the port and joins its threads."""

    def __init__(
        self,
        sources: list[EventSource],
        functions: Functions,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        account_id: str = "123456789012",
        api_id: str = "local",
    ) -> None:
        self.routes = sorted((Route.from_event(s) for s in sources), key=lambda r: r.specificity)
        self.functions = functions
        self.host = host
        self.port = port
        self.account_id = account_id
        self.api_id = api_id
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, path: str) -> Route | None:
        for route in self.routes:
            if route.method in (method.upper(), "ANY") and route.match(path) is not None:
                return route
        return None

    def start(self) -> str:
        server = _Server((self.host, self.port), _Handler)
        server.gateway = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="sandbox-gateway", daemon=True
        )
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


def describe(routes: list[Route], base_url: str) -> list[str]:
    return [f"{r.method:6} {base_url}{r.path}  -> {r.function}" for r in routes]
