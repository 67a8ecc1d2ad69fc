"""Hostile input never gets a 5xx (issue 12, deliverables 3 and 7).

The fault-injection families of the issue are thrown at both webhooks, through the real function handler
(``sb.invoke`` with an API Gateway proxy event) and through the sandbox's gateway over HTTP: malformed,
missing and oversized ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` headers (most need no valid
signature), and validly signed bodies that are empty, not JSON, nested too deep, not UTF-8, too large or of
the wrong shape. Each gets its documented 4xx (docs/operations.md, "Webhook answers") with a JSON error that
names nothing internal, and nothing changes: the bridge table and every queue are as before. A hypothesis
run then throws arbitrary header values and bodies at both.

Replay protection: ten parallel copies of one signed delivery get one 202 and nine 200 ``duplicate``, per
endpoint; the same webhook-id is new for the other endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from sandbox import events
from sandbox.demo import WEBHOOK_SECRETS
from sandbox.reshare.relay import reshare_event
from sandbox.runtime import Sandbox
from tests.e2e.conftest import create_pair

SECRET = WEBHOOK_SECRETS["east"]
INTERNAL = re.compile(
    r"\b(dynamodb|traceback|botocore|boto3|exception|table|arn|moto|sqs|lambda|127\.0\.0\.1)\b",
    re.IGNORECASE,
)


def sign(
    body: bytes, webhook_id: str | None = None, stamp: int | None = None, secret: str = SECRET
) -> dict[str, str]:
    """Standard Webhooks headers for the body's bytes (they need not be UTF-8)."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time()) if stamp is None else stamp
    key = Webhook(secret)._whsecret
    digest = hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def reshare_body() -> bytes:
    return json.dumps(
        reshare_event("east", "00000000-0000-4000-8000-000000000000", "t", "REQ_CHECKED_IN", None)
    ).encode()


def wms_body() -> bytes:
    return json.dumps({"registry_id": "128807", "item_barcode": "EAST-NOBODY-1"}).encode()


BODIES = {"reshare": reshare_body, "wms": wms_body}


def with_headers(base: dict[str, str], **changes: str | None) -> dict[str, str]:
    headers = dict(base)
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


# (name, expected status, build(endpoint) -> (headers, body bytes))
Case = tuple[str, int, Callable[[str], tuple[dict[str, str], bytes]]]


def _signed(body: bytes) -> tuple[dict[str, str], bytes]:
    return sign(body), body


def _headers(status: int, **changes: str | None) -> Callable[[str], tuple[dict[str, str], bytes]]:
    def build(endpoint: str) -> tuple[dict[str, str], bytes]:
        body = BODIES[endpoint]()
        return with_headers(sign(body), **changes), body

    return build


def _body(raw: bytes) -> Callable[[str], tuple[dict[str, str], bytes]]:
    return lambda endpoint: _signed(raw)


CASES: list[Case] = [
    # headers: missing (401), malformed or oversized (400), signed wrong or stale (401); no secret needed
    ("no webhook-id", 401, _headers(401, webhook_id=None)),
    ("no webhook-timestamp", 401, _headers(401, webhook_timestamp=None)),
    ("no webhook-signature", 401, _headers(401, webhook_signature=None)),
    ("empty webhook-signature", 401, _headers(401, webhook_signature="")),
    ("webhook-id over 2 KB", 400, _headers(400, webhook_id="msg_" + "x" * 2100)),
    ("webhook-id of 257 characters", 400, _headers(400, webhook_id="m" * 257)),
    ("webhook-id with a space", 400, _headers(400, webhook_id="msg 1")),
    ("webhook-id with a control character", 400, _headers(400, webhook_id="msg\x01")),
    ("webhook-id not ASCII", 400, _headers(400, webhook_id="msg_é")),
    ("webhook-timestamp not a number", 400, _headers(400, webhook_timestamp="yesterday")),
    ("webhook-timestamp negative", 400, _headers(400, webhook_timestamp="-1")),
    ("webhook-timestamp a float", 400, _headers(400, webhook_timestamp="1e10")),
    ("webhook-timestamp of 40 digits", 400, _headers(400, webhook_timestamp="9" * 40)),
    ("webhook-timestamp an hour old", 401, _headers(401, webhook_timestamp=str(int(time.time()) - 3600))),
    ("webhook-signature without a comma", 400, _headers(400, webhook_signature="garbage")),
    ("webhook-signature v1 and nothing", 400, _headers(400, webhook_signature="v1,")),
    ("webhook-signature not base64", 400, _headers(400, webhook_signature="v1,!!!not-base64!!!")),
    ("webhook-signature with two commas", 400, _headers(400, webhook_signature="v1,abc,def")),
    ("webhook-signature bad padding", 400, _headers(400, webhook_signature="v1,abc")),
    ("webhook-signature over 1 KB", 400, _headers(400, webhook_signature=" ".join(["v1,AAAA"] * 300))),
    ("webhook-signature of another version", 401, _headers(401, webhook_signature="v2,AAAA")),
    ("webhook-signature well formed but wrong", 401, _headers(401, webhook_signature="v1," + "A" * 43 + "=")),
    # signed bodies
    ("signed empty body", 400, _body(b"")),
    ("signed whitespace body", 400, _body(b"   \n")),
    ("signed body not JSON", 400, _body(b"hello, bridge")),
    ("signed body truncated JSON", 400, _body(b'{"event": "STATUS_')),
    ("signed body nested 100 000 deep", 400, _body(b"[" * 100_000 + b"]" * 100_000)),
    ("signed body nested 40 deep in an object", 400, _body(b'{"a":' * 40 + b"1" + b"}" * 40)),
    ("signed body not UTF-8", 400, _body(b'{"event": "\xff\xfe\xfd"}')),
    ("signed body latin-1", 400, _body('{"tenant": "Bibliothèque"}'.encode("latin-1"))),
    ("signed body over 256 KiB", 413, _body(b'{"pad": "' + b"x" * (300 * 1024) + b'"}')),
    ("signed JSON null", 400, _body(b"null")),
    ("signed JSON array", 400, _body(b"[1, 2, 3]")),
    ("signed JSON string", 400, _body(b'"STATUS_REQ_CHECKED_IN_ind"')),
    ("signed JSON huge number", 400, _body(b"1" * 5000)),
    ("signed object of the wrong shape", 400, _body(b'{"event": 1, "tenant": [], "unknown": true}')),
    ("signed lone surrogate", 400, _body(b'{"tenant": "\\ud800"}')),
    ("signed NaN", 400, _body(b'{"tenant": NaN}')),
]


def proxy_event(endpoint: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The API Gateway proxy event for a POST (base64 when the body is not UTF-8, as API Gateway does)."""
    sample = events.load("webhook/wms-check-in.json")
    path = f"/webhooks/{endpoint}"
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    base = {k: v for k, v in sample["headers"].items() if not k.lower().startswith("webhook-")}
    merged = {**base, **headers}
    sample.update(
        body=text,
        isBase64Encoded=encoded,
        path=path,
        resource=path,
        headers=merged,
        multiValueHeaders={k: [v] for k, v in merged.items()},
    )
    sample["requestContext"].update(path=f"/Prod{path}", resourcePath=path)
    return sample


def via_function(sb: Sandbox, endpoint: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    answer = sb.invoke("WebhookFunction", proxy_event(endpoint, headers, body))
    text = answer["body"]
    if answer.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    return int(answer["statusCode"]), text


def via_gateway(sb: Sandbox, endpoint: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    answer = requests.post(
        f"{sb.urls['gateway']}/webhooks/{endpoint}",
        data=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )
    return answer.status_code, answer.text


def snapshot(sb: Sandbox) -> tuple[int, dict[str, int]]:
    """How many items the bridge table holds, and how many messages every queue holds."""
    assert sb.resources is not None
    dynamodb = sb.boto3_client("dynamodb")
    table = sb.physical_name("BridgeTable")
    items = 0
    params: dict[str, Any] = {"TableName": table, "Select": "COUNT"}
    while True:
        page = dynamodb.scan(**params)
        items += page["Count"]
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    sqs = sb.boto3_client("sqs")
    queues = {}
    for logical_id, queue in sb.resources.queues.items():
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        queues[logical_id] = sum(int(v) for v in attributes.values())
    return items, queues


def assert_clean_refusal(status: int, text: str, expected: int, what: str) -> None:
    assert status == expected, (what, status, text)
    answer = json.loads(text)
    assert isinstance(answer, dict) and answer.get("error") and isinstance(answer.get("message"), str), what
    assert not INTERNAL.search(text), (what, text)


@pytest.mark.parametrize("route", ["function", "gateway"])
@pytest.mark.parametrize("endpoint", ["reshare", "wms"])
def test_every_hostile_delivery_gets_its_documented_4xx_and_changes_nothing(
    sb: Sandbox, endpoint: str, route: str
) -> None:
    send = via_function if route == "function" else via_gateway
    before = snapshot(sb)
    for name, expected, build in CASES:
        headers, body = build(endpoint)
        if route == "gateway" and any(not v.isascii() or not v.isprintable() for v in headers.values()):
            continue  # not sendable as an HTTP header by a client library; the function route covers it
        status, text = send(sb, endpoint, headers, body)
        assert_clean_refusal(status, text, expected, name)
    assert snapshot(sb) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    endpoint=st.sampled_from(["reshare", "wms"]),
    webhook_id=st.one_of(st.none(), st.text(max_size=3000)),
    stamp=st.one_of(st.none(), st.text(max_size=30), st.integers(-(10**20), 10**20).map(str)),
    signature=st.one_of(st.none(), st.text(max_size=2000), st.just("v1,AAAA")),
    body=st.one_of(st.binary(max_size=4000), st.text(max_size=4000).map(str.encode)),
    signed=st.booleans(),
)
def test_arbitrary_headers_and_bodies_never_get_a_5xx(
    sb: Sandbox,
    endpoint: str,
    webhook_id: str | None,
    stamp: str | None,
    signature: str | None,
    body: bytes,
    signed: bool,
) -> None:
    headers = sign(body) if signed else {}
    for name, value in (
        ("webhook-id", webhook_id),
        ("webhook-timestamp", stamp),
        ("webhook-signature", signature),
    ):
        if value is not None and not (signed and value == ""):
            headers[name] = value
    before = snapshot(sb)
    status, text = via_function(sb, endpoint, headers, body)
    assert 400 <= status < 500, (status, text)
    assert_clean_refusal(status, text, status, "arbitrary")
    assert snapshot(sb) == before


def parallel(count: int, call: Callable[[], tuple[int, str]]) -> Counter[tuple[int, str]]:
    start = threading.Barrier(count)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def run() -> None:
        start.wait()
        status, text = call()
        with lock:
            results.append((status, json.loads(text)["status"]))

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return Counter(results)


def test_ten_parallel_copies_of_a_delivery_get_one_202_and_nine_replays_per_endpoint(sb: Sandbox) -> None:
    pair = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0042"}])
    borrower = pair["borrower"]["id"]
    reshare = json.dumps(reshare_event("east", borrower, "t", "REQ_VALIDATED", None)).encode()
    wms = wms_body()
    webhook_id = f"msg_{uuid.uuid4().hex}"
    # When ten copies of one ReShare delivery arrive at once
    headers = sign(reshare, webhook_id)
    outcome = parallel(10, lambda: via_gateway(sb, "reshare", headers, reshare))
    # Then one is taken and nine are replays
    assert outcome == Counter({(202, "accepted"): 1, (200, "duplicate"): 9}), outcome
    # and the same webhook-id is a different delivery at the other endpoint: again exactly one is taken
    headers = sign(wms, webhook_id)
    outcome = parallel(10, lambda: via_gateway(sb, "wms", headers, wms))
    assert outcome == Counter({(202, "ignored"): 1, (200, "duplicate"): 9}), outcome
