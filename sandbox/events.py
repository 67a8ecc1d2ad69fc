"""The sample events under ``events/``: one or more for every function of template.yaml.

Each file is what AWS hands the function, built on what ``sam local generate-event`` prints for its trigger:

- scheduled functions: ``cloudwatch scheduled-event``, as EventBridge Scheduler's default notification
  (``source`` ``aws.scheduler``, ``detail`` the string ``"{}"``, ``resources`` the schedule's ARN);
- the webhook function: ``apigateway aws-proxy`` (REST proxy, v1.0) for its route, stage ``Prod``, the body
  as API Gateway passes JSON (plain text), signed per Standard Webhooks with the demo library's secret at a
  fixed time (so a file as stored is 5 minutes stale and gets 401: :func:`resign` signs it for now);
- step functions: ``sqs receive-message`` whose record body is the bus event exactly as an EventBridge rule
  puts it on the step's queue (envelope + ``detail``).

Regenerate with ``.venv/bin/python -m sandbox.events`` (``--check`` compares instead of writing); the tests use
the files (``tests/integration/runtime/test_events.py``) and check them against ``sam local generate-event``.
``sam local invoke -e events/...`` needs Docker; in-process, with the sandbox, the same files run as
``Sandbox().start().invoke("BorrowReceivedFunction", load("borrow_received/item-received.json"))``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.reshare.relay import reshare_event, signed_headers

ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = ROOT / "events"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
STACK = "reshare-wms-bridge-local"
SOURCE = "reshare-wms-bridge"  # illbridge.models.events.EVENT_SOURCE
AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # when every sample "happened"
AT_TEXT = AT.strftime("%Y-%m-%dT%H:%M:%SZ")

# One borrowing pair (east borrows from west) and the ids every sample uses; tests substitute live ones.
BORROWER_ID = "9f1c2d3e-0a4b-4c5d-8e6f-7a8b9c0d1e2f"
LENDER_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
HRID = "EAST-1"


def sam_event(*args: str) -> dict[str, Any]:
    """What ``sam local generate-event <args>`` prints (offline; no Docker needed)."""
    sam = Path(sys.executable).with_name("sam")
    answer = subprocess.run(
        [str(sam), "local", "generate-event", *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    return dict(json.loads(answer.stdout))


# --- builders ------------------------------------------------------------------------------------------


def scheduled(function: str) -> dict[str, Any]:
    event = sam_event("cloudwatch", "scheduled-event", "--region", REGION)
    return {
        "version": "0",
        **event,
        "id": str(_uuid(function)),
        "source": "aws.scheduler",
        "time": AT_TEXT,
        "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{STACK}-{function}"],
        "detail": "{}",
    }


def api_proxy(path: str, body: dict[str, Any], secret: str, webhook_id: str) -> dict[str, Any]:
    text = json.dumps(body)
    event = sam_event(
        "apigateway", "aws-proxy", "--method", "POST", "--path", path.lstrip("/"), "--resource", path
    )
    event.update(
        body=text,
        isBase64Encoded=False,
        queryStringParameters=None,
        multiValueQueryStringParameters=None,
        pathParameters=None,
        stageVariables=None,
    )
    headers = signed_headers(secret, text, webhook_id, AT)
    event["headers"] = {**event["headers"], **headers}
    event["multiValueHeaders"] = {**event["multiValueHeaders"], **{k: [v] for k, v in headers.items()}}
    context = event["requestContext"]
    context.update(stage="Prod", path=f"/Prod{path}", requestTimeEpoch=int(AT.timestamp() * 1000))
    context["requestTime"] = AT.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return event


def api_get(path: str, resource: str, query: dict[str, str], parameters: dict[str, str]) -> dict[str, Any]:
    """A staff member's GET of the ops API (on AWS behind the staff's Cognito authorizer)."""
    event = sam_event(
        "apigateway", "aws-proxy", "--method", "GET", "--path", path.lstrip("/"), "--resource", resource
    )
    event.update(
        body=None,
        isBase64Encoded=False,
        path=path,
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in query.items()} or None,
        pathParameters=parameters or None,
        stageVariables=None,
    )
    context = event["requestContext"]
    context.update(
        stage="Prod",
        path=f"/Prod{path}",
        resourcePath=resource,
        httpMethod="GET",
        requestTimeEpoch=int(AT.timestamp() * 1000),
    )
    context["requestTime"] = AT.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return event


def authorizer_request(path: str, resource: str) -> dict[str, Any]:
    """What API Gateway asks the ops routes' REQUEST authorizer (``StaffSignIn``) before a staff member's GET:
    the request's headers (the page's session cookie; a sample holds no real ID token, so it is refused) and the
    stage variables naming the staff app client and the sign-in domain."""
    event = sam_event("apigateway", "request-authorizer")
    api = "abcdef123"
    headers = {
        "Host": f"{api}.execute-api.{REGION}.amazonaws.com",
        "Accept": "text/html",
        "Cookie": "illbridge_staff=sample-not-a-token",
        "User-Agent": "Mozilla/5.0",
    }
    event.update(
        methodArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api}/Prod/GET{path}",
        resource=resource,
        path=path,
        headers=headers,
        queryStringParameters={},
        stageVariables={
            "StaffClientId": "5ra91i9p4trq42m2vnjs0pv06q",
            "StaffSignInDomain": f"illbridge-staff-00000000-0000-0000-0000-000000000000.auth.{REGION}.amazoncognito.com",
        },
    )
    event["requestContext"].update(
        path=f"/Prod{path}", accountId=ACCOUNT, stage="Prod", resourcePath=resource, apiId=api
    )
    return event


def bus_event(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A bus event as an EventBridge rule delivers it to an SQS target (the message body)."""
    return {
        "version": "0",
        "id": str(_uuid(detail_type + json.dumps(detail, sort_keys=True))),
        "detail-type": detail_type,
        "source": SOURCE,
        "account": ACCOUNT,
        "time": AT_TEXT,
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def sqs_batch(queue: str, *bodies: dict[str, Any]) -> dict[str, Any]:
    name = f"{STACK}-{queue}"
    records = []
    for body in bodies:
        text = json.dumps(body)
        # sam pastes --body into its JSON unescaped, so a JSON body is set here (with its MD5, as SQS does)
        [record] = sam_event("sqs", "receive-message", "--region", REGION, "--queue-name", name)["Records"]
        record["body"] = text
        record["md5OfBody"] = hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SQS's checksum
        record["messageId"] = str(_uuid(text))
        record["attributes"]["SentTimestamp"] = str(int(AT.timestamp() * 1000))
        record["attributes"]["ApproximateFirstReceiveTimestamp"] = str(int(AT.timestamp() * 1000) + 1)
        records.append(record)
    return {"Records": records}


def reshare_changed(side: str, state: str, previous: str, **fields: Any) -> dict[str, Any]:
    borrowing = side == "borrowing"
    detail = {
        "library_id": "east" if borrowing else "west",
        "tenant": "east" if borrowing else "west",
        "side": side,
        "request_id": BORROWER_ID if borrowing else LENDER_ID,
        "hrid": HRID,
        "state": state,
        "previous_state": previous,
        "last_updated": AT_TEXT,
        "source": "poller",
        **fields,
    }
    return bus_event("ReShareRequestChanged", detail)


def wms_checked_in(side: str, item_barcode: str) -> dict[str, Any]:
    borrowing = side == "borrowing"
    return bus_event(
        "WmsItemCheckedIn",
        {
            "library_id": "east" if borrowing else "west",
            "registry_id": "128807" if borrowing else "262626",
            "item_barcode": item_barcode,
            "checked_in_at": AT_TEXT,
            "branch": "128807" if borrowing else "262626",
            "side": side,
            "tenant": "east" if borrowing else "west",
            "request_id": BORROWER_ID if borrowing else LENDER_ID,
            "source": "reconciler",
        },
    )


def _uuid(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def _secret(library_id: str) -> str:
    layer = str(ROOT / "layers" / "domain")  # sandbox.demo reads the domain layer's config models
    if layer not in sys.path:
        sys.path.append(layer)
    from sandbox.demo import WEBHOOK_SECRETS

    return WEBHOOK_SECRETS[library_id]


# --- the catalogue: file -> how it is built ------------------------------------------------------------

CATALOG: dict[str, Callable[[], dict[str, Any]]] = {
    "reshare_poller/scheduled.json": lambda: scheduled("ReSharePollerFunction"),
    "wms_reconciler/scheduled.json": lambda: scheduled("WmsReconcilerFunction"),
    "webhook/reshare-status-changed.json": lambda: api_proxy(
        "/webhooks/reshare",
        reshare_event("east", BORROWER_ID, "The Name of the Rose", "REQ_CHECKED_IN", "2026-11-23"),
        _secret("east"),
        "msg_2Kx9sample0reshare0event",
    ),
    "webhook/wms-check-in.json": lambda: api_proxy(
        "/webhooks/wms",
        {"registry_id": "128807", "item_barcode": HRID, "branch": "128807", "checked_in_at": AT_TEXT},
        _secret("east"),
        "msg_2Kx9sample0wms0checkin",
    ),
    "ops_api/attention.json": lambda: api_get("/ops/attention", "/ops/attention", {"library": "east"}, {}),
    "ops_api/request.json": lambda: api_get(
        f"/ops/requests/east/{HRID}",
        "/ops/requests/{library}/{hrid}",
        {},
        {"library": "east", "hrid": HRID},
    ),
    "ops_authorizer/staff-page.json": lambda: authorizer_request("/ops", "/ops"),
    "borrow_received/item-received.json": lambda: sqs_batch(
        "BorrowReceivedQueue", reshare_changed("borrowing", "REQ_CHECKED_IN", "REQ_SHIPPED")
    ),
    "borrow_returned/patron-returned.json": lambda: sqs_batch(
        "BorrowReturnedQueue",
        reshare_changed("borrowing", "REQ_AWAITING_RETURN_SHIPPING", "REQ_CHECKED_IN"),
    ),
    "borrow_returned/wms-checked-in.json": lambda: sqs_batch(
        "BorrowReturnedQueue", wms_checked_in("borrowing", HRID)
    ),
    "lend_shipped/item-shipped.json": lambda: sqs_batch(
        "LendShippedQueue", reshare_changed("lending", "RES_ITEM_SHIPPED", "RES_AWAIT_SHIP")
    ),
    "lend_returned/request-complete.json": lambda: sqs_batch(
        "LendReturnedQueue", reshare_changed("lending", "RES_COMPLETE", "RES_ITEM_SHIPPED")
    ),
    "lend_returned/wms-checked-in.json": lambda: sqs_batch(
        "LendReturnedQueue", wms_checked_in("lending", "WEST-ITEM-0001")
    ),
    "request_closed/cancelled.json": lambda: sqs_batch(
        "RequestClosedQueue", reshare_changed("borrowing", "REQ_CANCELLED", "REQ_REQUEST_SENT_TO_SUPPLIER")
    ),
}


def build_all() -> dict[str, dict[str, Any]]:
    return {name: build() for name, build in CATALOG.items()}


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2) + "\n"


# --- using the samples ---------------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    """A sample event by its path under ``events/`` (e.g. ``"borrow_received/item-received.json"``)."""
    return dict(json.loads((EVENTS_DIR / name).read_text()))


def resign(event: dict[str, Any], secret: str, at: datetime | None = None) -> dict[str, Any]:
    """The API proxy sample signed afresh (now, or ``at``) with ``secret``; the webhook-id is kept."""
    event = copy.deepcopy(event)
    headers = signed_headers(secret, event["body"], event["headers"]["webhook-id"], at)
    event["headers"].update(headers)
    event["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    return event


def with_body(event: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The API proxy sample carrying another JSON body (sign it afterwards with :func:`resign`)."""
    event = copy.deepcopy(event)
    event["body"] = json.dumps(body)
    return event


def with_detail(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The SQS sample with fields of each record's bus-event ``detail`` replaced (e.g. live request ids)."""
    event = copy.deepcopy(event)
    for record in event["Records"]:
        body = json.loads(record["body"])
        body["detail"].update(fields)
        record["body"] = json.dumps(body)
        record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324 - SQS's checksum
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.events", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with events/ instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, event in build_all().items():
        path = EVENTS_DIR / name
        text = render(event)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote events/{name}")
    if stale:
        print("out of date (run python -m sandbox.events): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
