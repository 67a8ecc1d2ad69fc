"""X-Ray tracing only when the template turns it on, and then only: the X-Ray SDK stays unimported otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from illbridge.observability import Untraced, tracing_on
from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
ON_LAMBDA = {"LAMBDA_TASK_ROOT": "/var/task"}


@pytest.mark.parametrize(
    ("environ", "traced"),
    [
        ({**ON_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({**ON_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({**ON_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "TRUE"}, False),
        ({**ON_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "false", "AWS_SAM_LOCAL": "true"}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "false"}, False),  # not on Lambda: no daemon to send to
        (ON_LAMBDA, True),  # Powertools' default when the variable is unset
    ],
)
def test_tracing_follows_powertools_rule(environ: dict[str, str], traced: bool) -> None:
    assert tracing_on(environ) is traced


def test_untraced_decorators_return_the_function_itself() -> None:
    untraced = Untraced()

    def handler(event: object, context: object) -> str:
        return "done"

    assert untraced.capture_lambda_handler(handler) is handler
    assert untraced.capture_lambda_handler(capture_response=False)(handler) is handler
    assert untraced.capture_method(handler) is handler
    assert untraced.put_annotation("k", "v") is None


def test_the_template_turns_tracing_and_powertools_on_together() -> None:
    template = load_template(ROOT / "template.yaml")
    parameter = template["Parameters"]["XRayTracing"]
    assert parameter["Default"] == "PassThrough"
    assert set(parameter["AllowedValues"]) == {"Active", "PassThrough"}
    function = template["Globals"]["Function"]
    assert function["Tracing"] == {"Ref": "XRayTracing"}
    disabled = function["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"]
    assert disabled == {"Fn::If": ["Tracing", "false", "true"]}
    assert template["Conditions"]["Tracing"] == {"Fn::Equals": [{"Ref": "XRayTracing"}, "Active"]}


PROBE = """
import json, sys
sys.path[:0] = sys.argv[1:]
import app
print(json.dumps({"xray": "aws_xray_sdk" in sys.modules, "tracer": type(app.tracer).__name__}))
"""


@pytest.mark.parametrize(("disabled", "xray"), [("true", False), ("false", True)])
def test_a_handler_imports_the_xray_sdk_only_when_tracing(disabled: str, xray: bool) -> None:
    env = {
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "lend_shipped"),
        "POWERTOOLS_TRACE_DISABLED": disabled,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "PATH": "",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(ROOT / "functions" / "lend_shipped"),
            str(ROOT / "layers" / "domain"),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["xray"] is xray
    assert seen["tracer"] == ("Tracer" if xray else "Untraced")


@pytest.mark.parametrize(("mode", "disabled"), [("PassThrough", "true"), ("Active", "false")])
def test_the_sandbox_resolves_the_tracing_condition_as_cloudformation(mode: str, disabled: str) -> None:
    from sandbox.runtime.cfn import Stack, UnresolvableError

    stack = Stack(load_template(ROOT / "template.yaml"), parameter_overrides={"XRayTracing": mode})
    variables = stack.template["Globals"]["Function"]["Environment"]["Variables"]
    assert stack.resolve(variables["POWERTOOLS_TRACE_DISABLED"]) == disabled
    assert stack.condition("Tracing") is (mode == "Active")
    with pytest.raises(UnresolvableError):
        stack.condition("NoSuchCondition")
