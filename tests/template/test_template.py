"""What `sam validate --lint` cannot see: code paths, handlers, environments, TTLs, retries and DLQs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from illbridge.observability import OUTAGE_METRIC
from illbridge.settings import BridgeSettings
from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
FUNCTIONS = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
GLOBAL_ENV = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
REQUIRED_ENV = [f.alias for f in BridgeSettings.model_fields.values() if f.is_required() and f.alias]


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


def test_the_runtime_is_python312_on_arm64() -> None:
    function = TEMPLATE["Globals"]["Function"]
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    layer = RESOURCES["DomainLayer"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").is_file()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_code_uri_exists_and_every_handler_imports(name: str) -> None:
    props = FUNCTIONS[name]["Properties"]
    code = ROOT / props["CodeUri"]
    module_name, _, attribute = props["Handler"].rpartition(".")
    source = code / f"{module_name}.py"
    assert source.is_file(), f"{name}: {source} is missing"
    spec = importlib.util.spec_from_file_location(f"template_check_{name}", source)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, attribute)), f"{name}: {props['Handler']} is not callable"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_has_the_environment_it_validates(name: str) -> None:
    env = {**GLOBAL_ENV, **FUNCTIONS[name]["Properties"].get("Environment", {}).get("Variables", {})}
    missing = [var for var in REQUIRED_ENV if var not in env]
    assert not missing, f"{name} lacks {missing}"
    assert "POWERTOOLS_SERVICE_NAME" in env


def test_the_bridge_table_is_the_only_table_and_has_its_ttl() -> None:
    # one table: a duplicate delivery is stopped by the step's claim, there is no idempotency table
    assert set(of_type("AWS::DynamoDB::Table")) == {"BridgeTable"}
    bridge = RESOURCES["BridgeTable"]["Properties"]
    assert bridge["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert bridge["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_every_queue_is_a_dlq_or_has_one() -> None:
    queues = of_type("AWS::SQS::Queue")
    dead_letter = {name for name in queues if name.endswith("DeadLetterQueue")}
    assert dead_letter
    for name, queue in queues.items():
        if name in dead_letter:
            continue
        redrive = queue["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"]["Fn::GetAtt"][0] in dead_letter, name
        assert redrive["maxReceiveCount"]


def test_every_dead_letter_queue_has_an_alarm_to_staff() -> None:
    alarmed = {
        dim["Value"]["Fn::GetAtt"][0]
        for alarm in of_type("AWS::CloudWatch::Alarm").values()
        for dim in alarm["Properties"]["Dimensions"]
        if isinstance(dim["Value"], dict) and "Fn::GetAtt" in dim["Value"]
    }
    dead_letter = {name for name in of_type("AWS::SQS::Queue") if name.endswith("DeadLetterQueue")}
    assert dead_letter <= alarmed


def test_one_alarm_watches_steps_that_wait_out_an_outage() -> None:
    # A put-off step, a poll and a reconciliation run that wait out an outage count in OUTAGE_METRIC (Powertools:
    # namespace and service dimension)
    for path in (
        "layers/domain/illbridge/workflow/engine.py",
        "functions/reshare_poller/app.py",
        "functions/wms_reconciler/app.py",
    ):
        assert "add_metric(name=OUTAGE_METRIC" in (ROOT / path).read_text(), path
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    [alarm] = [
        a["Properties"]
        for a in of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == OUTAGE_METRIC
    ]
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    # waiting for over an hour (two half-hour periods with waits) raises it; one alarm, however many requests
    assert alarm["Period"] * alarm["DatapointsToAlarm"] >= 3600 and alarm["Statistic"] == "Sum"
    assert alarm["AlarmActions"] == [{"Ref": "AttentionTopic"}] and alarm["OKActions"] == [
        {"Ref": "AttentionTopic"}
    ]


def test_every_rule_target_and_schedule_has_an_explicit_retry_policy_and_dlq() -> None:
    for name, rule in of_type("AWS::Events::Rule").items():
        for target in rule["Properties"]["Targets"]:
            assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0, name
            assert "Arn" in target["DeadLetterConfig"], name
    schedules = [
        (name, event)
        for name, fn in FUNCTIONS.items()
        for event in fn["Properties"].get("Events", {}).values()
        if event["Type"] in ("Schedule", "ScheduleV2")
    ]
    assert schedules
    for name, event in schedules:
        assert event["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1, name
        assert "Arn" in event["Properties"]["DeadLetterConfig"], name


def test_scheduled_functions_send_failed_runs_to_the_schedule_dlq() -> None:
    # Schedules invoke asynchronously: their DeadLetterConfig only sees failed deliveries. A handler error is
    # retried by Lambda per EventInvokeConfig, then its invocation record goes to the OnFailure destination.
    scheduled = {
        name: [
            event["Properties"]
            for event in fn["Properties"].get("Events", {}).values()
            if event["Type"] in ("Schedule", "ScheduleV2")
        ]
        for name, fn in FUNCTIONS.items()
    }
    scheduled = {name: events for name, events in scheduled.items() if events}
    assert set(scheduled) == {"ReSharePollerFunction", "WmsReconcilerFunction"}
    for name, events in scheduled.items():
        config = FUNCTIONS[name]["Properties"]["EventInvokeConfig"]
        assert config["MaximumRetryAttempts"] == 2, name
        assert 60 <= config["MaximumEventAgeInSeconds"] <= 21600, name
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS", name
        for props in events:
            assert on_failure["Destination"] == props["DeadLetterConfig"]["Arn"], name
        assert on_failure["Destination"] == {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}, name


def test_queue_sources_report_partial_failures_and_cap_concurrency() -> None:
    sources = [
        (name, event["Properties"])
        for name, fn in FUNCTIONS.items()
        for event in fn["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
    ]
    assert len(sources) == 5
    for name, props in sources:
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
        assert "MaximumConcurrency" in props["ScalingConfig"], name


def test_the_api_has_both_webhooks() -> None:
    routes = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for fn in FUNCTIONS.values()
        for event in fn["Properties"].get("Events", {}).values()
        if event["Type"] == "Api"
    }
    assert {("POST", "/webhooks/reshare"), ("POST", "/webhooks/wms")} <= routes


def test_every_alarm_may_publish_to_the_topics_it_notifies() -> None:
    # A custom topic policy replaces SNS's default one: CloudWatch alarms need their own statement
    policies = of_type("AWS::SNS::TopicPolicy").values()
    for name, alarm in of_type("AWS::CloudWatch::Alarm").items():
        for action in alarm["Properties"].get("AlarmActions", []):
            topic = action["Ref"]
            statements = [
                st
                for policy in policies
                if {"Ref": topic} in policy["Properties"]["Topics"]
                for st in policy["Properties"]["PolicyDocument"]["Statement"]
            ]
            assert any(
                st["Effect"] == "Allow"
                and st["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
                and st["Action"] == "sns:Publish"
                for st in statements
            ), (name, topic)


def test_webhook_5xx_alarms_staff() -> None:
    # hostile input gets 4xx; a 5xx means the bridge failed, and someone must look (docs/operations.md)
    [alarm] = [
        a["Properties"]
        for a in of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == "AWS/ApiGateway" and a["Properties"]["MetricName"] == "5XXError"
    ]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions == {"ApiName": {"Ref": "AWS::StackName"}, "Stage": "Prod"}
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == [{"Ref": "AttentionTopic"}]
    webhook_events = FUNCTIONS["WebhookFunction"]["Properties"]["Events"].values()
    assert all(e["Type"] == "Api" and "RestApiId" not in e["Properties"] for e in webhook_events)
