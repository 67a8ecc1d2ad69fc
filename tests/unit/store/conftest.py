"""Fixtures of the store's tests: moto tables built from template.yaml, an injectable clock, and a
linearizable moto server for the concurrency tests.

Why a separate server for concurrency: moto's DynamoDB backend evaluates a ConditionExpression and then
applies the write as two plain Python steps, with no lock (moto/dynamodb/models/__init__.py
``update_item``, ``models/table.py`` ``Table.put_item``, and ``transact_write_items``, which even rolls back
by restoring a deep copy of the whole table). Under ``mock_aws`` the caller's thread runs that code, so
threads can interleave between check and write: two conditional writers can both "win". The
``ThreadedMotoServer`` has the same problem (a thread per request; its lock only guards app dispatch).
Real DynamoDB applies each request atomically. ``serial_moto_endpoint`` restores that property by
serving moto with a single-threaded WSGI server: requests from racing client threads are handled one at
a time, whole, in arrival order. Nothing in the store or the tests locks; the winner is decided by
the conditional write as DynamoDB would decide it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import boto3
import pytest
from moto import mock_aws
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from illbridge.store import BridgeStore
from sandbox.template import create_dynamodb_tables, load_template

REGION = "eu-west-1"
BRIDGE_TABLE = "bridge-test"
TABLE_NAMES = {"BridgeTable": BRIDGE_TABLE}
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and the region; nothing from the developer's own AWS setup leaks in."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[object]:
    """An in-process moto DynamoDB with the template's tables (for everything but thread races)."""
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name=REGION)
        create_dynamodb_tables(resource.meta.client, load_template(), TABLE_NAMES)
        yield resource


@pytest.fixture
def table(dynamodb: object) -> object:
    """The raw bridge table, to look at items as stored."""
    return dynamodb.Table(BRIDGE_TABLE)  # type: ignore[attr-defined]


@pytest.fixture
def store(dynamodb: object, clock: FakeClock) -> BridgeStore:
    return BridgeStore(BRIDGE_TABLE, dynamodb_resource=dynamodb, clock=clock)  # type: ignore[arg-type]


class _OneRequestPerConnection(MotoRequestHandler):
    # HTTP/1.0: the connection closes after each answer, so the single-threaded server never sits on an
    # idle keep-alive connection while other clients wait. Set on this class (werkzeug switches handler
    # classes without their own protocol_version to HTTP/1.1 when a threaded server is made).
    protocol_version = "HTTP/1.0"

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@pytest.fixture(scope="module")
def serial_moto_endpoint() -> Iterator[str]:
    """moto in server mode behind a single-threaded WSGI server: each request is applied atomically."""
    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=False,
        request_handler=_OneRequestPerConnection,
    )
    thread = threading.Thread(target=server.serve_forever, name="moto-serial", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def concurrent_stores(
    serial_moto_endpoint: str, aws_env: None, clock: FakeClock
) -> Iterator[Callable[[int], list[BridgeStore]]]:
    """``make(n)``: n stores on fresh template tables of the serial server, each with its own boto3
    session and resource (boto3 resources are not shared between threads)."""
    suffix = uuid4().hex[:10]
    names = {"BridgeTable": f"bridge-{suffix}"}

    def resource() -> object:
        return boto3.session.Session().resource(
            "dynamodb", region_name=REGION, endpoint_url=serial_moto_endpoint
        )

    admin = resource().meta.client  # type: ignore[attr-defined]
    create_dynamodb_tables(admin, load_template(), names)

    def make(count: int) -> list[BridgeStore]:
        return [
            BridgeStore(names["BridgeTable"], dynamodb_resource=resource(), clock=clock)  # type: ignore[arg-type]
            for _ in range(count)
        ]

    yield make
    for name in names.values():
        admin.delete_table(TableName=name)
