"""Embedded AWS: a moto server on loopback, and the template's resources created in it.

Provisioning reads the template (never a list of its own): every DynamoDB table (through
:mod:`sandbox.template`), event bus, SNS topic, SQS queue (with its RedrivePolicy and other attributes), queue
policy, and ``AWS::Events::Rule`` with its EventPattern and targets (RetryPolicy and DeadLetterConfig kept).
Other resource types (alarms, topic policies, the layer, the functions themselves) have nothing to create.

What moto does not do, the sandbox adds, and says so in its names (``-sandbox-``):
- moto's EventBridge delivers to SQS targets (and log groups, buses, archives); a rule with an SNS target makes
  moto fail the whole ``PutEvents`` call (HTTP 500, ``NotImplementedError`` in ``Rule.send_to_targets``). So
  such a target is put on the rule (same Id, RetryPolicy and DeadLetterConfig) with a sandbox relay queue as
  its Arn; the runtime publishes what arrives there to the topic (:func:`pump_relays`).
- Every SNS topic gets an "inbox" queue subscribed to it, so what staff would get by mail can be read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from botocore.config import Config

from sandbox.template import create_dynamodb_tables, dynamodb_tables

from .cfn import Stack

log = logging.getLogger("sandbox.runtime")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
SANDBOX_MARK = "-sandbox-"
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)
_JSON_QUEUE_ATTRIBUTES = ("RedrivePolicy", "RedriveAllowPolicy")


class AtomicDynamoDB:
    """WSGI middleware: moto serves one DynamoDB request at a time, whole; every other service stays concurrent.

    Real DynamoDB applies each request atomically, so of racing conditional writes exactly one wins. moto's
    backend checks a ConditionExpression and then writes as two plain Python steps with no lock
    (moto/dynamodb/models/__init__.py ``update_item``, models/table.py ``Table.put_item``,
    ``transact_write_items``), and a threaded server runs racing requests interleaved, so two conditional
    writers could both "win" in the sandbox and never in AWS. Serialising DynamoDB requests (recognised by
    their ``X-Amz-Target: DynamoDB_20120810.*`` header) restores DynamoDB's guarantee; SQS long polls and the
    rest are not held up.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            with self.lock:
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class MotoServer:
    """moto in server mode on loopback (port 0 = any free port), DynamoDB atomic; stop() frees the port."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        # werkzeug logs every request at INFO on its own handler unless its logger already has a level
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        from . import motofix

        motofix.install()  # TransactWriteItems without a deep copy of the whole table (motofix's docstring)
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Empty every moto backend (they are process-wide)."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server.shutdown()
        finally:
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
                self._thread = None


def client(service: str, endpoint: str, region: str) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]  # any service name; the stubs overload each literal
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        config=Config(
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=50,
        ),
    )


@dataclass
class QueueInfo:
    logical_id: str
    name: str
    url: str
    arn: str
    attributes: dict[str, str]  # as set


@dataclass
class Relay:
    """A rule target moto cannot deliver to (SNS): the rule delivers to this queue, the runtime publishes."""

    rule: str  # logical id of the template's rule
    queue_url: str
    queue_arn: str
    topic_arn: str


@dataclass
class Provisioned:
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    buses: dict[str, str] = field(default_factory=dict)  # logical id -> bus name
    topics: dict[str, str] = field(default_factory=dict)  # logical id -> topic ARN
    queues: dict[str, QueueInfo] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # logical id -> {name, bus, pattern, targets}
    relays: list[Relay] = field(default_factory=list)
    inboxes: dict[str, str] = field(default_factory=dict)  # topic logical id -> inbox queue URL
    seconds: float = 0.0


_USER_POOL_PROPERTIES = (
    "AdminCreateUserConfig",
    "UsernameAttributes",
    "AutoVerifiedAttributes",
    "MfaConfiguration",
    "Policies",
)
_USER_POOL_CLIENT_PROPERTIES = (
    "ClientName",
    "GenerateSecret",
    "ExplicitAuthFlows",
    "PreventUserExistenceErrors",
    "AllowedOAuthFlowsUserPoolClient",
    "AllowedOAuthFlows",
    "AllowedOAuthScopes",
    "SupportedIdentityProviders",
    "CallbackURLs",
    "LogoutURLs",
    "IdTokenValidity",
    "AccessTokenValidity",
    "TokenValidityUnits",
)


def provision_user_pools(stack: Stack, endpoint: str) -> dict[str, str]:
    """The template's Cognito user pools and app clients, in moto; before the functions read their environment,
    because moto chooses the ids (``Ref`` answers them from then on). moto signs the pools' ID tokens (RS256)
    and serves each pool's JWKS at ``/<pool id>/.well-known/jwks.json``, as Cognito does; it has no sign-in
    pages (the sandbox's gateway serves the staff page open). Logical id -> id."""
    cognito = client("cognito-idp", endpoint, stack.region)
    for logical_id, resource in stack.resources_of("AWS::Cognito::UserPool").items():
        props = stack.resolve(resource.get("Properties") or {}, logical_id)
        settings = {key: props[key] for key in _USER_POOL_PROPERTIES if key in props}
        name = props.get("UserPoolName") or stack.physical_name(logical_id)
        stack.physical_ids[logical_id] = cognito.create_user_pool(PoolName=name, **settings)["UserPool"]["Id"]
    for logical_id, resource in stack.resources_of("AWS::Cognito::UserPoolClient").items():
        props = stack.resolve(resource.get("Properties") or {}, logical_id)
        settings = {key: props[key] for key in _USER_POOL_CLIENT_PROPERTIES if key in props}
        made = cognito.create_user_pool_client(UserPoolId=props["UserPoolId"], **settings)["UserPoolClient"]
        stack.physical_ids[logical_id] = made["ClientId"]
    return dict(stack.physical_ids)


def provision(stack: Stack, endpoint: str, *, visibility: int | None = None) -> Provisioned:
    """Create the template's resources in moto. ``visibility`` overrides every queue's VisibilityTimeout."""
    started = time.monotonic()
    region = stack.region
    out = Provisioned()

    # tables
    tables = dynamodb_tables(stack.template)
    out.tables = {logical_id: stack.physical_name(logical_id) for logical_id in tables}
    if tables:
        create_dynamodb_tables(client("dynamodb", endpoint, region), stack.template, out.tables)

    # buses
    events = client("events", endpoint, region)
    for logical_id in stack.resources_of("AWS::Events::EventBus"):
        name = stack.physical_name(logical_id)
        events.create_event_bus(Name=name)
        out.buses[logical_id] = name

    # topics
    sns = client("sns", endpoint, region)
    for logical_id, resource in stack.resources_of("AWS::SNS::Topic").items():
        props = stack.resolve(resource.get("Properties") or {}, logical_id)
        attributes = {
            key: str(props[key]) for key in ("DisplayName", "KmsMasterKeyId", "FifoTopic") if key in props
        }
        arn = sns.create_topic(Name=stack.physical_name(logical_id), Attributes=attributes)["TopicArn"]
        out.topics[logical_id] = arn

    # queues: first without redrive (dead-letter queues must exist), then their redrive policies
    sqs = client("sqs", endpoint, region)
    redrives: dict[str, dict[str, str]] = {}
    for logical_id, resource in stack.resources_of("AWS::SQS::Queue").items():
        props = stack.resolve(resource.get("Properties") or {}, logical_id)
        attributes = {key: _attribute(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
        if visibility is not None:
            attributes["VisibilityTimeout"] = str(visibility)
        later = {key: json.dumps(props[key]) for key in _JSON_QUEUE_ATTRIBUTES if key in props}
        name = stack.physical_name(logical_id)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        out.queues[logical_id] = QueueInfo(
            logical_id, name, url, stack.arn(logical_id), {**attributes, **later}
        )
        if later:
            redrives[logical_id] = later
    for logical_id, attributes in redrives.items():
        sqs.set_queue_attributes(QueueUrl=out.queues[logical_id].url, Attributes=attributes)
    for logical_id, resource in stack.resources_of("AWS::SQS::QueuePolicy").items():
        props = stack.resolve(resource.get("Properties") or {}, logical_id)
        for url in props.get("Queues") or []:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})

    # rules and their targets
    for logical_id, resource in stack.resources_of("AWS::Events::Rule").items():
        props = stack.resolve(resource.get("Properties") or {}, logical_id)
        name = stack.physical_name(logical_id)
        bus = props.get("EventBusName", "default")
        rule_args: dict[str, Any] = {
            "Name": name,
            "EventBusName": bus,
            "State": props.get("State", "ENABLED"),
        }
        if "EventPattern" in props:
            pattern = props["EventPattern"]
            rule_args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        if "ScheduleExpression" in props:
            rule_args["ScheduleExpression"] = props["ScheduleExpression"]
        if "Description" in props:
            rule_args["Description"] = props["Description"]
        events.put_rule(**rule_args)
        targets = [_target(t) for t in props.get("Targets") or []]
        delivered = []
        for target in targets:
            if target["Arn"].startswith(f"arn:{stack.partition}:sns:"):
                relay = _relay(stack, sqs, logical_id, target, len(out.relays))
                out.relays.append(relay)
                target = {**target, "Arn": relay.queue_arn}
            delivered.append(target)
        if delivered:
            events.put_targets(Rule=name, EventBusName=bus, Targets=delivered)
        out.rules[logical_id] = {
            "name": name,
            "bus": bus,
            "pattern": rule_args.get("EventPattern"),
            "targets": targets,  # as the template says (SNS targets are delivered through relays)
        }

    # an inbox per topic: what subscribers (staff) would receive
    for logical_id, topic_arn in out.topics.items():
        name = f"{stack.stack_name}{SANDBOX_MARK}{logical_id}-inbox"[:80]
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = f"arn:{stack.partition}:sqs:{stack.region}:{stack.account_id}:{name}"
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
        out.inboxes[logical_id] = url

    out.seconds = time.monotonic() - started
    return out


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _target(target: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "Id",
        "Arn",
        "RoleArn",
        "Input",
        "InputPath",
        "InputTransformer",
        "RetryPolicy",
        "DeadLetterConfig",
        "SqsParameters",
    )
    out = {key: target[key] for key in keys if key in target}
    retry = out.get("RetryPolicy")
    if retry:
        out["RetryPolicy"] = {k: int(v) for k, v in retry.items()}
    return out


def _relay(stack: Stack, sqs: Any, rule_logical_id: str, target: dict[str, Any], index: int) -> Relay:
    name = f"{stack.stack_name}{SANDBOX_MARK}{rule_logical_id}-sns-relay-{index}"[:80]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = f"arn:{stack.partition}:sqs:{stack.region}:{stack.account_id}:{name}"
    return Relay(rule=rule_logical_id, queue_url=url, queue_arn=arn, topic_arn=target["Arn"])


def pump_relays(sqs: Any, sns: Any, relays: list[Relay]) -> int:
    """Publish what rules put on their relay queues to the SNS topics; the count published."""
    count = 0
    for relay in relays:
        while True:
            answer = sqs.receive_message(QueueUrl=relay.queue_url, MaxNumberOfMessages=10)
            messages = answer.get("Messages") or []
            if not messages:
                break
            for message in messages:
                sns.publish(TopicArn=relay.topic_arn, Message=message["Body"])
                sqs.delete_message(QueueUrl=relay.queue_url, ReceiptHandle=message["ReceiptHandle"])
                count += 1
    return count
