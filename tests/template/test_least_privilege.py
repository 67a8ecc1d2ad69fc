"""Least privilege: each function may do exactly what its code calls, and AWS services may send to the bridge's
queues and topic only on behalf of the bridge's own rules and alarms.

``CALLS`` is the declared table: per function, the AWS actions its code path makes, on which resource. It
follows the code: ``BridgeStore`` methods each function reaches (``GetItem`` for reads, ``PutItem`` for
history, attention, webhook ids and mapping rows, ``UpdateItem`` for claims, last-seen and cursors,
``DeleteItem`` for item rows and reverted last-seen, ``Query`` on the index it looks things up by),
``EventBus.put`` (``PutEvents``), the configuration loader (``ssm:GetParameter`` and
``secretsmanager:GetSecretValue`` under the configuration's name) and a waiting step's send back to its own
queue (``intake/queue.py``). A function whose policy grants more (or less) than its row fails here;
so does a policy written with a SAM policy template (it cannot be checked action by action) or a wildcard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]

SETTINGS = "ssm:parameter/${ConfigName}/*"
SECRETS = "secretsmanager:secret:${ConfigName}/libraries/*"  # each library's secret: WSKey, ReShare password
WEBHOOK_SECRETS = (
    "secretsmanager:secret:${ConfigName}/webhooks/*"  # webhook signing secrets, ReShare password
)
CONFIG = {("ssm:GetParameter", SETTINGS), ("secretsmanager:GetSecretValue", SECRETS)}
WEBHOOK_CONFIG = {("ssm:GetParameter", SETTINGS), ("secretsmanager:GetSecretValue", WEBHOOK_SECRETS)}
BUS = {("events:PutEvents", "BridgeBus")}
NOTICES = {("sns:Publish", "AttentionTopic")}  # illbridge/announce.py: functions that raise attention items
ITEM_INDEX = "BridgeTable/index/by-item-barcode"


def table(*actions: str, resource: str = "BridgeTable") -> set[tuple[str, str]]:
    return {(f"dynamodb:{action}", resource) for action in actions}


def step(queue: str) -> set[tuple[str, str]]:
    return (
        table("GetItem", "PutItem", "UpdateItem", "DeleteItem")
        | table("Query", resource=ITEM_INDEX)  # find_by_item: a WMS check-in's mapping
        | BUS
        | NOTICES
        | CONFIG
        | {("sqs:GetQueueUrl", queue), ("sqs:SendMessage", queue)}
    )


CALLS: dict[str, set[tuple[str, str]]] = {
    # seen_state/get_cursor, record_state_change (UpdateItem of SEEN, after PutEvents: no outbox entry),
    # advance_cursor, pending_events (Query of the outbox partition: check-in notices), forget_event (Delete)
    "ReSharePollerFunction": table("GetItem", "UpdateItem", "DeleteItem", "Query") | BUS | CONFIG,
    # due_for_reconciliation (index), save_mapping (Put mapping, Delete item rows), add_history, attention
    "WmsReconcilerFunction": table("GetItem", "PutItem", "DeleteItem")
    | table("Query", resource="BridgeTable/index/reconciliation")
    | BUS
    | NOTICES
    | CONFIG,
    # webhook_seen/claim_webhook (Put, for a check-in with its outbox entry in one transaction), the poller's
    # last-seen write after PutEvents (Transitions: UpdateItem), forget_event (Delete), find_by_item (index)
    # the public webhook reads only each library's webhook secret (never the WSKey): LIBRARY_SECRETS=webhook
    "WebhookFunction": table("GetItem", "PutItem", "UpdateItem", "DeleteItem")
    | table("Query", resource=ITEM_INDEX)
    | BUS
    | WEBHOOK_CONFIG,
    # the ops API: request views (GetItem mapping/attention, Query steps and history), the attention list
    # (its index), a retry (UpdateItem release_step, PutEvents its trigger)
    "OpsApiFunction": table("GetItem", "UpdateItem", "Query")
    | table("Query", resource="BridgeTable/index/attention")
    | BUS
    | CONFIG,
    # the ops routes' authorizer reads the user pool's public keys over HTTPS and calls no AWS API
    "OpsAuthorizerFunction": set(),
    "BorrowReceivedFunction": step("BorrowReceivedQueue"),
    "BorrowReturnedFunction": step("BorrowReturnedQueue"),
    "LendShippedFunction": step("LendShippedQueue"),
    "LendReturnedFunction": step("LendReturnedQueue"),
    "RequestClosedFunction": step("RequestClosedQueue"),
}


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in RESOURCES.items() if isinstance(r, dict) and r.get("Type") == kind}


def resource_key(resource: Any) -> str:
    """A policy Resource as the table above names it."""
    if isinstance(resource, dict) and set(resource) == {"Ref"}:
        return str(resource["Ref"])  # an SNS topic's Ref is its ARN
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        target = resource["Fn::GetAtt"]
        name, attribute = target if isinstance(target, list) else target.split(".", 1)
        assert attribute == "Arn", resource
        return str(name)
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text = resource["Fn::Sub"]
        assert isinstance(text, str), resource
        if text.startswith("${") and ".Arn}" in text:
            name, rest = text[2:].split(".Arn}", 1)
            return name + rest
        prefix = "arn:${AWS::Partition}:"
        assert text.startswith(prefix), text
        service = text[len(prefix) :].split(":", 1)[0]
        rest = text.split("${AWS::AccountId}:", 1)[1]
        return f"{service}:{rest}"
    raise AssertionError(f"a resource the test cannot read: {resource!r}")


def granted(function: str) -> set[tuple[str, str]]:
    grants: set[tuple[str, str]] = set()
    for policy in RESOURCES[function]["Properties"].get("Policies") or []:
        assert isinstance(policy, dict) and set(policy) == {"Statement"}, (
            f"{function}: only plain statements can be checked, not {policy!r}"
        )
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement, statement
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for action in actions:
                assert "*" not in action, (function, action)
                for resource in resources:
                    grants.add((action, resource_key(resource)))
    return grants


def test_every_function_is_in_the_table() -> None:
    assert set(of_type("AWS::Serverless::Function")) == set(CALLS)


@pytest.mark.parametrize("function", sorted(CALLS))
def test_a_function_may_do_what_its_code_calls_and_nothing_more(function: str) -> None:
    grants = granted(function)
    assert grants - CALLS[function] == set(), f"{function} is granted more than its code calls"
    assert CALLS[function] - grants == set(), f"{function} cannot do what its code calls"


def test_no_function_may_scan_or_read_by_path() -> None:
    actions = {action for function in CALLS for action, _ in granted(function)}
    for forbidden in ("dynamodb:Scan", "dynamodb:BatchWriteItem", "ssm:GetParametersByPath"):
        assert forbidden not in actions


def test_only_the_functions_that_raise_attention_items_may_publish_and_only_to_the_topic() -> None:
    publishers = {f for f in CALLS if any(action == "sns:Publish" for action, _ in granted(f))}
    assert publishers == {
        "BorrowReceivedFunction",
        "BorrowReturnedFunction",
        "LendShippedFunction",
        "LendReturnedFunction",
        "RequestClosedFunction",
        "WmsReconcilerFunction",
    }
    for function in publishers:
        assert {r for a, r in granted(function) if a.startswith("sns:")} == {"AttentionTopic"}


def senders(target: str) -> set[str]:
    """The rules and alarms that send to a queue or topic (targets, dead-letter configs, alarm actions)."""

    def name(value: Any) -> str | None:
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            target_ = value["Fn::GetAtt"]
            return str(target_[0] if isinstance(target_, list) else target_.split(".")[0])
        if isinstance(value, dict) and "Ref" in value:
            return str(value["Ref"])
        return None

    found = set()
    for rule_name, rule in of_type("AWS::Events::Rule").items():
        for t in rule["Properties"]["Targets"]:
            if target in (name(t["Arn"]), name((t.get("DeadLetterConfig") or {}).get("Arn"))):
                found.add(rule_name)
    for alarm_name, alarm in of_type("AWS::CloudWatch::Alarm").items():
        actions = alarm["Properties"].get("AlarmActions", []) + alarm["Properties"].get("OKActions", [])
        if any(name(a) == target for a in actions):
            found.add(alarm_name)
    return found


def source_arns(statement: dict[str, Any]) -> set[str]:
    condition = statement.get("Condition") or {}
    arns = (condition.get("ArnEquals") or condition.get("ArnLike") or {}).get("aws:SourceArn")
    assert arns, f"no aws:SourceArn on {statement}"
    return {resource_key(a) for a in (arns if isinstance(arns, list) else [arns])}


def test_every_service_principal_statement_names_the_rules_or_alarms_that_send() -> None:
    policies = [
        (p["Properties"]["Queues"], p["Properties"]["PolicyDocument"]["Statement"])
        for p in of_type("AWS::SQS::QueuePolicy").values()
    ] + [
        (p["Properties"]["Topics"], p["Properties"]["PolicyDocument"]["Statement"])
        for p in of_type("AWS::SNS::TopicPolicy").values()
    ]
    assert policies
    for targets, statements in policies:
        [target] = [t["Ref"] for t in targets]
        for statement in statements:
            service = (statement.get("Principal") or {}).get("Service")
            assert service, statement
            kind = {
                "events.amazonaws.com": "AWS::Events::Rule",
                "cloudwatch.amazonaws.com": "AWS::CloudWatch::Alarm",
            }[service]
            expected = {s for s in senders(target) if RESOURCES[s]["Type"] == kind}
            assert source_arns(statement) == expected, (target, service)


def test_the_public_webhook_is_throttled_by_api_gateway() -> None:
    # every method of the implicit REST API (the webhook's two routes): a rate and a burst, not unlimited
    [setting] = TEMPLATE["Globals"]["Api"]["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert 0 < setting["ThrottlingRateLimit"] <= 50 and 0 < setting["ThrottlingBurstLimit"] <= 100
    api_events = [
        event["Type"]
        for function in of_type("AWS::Serverless::Function").values()
        for event in (function["Properties"].get("Events") or {}).values()
        if event["Type"] in ("Api", "HttpApi")
    ]
    assert api_events and set(api_events) == {"Api"}  # all on the implicit REST API the setting covers


def test_the_webhook_reads_only_webhook_secrets_and_the_other_functions_only_library_secrets() -> None:
    """The names the loader reads (illbridge.config.loader) fall under the grants: the webhook's role can read
    ``<ConfigName>/webhooks/<library>`` and not ``<ConfigName>/libraries/<library>`` (the WSKey secret)."""
    from fnmatch import fnmatch

    from illbridge.config.loader import secret_name, webhook_secret_name

    prefix = "/reshare-wms-bridge"
    library, webhook = secret_name(prefix, "east"), webhook_secret_name(prefix, "east")
    for function in CALLS:
        if function == "OpsAuthorizerFunction":
            continue  # reads no configuration at all (no grants: test_a_function_may_do_what_its_code_calls)
        scope = "webhook" if function == "WebhookFunction" else "library"  # Services.webhook_configs
        patterns = [
            resource.removeprefix("secretsmanager:secret:").replace("${ConfigName}", prefix.strip("/"))
            for action, resource in granted(function)
            if action == "secretsmanager:GetSecretValue"
        ]
        readable = {
            name for name in (library, webhook) if any(fnmatch(f"{name}-AbCdEf", p) for p in patterns)
        }
        assert readable == ({webhook} if scope == "webhook" else {library}), (function, patterns)
