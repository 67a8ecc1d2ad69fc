"""The local runtime (``sandbox.runtime``): provisioning from template.yaml, bus routing, gateway, scheduler,
queue pollers with partial failures, dead-letter queues and redrive, and ``python -m sandbox up``.

One sandbox per module on ephemeral ports (port 0 everywhere), so modules run in parallel safely. Handlers are
replaced on their loaded modules where a test needs to control them (``monkeypatch`` puts them back).
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.demo import DEMO_LIBRARIES, WEBHOOK_SECRETS
from sandbox.runtime import HandlerError, LambdaContext, Sandbox
from sandbox.runtime.aws import provision
from sandbox.runtime.cfn import Stack
from sandbox.runtime.scheduler import Scheduler
from sandbox.template import load_template
from tests.integration.runtime.conftest import take_all

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
VISIBILITY = 1

# the keys of `sam local generate-event apigateway aws-proxy` (REST proxy event, version 1.0)
PROXY_EVENT_KEYS = {
    "body",
    "resource",
    "path",
    "httpMethod",
    "isBase64Encoded",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "headers",
    "multiValueHeaders",
    "requestContext",
}
REQUEST_CONTEXT_KEYS = {
    "accountId",
    "resourceId",
    "stage",
    "requestId",
    "requestTime",
    "requestTimeEpoch",
    "identity",
    "path",
    "resourcePath",
    "httpMethod",
    "apiId",
    "protocol",
}
# the keys of `sam local generate-event sqs receive-message` records
SQS_RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


def of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in RESOURCES.items() if v.get("Type") == resource_type}


def default(parameter: str) -> Any:
    return PARAMETERS[parameter]["Default"]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(
        gateway_port=0,
        reshare_port=0,
        wms_port=0,
        moto_port=0,
        tick=None,
        background=False,
        visibility=VISIBILITY,
    )
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def sqs(sb: Sandbox) -> Any:
    return sb.boto3_client("sqs")


def counts(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture
def empty_queues(sb: Sandbox, sqs: Any) -> Iterator[None]:
    """Every queue of the stack empty before and after the test (in-flight messages made visible first)."""

    def purge() -> None:  # PurgeQueue is limited to once a minute per queue (moto too): receive instead
        urls = [info.url for info in sb.resources.queues.values()]  # type: ignore[union-attr]
        urls += list(sb.resources.inboxes.values())  # type: ignore[union-attr]
        urls += [relay.queue_url for relay in sb.resources.relays]  # type: ignore[union-attr]
        deadline = time.monotonic() + VISIBILITY + 3
        while any(counts(sqs, url)[1] for url in urls) and time.monotonic() < deadline:
            time.sleep(0.1)  # in-flight messages come back after the (short) visibility timeout
        for url in urls:
            take_all(sqs, url)

    purge()
    yield
    purge()


# --- provisioning -----------------------------------------------------------------------------------------


def test_the_stack_is_provisioned_as_the_template_says(sb: Sandbox) -> None:
    # Given a second stack provisioned from template.yaml without the visibility override
    stack = Stack(TEMPLATE, stack_name=f"check-{uuid.uuid4().hex[:6]}", sqs_endpoint=sb.urls["moto"])
    # When it is provisioned in the sandbox's moto
    provisioned = provision(stack, sb.urls["moto"], visibility=None)
    relays = {relay.queue_arn: relay.topic_arn for relay in provisioned.relays}
    name = stack.physical_name
    ddb, sqs, events, sns = (sb.boto3_client(s) for s in ("dynamodb", "sqs", "events", "sns"))

    # Then every table has the template's keys, indexes and TTL
    for logical_id, resource in of_type("AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        table = ddb.describe_table(TableName=name(logical_id))["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
            props["AttributeDefinitions"], key=lambda a: a["AttributeName"]
        )
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == {
            i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])
        }
        ttl = ddb.describe_time_to_live(TableName=name(logical_id))["TimeToLiveDescription"]
        assert ttl.get("AttributeName") == props["TimeToLiveSpecification"]["AttributeName"]
    # and every queue has the template's attributes, its dead-letter queue and maxReceiveCount
    for logical_id, resource in of_type("AWS::SQS::Queue").items():
        props = resource["Properties"]
        url = sqs.get_queue_url(QueueName=name(logical_id))["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["VisibilityTimeout"] == str(props.get("VisibilityTimeout", 30))
        assert attributes["MessageRetentionPeriod"] == str(props["MessageRetentionPeriod"])
        if "RedrivePolicy" in props:
            policy = json.loads(attributes["RedrivePolicy"])
            dead_letter = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            dlq_url = sqs.get_queue_url(QueueName=name(dead_letter))["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
            assert policy["deadLetterTargetArn"] == dlq_arn["QueueArn"]
            assert int(policy["maxReceiveCount"]) == int(
                default(props["RedrivePolicy"]["maxReceiveCount"]["Ref"])
            )
        else:
            assert "RedrivePolicy" not in attributes
    # and the bus, every rule with its pattern and targets (retry policy, dead-letter queue), the topic
    [bus] = of_type("AWS::Events::EventBus")
    bus_name = f"{stack.stack_name}-bus"
    assert events.describe_event_bus(Name=bus_name)["Name"] == name(bus) == bus_name
    for logical_id, resource in of_type("AWS::Events::Rule").items():
        props = resource["Properties"]
        rule = events.describe_rule(Name=name(logical_id), EventBusName=bus_name)
        assert json.loads(rule["EventPattern"]) == props["EventPattern"]
        targets = events.list_targets_by_rule(Rule=name(logical_id), EventBusName=bus_name)["Targets"]
        assert [t["Id"] for t in targets] == [t["Id"] for t in props["Targets"]]
        for target, expected in zip(targets, props["Targets"], strict=True):
            kind, target_id = next(iter(expected["Arn"].items()))
            target_id = target_id[0] if kind == "Fn::GetAtt" else target_id
            if RESOURCES[target_id]["Type"] == "AWS::SQS::Queue":
                assert target["Arn"] == f"arn:aws:sqs:eu-west-1:123456789012:{name(target_id)}"
            else:  # moto cannot deliver to SNS: the sandbox's relay queue stands in for the topic
                assert "-sandbox-" in target["Arn"]
                assert relays[target["Arn"]] == f"arn:aws:sns:eu-west-1:123456789012:{name(target_id)}"
            assert target["RetryPolicy"] == expected["RetryPolicy"]
            assert target["DeadLetterConfig"]["Arn"].endswith(":" + name("EventDeliveryDeadLetterQueue"))
    topics = {t["TopicArn"] for t in sns.list_topics()["Topics"]}
    for logical_id in of_type("AWS::SNS::Topic"):
        assert f"arn:aws:sns:eu-west-1:123456789012:{name(logical_id)}" in topics


def test_the_sandbox_stack_uses_physical_names_and_the_short_visibility(sb: Sandbox, sqs: Any) -> None:
    # Given the sandbox's own stack, When its queues and environment are read
    for logical_id in of_type("AWS::SQS::Queue"):
        url = sb.queue_url(logical_id)
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "QueueArn"])
        # Then names are <stack>-<LogicalId> and every VisibilityTimeout is the override
        assert url.endswith(f"/reshare-wms-bridge-local-{logical_id}")
        assert attributes["Attributes"]["VisibilityTimeout"] == str(VISIBILITY)
    # and the functions' environment names the physical resources and points boto3 at moto
    assert sb.env["TABLE_NAME"] == sb.physical_name("BridgeTable") == "reshare-wms-bridge-local-BridgeTable"
    assert "IDEMPOTENCY_TABLE_NAME" not in sb.env  # no idempotency table: the step claim stops a duplicate
    assert sb.env["EVENT_BUS_NAME"] == "reshare-wms-bridge-local-bus"
    assert sb.env["ATTENTION_TOPIC_ARN"].endswith(":reshare-wms-bridge-local-AttentionTopic")
    assert sb.env["CONFIG_PREFIX"] == f"/{default('ConfigName')}"
    assert sb.env["AWS_ENDPOINT_URL"] == sb.urls["moto"] == os.environ["AWS_ENDPOINT_URL"]
    assert sb.env["AWS_REGION"] == "eu-west-1"


def test_the_demo_libraries_are_configured_where_the_functions_read_them(sb: Sandbox) -> None:
    # Given the sandbox started with its demo, When the configuration is read from SSM and Secrets Manager
    ssm, secrets = sb.boto3_client("ssm"), sb.boto3_client("secretsmanager")
    prefix = sb.env["CONFIG_PREFIX"]
    ids = json.loads(ssm.get_parameter(Name=f"{prefix}/libraries")["Parameter"]["Value"])
    east = json.loads(ssm.get_parameter(Name=f"{prefix}/libraries/east")["Parameter"]["Value"])
    secret = json.loads(
        secrets.get_secret_value(SecretId=f"{prefix.strip('/')}/libraries/east")["SecretString"]
    )
    webhook = json.loads(
        secrets.get_secret_value(SecretId=f"{prefix.strip('/')}/webhooks/east")["SecretString"]
    )
    # Then both libraries are there, pointing at the simulators, with their maps and secrets
    assert ids == ["east", "west"] == list(DEMO_LIBRARIES)
    assert east["reshare"] == {
        "base_url": sb.urls["reshare"],
        "tenant": "east",
        "username": "bridge",
        "symbol": "RESHARE:EAST",
    }
    assert east["wms"]["ncip_url"] == f"{sb.urls['wms']}/ncip"
    assert east["wms"]["oauth_url"] == f"{sb.urls['wms']}/oauth/token"
    assert east["wms"]["scim_url"] == f"{sb.urls['wms']}/idaas/scim/v2/Users/.search"
    assert east["pickup_branches"] == {"east-main": "128807", "east-science": "262630"}
    assert east["partner_agency_ids"] == {"RESHARE:WEST": "262626"}
    assert secret == {"wskey_secret": "east-secret", "reshare_password": "east-password"}
    # and the webhook's own secret: its signing secrets and the ReShare password, no WSKey secret
    assert webhook == {"webhook_secrets": [WEBHOOK_SECRETS["east"]], "reshare_password": "east-password"}
    west = sb.libraries["west"]
    assert (west.wms.registry_id, west.wms.wskey, west.partner_accounts) == (
        "262626",
        "west-wskey",
        {"RESHARE:EAST": "ILL-EAST"},
    )
    assert WEBHOOK_SECRETS["east"].startswith("whsec_") and WEBHOOK_SECRETS["east"] != WEBHOOK_SECRETS["west"]


# --- the bus ----------------------------------------------------------------------------------------------


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge matching for literal-list patterns (what template.yaml uses); anything else is refused."""
    for key, allowed in pattern.items():
        value = event.get(key)
        if isinstance(allowed, dict):
            if not isinstance(value, dict) or not matches(allowed, value):
                return False
        elif isinstance(allowed, list) and all(isinstance(a, str | int | float | bool) for a in allowed):
            if value not in allowed:
                return False
        else:
            raise NotImplementedError(f"pattern {key}: {allowed!r} needs a richer matcher in this test")
    return True


def example(pattern: dict[str, Any]) -> dict[str, Any]:
    return {k: example(v) if isinstance(v, dict) else v[0] for k, v in pattern.items()}


def leaves(pattern: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, value in pattern.items():
        out += leaves(value, (*path, key)) if isinstance(value, dict) else [(*path, key)]
    return out


def changed(event: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    copy = json.loads(json.dumps(event))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = f"NOT-{node[path[-1]]}"
    return copy


def expected_queues(event: dict[str, Any]) -> dict[str, int]:
    """Template queue logical id -> how many copies the template's rules deliver for this event."""
    expected: dict[str, int] = {}
    for resource in of_type("AWS::Events::Rule").values():
        props = resource["Properties"]
        if not matches(props["EventPattern"], event):
            continue
        for target in props["Targets"]:
            if "Fn::GetAtt" in target["Arn"]:
                queue = target["Arn"]["Fn::GetAtt"][0]
                expected[queue] = expected.get(queue, 0) + 1
    return expected


def bus_cases() -> list[tuple[str, str, dict[str, Any]]]:
    cases = []
    for logical_id, resource in of_type("AWS::Events::Rule").items():
        pattern = resource["Properties"]["EventPattern"]
        event = example(pattern)
        cases.append((logical_id, "matching", event))
        for path in leaves(pattern):
            cases.append((logical_id, f"not-{'.'.join(path)}", changed(event, path)))
    return cases


@pytest.mark.usefixtures("empty_queues")
@pytest.mark.parametrize(
    ("rule", "variant", "event"), bus_cases(), ids=[f"{c[0]}-{c[1]}" for c in bus_cases()]
)
def test_an_event_reaches_exactly_the_matching_step_queues(
    sb: Sandbox, sqs: Any, rule: str, variant: str, event: dict[str, Any]
) -> None:
    # Given an event built from the rule's pattern (or with one field changed so that it does not match)
    expected = expected_queues(event)
    if variant == "matching":
        assert matches(RESOURCES[rule]["Properties"]["EventPattern"], event)
    # When it is put on the bridge's bus
    answer = sb.boto3_client("events").put_events(
        Entries=[
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event.get("detail", {})),
                "EventBusName": sb.env["EVENT_BUS_NAME"],
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0
    # Then exactly the queues of the matching rules got it (as an EventBridge envelope), and no other queue
    got = {}
    for logical_id in of_type("AWS::SQS::Queue"):
        messages = take_all(sqs, sb.queue_url(logical_id))
        if messages:
            got[logical_id] = len(messages)
            for message in messages:
                body = json.loads(message["Body"])
                assert (body["source"], body["detail-type"], body["detail"]) == (
                    event["source"],
                    event["detail-type"],
                    event["detail"],
                )
    assert got == expected
    # and no bus event reaches staff's topic: the functions publish each new attention item themselves, once
    # (illbridge/announce.py), so an AttentionRaised on the bus is not mailed a second time
    sb.pump_sns()
    assert take_all(sqs, sb.resources.inboxes["AttentionTopic"]) == []  # type: ignore[union-attr]


# --- functions and the gateway ----------------------------------------------------------------------------


def test_invoke_passes_a_lambda_context_and_reports_handler_errors(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a handler that answers with what it was given, then one that raises
    seen: list[LambdaContext] = []

    def echo(event: Any, context: LambdaContext) -> Any:
        seen.append(context)
        return {"event": event, "remaining": context.get_remaining_time_in_millis()}

    module = sb.function("RequestClosedFunction").module
    monkeypatch.setattr(module, "handler", echo)
    # When it is invoked
    result = sb.invoke("RequestClosedFunction", {"hello": "world"})
    # Then it got the event and a context like Lambda's
    assert result["event"] == {"hello": "world"}
    assert 0 < result["remaining"] <= 60_000
    [context] = seen
    assert context.function_name == "reshare-wms-bridge-local-RequestClosedFunction"
    assert context.invoked_function_arn.endswith(":function:reshare-wms-bridge-local-RequestClosedFunction")
    assert (context.function_version, context.memory_limit_in_mb) == ("$LATEST", "256")
    assert context.log_group_name == "/aws/lambda/reshare-wms-bridge-local-RequestClosedFunction"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", context.log_stream_name)
    uuid.UUID(context.aws_request_id)

    # When the handler raises, Then the caller gets a HandlerError naming it, and the runtime goes on
    def boom(event: Any, context: Any) -> Any:
        raise ValueError("broken on purpose")

    monkeypatch.setattr(module, "handler", boom)
    with pytest.raises(HandlerError) as failure:
        sb.invoke("RequestClosedFunction", {})
    assert (failure.value.error_type, failure.value.error_message) == ("ValueError", "broken on purpose")
    monkeypatch.setattr(module, "handler", echo)
    assert sb.invoke("RequestClosedFunction", 1)["event"] == 1


def test_the_gateway_routes_a_webhook_to_its_function_as_a_proxy_event(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the WebhookFunction's handler replaced by one that records its event
    events: list[dict[str, Any]] = []

    def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        return {
            "statusCode": 202,
            "headers": {"Content-Type": "application/json", "X-Seen": "yes"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": json.dumps({"accepted": True}),
            "isBase64Encoded": False,
        }

    monkeypatch.setattr(sb.function("WebhookFunction").module, "handler", record)
    body = json.dumps({"event": "STATUS_REQ_CHECKED_IN_ind", "tenant": "east"})
    # When a client POSTs to /webhooks/reshare
    answer = requests.post(
        f"{sb.urls['gateway']}/webhooks/reshare?x=1&x=2&y=",
        data=body,
        headers={"Content-Type": "application/json", "webhook-id": "msg_1"},
        timeout=10,
    )
    # Then the handler's answer is the HTTP response
    assert answer.status_code == 202
    assert answer.json() == {"accepted": True}
    assert answer.headers["X-Seen"] == "yes"
    assert answer.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert answer.headers["x-amzn-RequestId"]
    # and the handler got a REST proxy event of the shape sam local generate-event gives
    [event] = events
    assert set(event) == PROXY_EVENT_KEYS
    assert set(event["requestContext"]) >= REQUEST_CONTEXT_KEYS
    assert (event["resource"], event["path"], event["httpMethod"]) == (
        "/webhooks/reshare",
        "/webhooks/reshare",
        "POST",
    )
    assert (event["body"], event["isBase64Encoded"]) == (body, False)
    assert event["headers"]["webhook-id"] == "msg_1"
    assert event["multiValueHeaders"]["webhook-id"] == ["msg_1"]
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["pathParameters"] is None
    context = event["requestContext"]
    assert (context["resourcePath"], context["httpMethod"], context["stage"]) == (
        "/webhooks/reshare",
        "POST",
        "Prod",
    )
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["accountId"] == "123456789012"


def test_the_gateway_answers_like_api_gateway_for_unknown_routes_big_bodies_and_failures(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = sb.urls["gateway"]
    # Given no route for a path or a method, When it is called, Then 403 Missing Authentication Token
    for method, path in (("POST", "/webhooks/nothing"), ("GET", "/webhooks/reshare"), ("POST", "/")):
        answer = requests.request(method, f"{gateway}{path}", timeout=10)
        assert answer.status_code == 403, (method, path)
        assert answer.json() == {"message": "Missing Authentication Token"}
    # Given a body over 10 MiB, When it is announced, Then 413 without the function being called
    host, port = gateway.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/webhooks/reshare")
    connection.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()
    # Given a handler that raises, or answers something that is not a proxy response, Then 502
    module = sb.function("WebhookFunction").module
    for handler in (lambda e, c: 1 / 0, lambda e, c: "not a response"):
        monkeypatch.setattr(module, "handler", handler)
        answer = requests.post(f"{gateway}/webhooks/wms", data="{}", timeout=10)
        assert answer.status_code == 502
        assert answer.json() == {"message": "Internal server error"}


def test_the_real_webhook_function_refuses_an_unsigned_delivery(sb: Sandbox) -> None:
    # Given the template's own WebhookFunction behind the gateway
    # When a delivery without Standard Webhooks signature headers arrives, Then 401 (docs/operations.md#webhook-answers)
    answer = requests.post(
        f"{sb.urls['gateway']}/webhooks/reshare",
        data=json.dumps({"event": "STATUS_REQ_CHECKED_IN_ind"}),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 401, answer.text


# --- schedules --------------------------------------------------------------------------------------------


def test_the_scheduler_fires_on_its_tick_with_the_event_scheduler_delivers(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the poller's handler recording its events, and a scheduler ticking every 0.2 s
    fired: list[tuple[float, dict[str, Any]]] = []
    monkeypatch.setattr(
        sb.function("ReSharePollerFunction").module,
        "handler",
        lambda e, c: fired.append((time.monotonic(), e)),
    )
    monkeypatch.setattr(sb.function("WmsReconcilerFunction").module, "handler", lambda e, c: None)
    assert sb.scheduler is not None
    scheduler = Scheduler(
        sb.scheduler.schedules, sb.functions, sb.stack, sb.boto3_client("sqs"), {}, tick=0.2
    )  # type: ignore[arg-type]
    # When it runs for a while
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while len(fired) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    # Then the function fired again and again, never sooner than a tick after the last run (how much later depends
    # on the machine's load: no upper bound here), each time with EventBridge Scheduler's default notification
    assert len(fired) >= 3
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(fired)]
    assert all(gap > 0.1 for gap in gaps), gaps
    event = fired[0][1]
    assert event["source"] == "aws.scheduler"
    assert event["detail-type"] == "Scheduled Event"
    assert event["detail"] == "{}"
    assert event["account"] == "123456789012" and event["region"] == "eu-west-1"
    assert re.fullmatch(
        r"arn:aws:scheduler:eu-west-1:123456789012:schedule/default/.+", event["resources"][0]
    )
    assert len({e["id"] for _, e in fired}) == len(fired)


@pytest.mark.usefixtures("empty_queues")
def test_a_failing_schedule_is_retried_then_dead_lettered(
    sb: Sandbox, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a poller that always fails
    calls: list[str] = []

    def fail(event: dict[str, Any], context: Any) -> None:
        calls.append(event["id"])
        raise RuntimeError("ReShare is down")

    monkeypatch.setattr(sb.function("ReSharePollerFunction").module, "handler", fail)
    invoke_config = RESOURCES["ReSharePollerFunction"]["Properties"]["EventInvokeConfig"]
    assert invoke_config["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    # When its schedule fires (Scheduler invokes asynchronously: the handler error is Lambda's to retry)
    run = sb.run_schedule("ReSharePollerFunction")
    # Then it was tried 1 + EventInvokeConfig.MaximumRetryAttempts times with the same event...
    assert not run.ok and run.dead_lettered
    assert len(calls) == run.attempts == 1 + invoke_config["MaximumRetryAttempts"]
    assert len(set(calls)) == 1
    # ...then Lambda's invocation record went to the OnFailure destination, the schedule's DLQ
    [message] = take_all(sqs, sb.queue_url("ScheduleDeadLetterQueue"))
    record = json.loads(message["Body"])
    assert record == run.record
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
    context = record["requestContext"]
    assert uuid.UUID(context["requestId"])
    assert context["functionArn"] == (
        "arn:aws:lambda:eu-west-1:123456789012:function:reshare-wms-bridge-local-ReSharePollerFunction:$LATEST"
    )
    assert context["condition"] == "RetriesExhausted"
    assert context["approximateInvokeCount"] == run.attempts
    assert record["requestPayload"]["id"] == calls[0]
    assert record["requestPayload"]["source"] == "aws.scheduler"
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "ReShare is down"
    assert record["responsePayload"]["stackTrace"]
    # (no Scheduler dead-letter attributes: the schedule delivered its invocation)
    assert not message.get("MessageAttributes")


# --- queues -----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("empty_queues")
def test_partial_batch_failures_delete_only_the_successes(
    sb: Sandbox, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a step whose handler fails the records whose body says "fail"
    batches: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        batches.append(event)
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "fail"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    monkeypatch.setattr(sb.function("LendShippedFunction").module, "handler", handler)
    url = sb.queue_url("LendShippedQueue")
    for body in ("ok-1", "fail", "ok-2"):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": body}},
        )
    # When the queue is drained once (not waiting for in-flight messages)
    processed = sb.drain()
    # Then one batch with all three records, shaped as Lambda's SQS event, was given to the function
    assert processed == 3
    [event] = batches
    records = event["Records"]
    assert sorted(r["body"] for r in records) == ["fail", "ok-1", "ok-2"]
    for record in records:
        assert set(record) >= SQS_RECORD_KEYS
        assert record["eventSource"] == "aws:sqs"
        assert (
            record["eventSourceARN"]
            == f"arn:aws:sqs:eu-west-1:123456789012:{sb.physical_name('LendShippedQueue')}"
        )
        assert record["awsRegion"] == "eu-west-1"
        assert set(record["attributes"]) == {
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        }
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324
        assert record["messageAttributes"]["kind"]["stringValue"] == record["body"]
        assert record["messageAttributes"]["kind"]["dataType"] == "String"
    # and only the failed record is left, in flight until its visibility timeout
    assert counts(sqs, url) == (0, 1)
    # When its visibility timeout has passed, Then it comes back alone (second receive) and fails again
    time.sleep(VISIBILITY + 0.5)
    assert sb.drain() == 1
    assert [(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in batches[-1]["Records"]] == [
        ("fail", "2")
    ]


@pytest.mark.usefixtures("empty_queues")
def test_a_handler_exception_fails_the_whole_batch(
    sb: Sandbox, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a step whose handler raises on its first batch only
    batches: list[list[str]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        batches.append(sorted(r["attributes"]["ApproximateReceiveCount"] for r in event["Records"]))
        if len(batches) == 1:
            raise RuntimeError("WMS timed out")
        return {"batchItemFailures": []}

    monkeypatch.setattr(sb.function("LendReturnedFunction").module, "handler", handler)
    url = sb.queue_url("LendReturnedQueue")
    for n in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    # When the queue is drained, waiting for messages in flight
    processed = sb.drain(wait_invisible=True)
    # Then both messages failed together and came back together, and are now done
    assert processed == 4
    assert batches == [["1", "1"], ["2", "2"]]
    assert counts(sqs, url) == (0, 0)


@pytest.mark.usefixtures("empty_queues")
def test_a_record_that_keeps_failing_lands_in_its_dlq_and_a_redrive_delivers_it_again(
    sb: Sandbox, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a step that reports every record as failed
    receives: list[tuple[str, str]] = []
    healthy = False

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in event["Records"]:
            receives.append((record["body"], record["attributes"]["ApproximateReceiveCount"]))
        if healthy:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    monkeypatch.setattr(sb.function("BorrowReceivedFunction").module, "handler", handler)
    max_receives = int(default("MaxReceives"))
    queue, dead = sb.queue_url("BorrowReceivedQueue"), sb.queue_url("BorrowReceivedDeadLetterQueue")
    sqs.send_message(QueueUrl=queue, MessageBody="poison")
    # When the runtime drains, waiting out each visibility timeout
    processed = sb.drain(wait_invisible=True)
    # Then the function got it maxReceiveCount times, and SQS (moto) moved it to the dead-letter queue
    assert processed == max_receives
    assert receives == [("poison", str(n)) for n in range(1, max_receives + 1)]
    assert counts(sqs, queue) == (0, 0)
    assert counts(sqs, dead) == (1, 0)

    # When the step is healthy again and the dead-letter queue is redriven
    healthy = True
    moved = sb.redrive("BorrowReceivedDeadLetterQueue")
    processed = sb.drain(wait_invisible=True)
    # Then the message is delivered once more, succeeds, and both queues are empty
    assert moved == 1 and processed == 1
    assert receives[-1][0] == "poison"
    assert counts(sqs, queue) == (0, 0)
    assert counts(sqs, dead) == (0, 0)


@pytest.mark.usefixtures("empty_queues")
def test_maximum_concurrency_caps_concurrent_invocations(
    sb: Sandbox, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a slow step handler that counts how many of its invocations overlap
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}
    bodies: set[str] = set()  # SQS is at-least-once: a slow batch may come back once, so count distinct ones

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        time.sleep(0.3)
        with lock:
            state["active"] -= 1
            bodies.update(record["body"] for record in event["Records"])
        return {"batchItemFailures": []}

    monkeypatch.setattr(sb.function("BorrowReturnedFunction").module, "handler", handler)
    [poller] = [p for p in sb.pollers.values() if p.source.function == "BorrowReturnedFunction"]
    limit = int(default("StepConcurrency"))
    assert poller.source.max_concurrency == limit
    url = sb.queue_url("BorrowReturnedQueue")
    for start in range(0, 30, 10):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"m{n}"} for n in range(start, start + 10)]
        )
    # When its event source mapping polls in the background
    poller.start()
    try:
        deadline = time.monotonic() + 30
        while len(bodies) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        poller.stop()
    # Then every message was processed with at most MaximumConcurrency invocations at once
    assert bodies == {f"m{n}" for n in range(30)}
    assert 1 <= state["peak"] <= limit
    assert counts(sqs, url) == (0, 0)


# --- the command line -------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


@pytest.mark.timeout(300)
def test_python_m_sandbox_up_starts_and_stops_cleanly_on_sigint() -> None:
    # Given `python -m sandbox up` on free ports, with a fast tick
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "up", "--ports-auto", "--tick", "1", "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # When it comes up, Then the banner is printed with every URL and the demo libraries (the bound only
        # stops a hung start from hanging the suite; how fast it starts is not a test's business)
        assert ready.wait(180), "".join(lines)[-3000:]
        output = "".join(lines)
        urls = dict(
            re.findall(r"^\s+(ReShare|WMS)\s.*?(http://127\.0\.0\.1:\d+)", output, re.M)
            + re.findall(r"^(Embedded AWS) \(moto\)\s+(http://127\.0\.0\.1:\d+)", output, re.M)
        )
        gateway = re.search(r"POST\s+(http://127\.0\.0\.1:\d+)/webhooks/reshare", output)
        assert gateway and set(urls) == {"ReShare", "WMS", "Embedded AWS"}, output
        for library_id, secret in WEBHOOK_SECRETS.items():
            assert library_id in output and secret in output
        assert "/_sim/requests" in output
        # and it serves: the gateway answers like API Gateway, the simulators answer
        assert requests.get(f"{gateway.group(1)}/nowhere", timeout=10).status_code == 403
        assert requests.get(f"{urls['ReShare']}/_sim/tenants", timeout=10).status_code == 200
        # a delivery to the webhook with a bad signature gets 401 and a JSON reason
        forged = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,AAAA",
        }
        bad = requests.post(f"{gateway.group(1)}/webhooks/reshare", data="{}", headers=forged, timeout=10)
        assert (bad.status_code, bad.json()["error"]) == (401, "unauthorized")
        # and the ReShare simulator relays state changes, signed, to the webhook, which takes them
        assert "ReShare relay: state changes of east, west" in output
        requests.post(
            f"{urls['ReShare']}/_sim/requests",
            json={"title": "Relayed", "patron_barcode": "EAST-P-0001", "pickup_location_slug": "east-main"},
            timeout=10,
        ).raise_for_status()
        assert requests.post(f"{urls['ReShare']}/_sim/relay/wait", timeout=40).json()["idle"] is True
        deliveries = requests.get(f"{urls['ReShare']}/_sim/relay", timeout=10).json()["deliveries"]
        assert deliveries and all(d["statuses"][-1] in (200, 202) for d in deliveries), deliveries
        assert _children(process.pid) == []
        # When it gets SIGINT (Ctrl-C)
        time.sleep(1.5)  # let a scheduled run happen
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    # Then it exits 0, and every port it listened on is free again
    assert code == 0, "".join(lines)[-3000:]
    assert "sandbox stopped" in "".join(lines)
    for url in [*urls.values(), gateway.group(1)]:
        port = int(url.rsplit(":", 1)[1])
        with socket.socket() as probe:  # as a restarted server binds (connections may be in TIME_WAIT)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
