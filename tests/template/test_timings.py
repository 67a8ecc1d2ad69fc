"""Timings that fit together (issue 12, deliverable 5), checked against template.yaml and the clients' settings.

For every function, its settings are validated from the environment the template gives it (Globals, then its
own), exactly as the function does at start; the budgets are computed from those settings by
``illbridge.timings`` (what the clients are built with); and the relations of docs/reliability.md ("Timings")
must hold. A change to any timeout, try count, lease or visibility timeout that breaks one fails here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from illbridge import timings
from illbridge.reshare.client import ReShareClient
from illbridge.settings import BridgeSettings
from illbridge.wiring import Services
from sandbox.template import load_template
from sandbox.timescale import api_gateway_limit, scale_timings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
PARAMETERS = {name: str(p.get("Default", "")) for name, p in TEMPLATE["Parameters"].items()}
# the template as deployed (1), and as the sandbox may run it (every timing scaled by one factor)
FACTORS = [1, 3, 0.25, 1 / 36, 0.01]


def resolved(value: Any) -> str:
    """A template environment value with ``!Ref Parameter`` resolved to its default (others: a placeholder)."""
    if isinstance(value, dict):
        ref = value.get("Ref")
        if ref in PARAMETERS:
            return PARAMETERS[ref]
        sub = value.get("Fn::Sub")
        if isinstance(sub, str):  # "/${ConfigName}"
            return sub.replace("${", "{").format(**PARAMETERS)
        return "placeholder"
    return str(value)


class Timed:
    """The template's functions and queues at one time scale."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.template = TEMPLATE if factor == 1 else scale_timings(TEMPLATE, factor)
        self.resources: dict[str, dict[str, Any]] = self.template["Resources"]
        self.functions = {k: v for k, v in self.resources.items() if v["Type"] == "AWS::Serverless::Function"}
        self.globals = self.template["Globals"]["Function"]
        self.api_gateway_limit = timings.API_GATEWAY_LIMIT_SECONDS * factor

    def settings_of(self, name: str) -> BridgeSettings:
        env = {
            **self.globals["Environment"]["Variables"],
            **self.functions[name]["Properties"].get("Environment", {}).get("Variables", {}),
        }
        return BridgeSettings.from_environ({k: resolved(v) for k, v in env.items()})

    def timeout_of(self, name: str) -> float:
        return float(self.functions[name]["Properties"].get("Timeout", self.globals["Timeout"]))

    def queue_of(self, name: str) -> dict[str, Any] | None:
        for event in self.functions[name]["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                return self.resources[event["Properties"]["Queue"]["Fn::GetAtt"][0]]["Properties"]
        return None


AS_DEPLOYED = Timed(1)
FUNCTIONS = AS_DEPLOYED.functions
STEPS = sorted(name for name in FUNCTIONS if AS_DEPLOYED.queue_of(name) is not None)


def settings_of(name: str) -> BridgeSettings:
    return AS_DEPLOYED.settings_of(name)


def test_every_workflow_step_is_checked() -> None:
    assert len(STEPS) == 5


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("name", STEPS)
def test_a_step_s_lease_outlives_its_run_and_ends_before_its_message_comes_back(
    name: str, factor: float
) -> None:
    at = Timed(factor)
    queue = at.queue_of(name)
    assert queue is not None
    visibility = float(queue["VisibilityTimeout"])
    lease = at.settings_of(name).step_lease_seconds
    # a lease shorter than a run would let a second delivery claim the step while the first still acts
    assert at.timeout_of(name) < lease, name
    # a lease longer than the visibility timeout would make the next delivery find the crashed step still
    # claimed, spend a receive, and reach the dead-letter queue before the lease ends
    assert lease < visibility, name
    # AWS's advice for SQS event sources
    assert at.timeout_of(name) * timings.VISIBILITY_PER_FUNCTION_TIMEOUT <= visibility, name


# the ops routes' authorizer builds none of the bridge's clients: its one outbound call is the user pool's JWKS
AUTHORIZER = "OpsAuthorizerFunction"


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("name", sorted(set(FUNCTIONS) - {AUTHORIZER}))
def test_each_outbound_call_fits_in_its_function_s_timeout(name: str, factor: float) -> None:
    at = Timed(factor)
    for budget in timings.budgets(at.settings_of(name)):
        assert budget.worst_case_seconds <= at.timeout_of(name), (name, budget)


def test_the_authorizer_s_one_key_fetch_fits_in_its_timeout() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "ops_authorizer_timing", ROOT / "functions/ops_authorizer/app.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # one JWKS fetch (once per instance), no retries, well inside the function's timeout and API Gateway's 29 s
    assert module.JWKS_TIMEOUT_SECONDS < AS_DEPLOYED.timeout_of(AUTHORIZER) <= 29


@pytest.mark.parametrize("factor", FACTORS)
def test_the_webhook_answers_within_api_gateway_s_29_seconds(factor: float) -> None:
    at = Timed(factor)
    settings = at.settings_of("WebhookFunction")
    assert at.api_gateway_limit == api_gateway_limit(factor)
    assert at.timeout_of("WebhookFunction") <= at.api_gateway_limit
    # it reads ReShare once, puts on the bus once and writes DynamoDB a few times: one slow call of each
    # kind, each at its worst, still leaves an answer inside API Gateway's limit
    path = [timings.reshare_budget(settings), timings.bus_budget(settings), timings.dynamodb_budget(settings)]
    assert sum(b.worst_case_seconds for b in path) <= at.api_gateway_limit, path
    # the ReShare client's own default (20 s read timeout x 4 tries) took 84 s: the webhook has its own budget
    assert (
        timings.reshare_budget(settings).worst_case_seconds
        < timings.reshare_budget(at.settings_of("ReSharePollerFunction")).worst_case_seconds
    )


@pytest.mark.parametrize("factor", [3, 0.25, 0.01])
def test_every_timing_is_scaled_and_nothing_else(factor: float) -> None:
    at = Timed(factor)
    for name in FUNCTIONS:
        deployed, scaled = AS_DEPLOYED.settings_of(name), at.settings_of(name)
        assert at.timeout_of(name) == pytest.approx(AS_DEPLOYED.timeout_of(name) * factor)
        assert scaled.step_lease_seconds == pytest.approx(deployed.step_lease_seconds * factor)
        for budget, before in zip(timings.budgets(scaled), timings.budgets(deployed), strict=True):
            assert budget.tries == before.tries  # try counts are not times
            if factor <= 1:
                assert budget.worst_case_seconds == pytest.approx(before.worst_case_seconds * factor), budget
            else:  # the ReShare client caps one pause at 4 s whatever the scale: never longer than linear
                assert budget.worst_case_seconds <= before.worst_case_seconds * factor + 1e-9, budget
    for name in STEPS:
        queue, deployed_queue = at.queue_of(name), AS_DEPLOYED.queue_of(name)
        assert queue is not None and deployed_queue is not None
        assert queue["VisibilityTimeout"] == max(1, math.ceil(deployed_queue["VisibilityTimeout"] * factor))
    assert TEMPLATE["Globals"]["Function"]["Timeout"] == 60  # the loaded template itself is left alone


def test_the_clients_are_built_with_the_budgets_the_checks_use(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WebhookFunction", "ReSharePollerFunction", "LendShippedFunction"):
        settings = settings_of(name)
        services = Services.from_settings(settings)
        config = _a_library()
        reshare = services.reshare_factory(config)
        assert isinstance(reshare, ReShareClient)
        budget = timings.reshare_budget(settings)
        assert reshare._timeout == (budget.connect, budget.read)
        assert reshare._read_retries + 1 == budget.tries
        wms = services.wms_factory(
            config.model_copy(update={"wms": config.wms.model_copy(update={"timeout_seconds": 120})})
        )
        assert wms.timeout == (settings.wms_connect_timeout, settings.wms_max_read_timeout)
        assert services.bus.timings == timings.bus_timings(settings)
        assert services.store._botocore_config is not None
        assert services.store._botocore_config.read_timeout == settings.aws_read_timeout


def _a_library() -> Any:
    from sandbox.demo import library_settings, validate

    return validate(*library_settings("east", "http://127.0.0.1:9", "http://127.0.0.1:9"))
