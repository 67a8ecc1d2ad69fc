"""samconfig.toml: the default, sandbox and prod environments are complete, name only the template's
parameters with values the template accepts, and `default` carries every parameter with its template default
(so `sam deploy --guided` offers exactly the template's defaults)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from samcli.cli.types import CfnParameterOverridesType

from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
PARAMETERS: dict[str, dict[str, Any]] = load_template()["Parameters"]
ENVIRONMENTS = ("default", "sandbox", "prod")


def overrides(env: str) -> dict[str, str]:
    """The parameter overrides as SAM CLI itself reads them."""
    return CfnParameterOverridesType().convert(
        CONFIG[env]["deploy"]["parameters"]["parameter_overrides"], None, None
    )


def test_the_file_is_a_sam_config_with_the_three_environments() -> None:
    assert CONFIG["version"] == 0.1
    assert set(ENVIRONMENTS) <= set(CONFIG)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_is_complete(env: str) -> None:
    # --config-env reads only its own tables, so build, validate and deploy are all there
    glob = CONFIG[env]["global"]["parameters"]
    deploy = CONFIG[env]["deploy"]["parameters"]
    assert glob["stack_name"].startswith("reshare-wms-bridge")
    assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", glob["region"])
    assert CONFIG[env]["build"]["parameters"] == {"cached": True, "parallel": True}
    assert CONFIG[env]["validate"]["parameters"]["lint"] is True
    assert "CAPABILITY_IAM" in deploy["capabilities"].split()
    assert deploy["resolve_s3"] is True
    assert deploy["s3_prefix"] == glob["stack_name"]


def test_the_environments_are_separate_stacks() -> None:
    stacks = [CONFIG[env]["global"]["parameters"]["stack_name"] for env in ENVIRONMENTS]
    assert len(set(stacks)) == len(stacks)
    assert overrides("sandbox")["ConfigName"] != overrides("prod")["ConfigName"]
    assert CONFIG["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


def test_default_carries_every_template_parameter_with_its_default() -> None:
    expected = {name: str(spec["Default"]) for name, spec in PARAMETERS.items()}
    assert overrides("default") == expected, (
        "samconfig.toml [default.deploy.parameters] parameter_overrides must list every template parameter with "
        "its Default; add or change the ones that differ (and the sandbox and prod environments too)"
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_override_is_a_template_parameter_with_an_acceptable_value(env: str) -> None:
    values = overrides(env)
    assert set(values) == set(PARAMETERS), f"{env}: override exactly the template's parameters"
    for name, value in values.items():
        spec = PARAMETERS[name]
        if "AllowedValues" in spec:
            assert value in spec["AllowedValues"], (env, name, value)
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), (env, name, value)
        if spec["Type"] == "Number":
            assert float(value) >= spec.get("MinValue", float("-inf")), (env, name, value)
            assert float(value) <= spec.get("MaxValue", float("inf")), (env, name, value)
        if name.endswith("Rate"):
            assert re.fullmatch(r"rate\(\d+ (minute|minutes|hour|hours|day|days)\)", value), (
                env,
                name,
                value,
            )


def test_sam_validates_the_template_with_the_prod_environment() -> None:
    sam = Path(sys.executable).parent / "sam"
    env = {k: v for k, v in os.environ.items() if k not in {"AWS_REGION", "AWS_DEFAULT_REGION"}}
    env["SAM_CLI_TELEMETRY"] = "0"
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--config-env", "prod"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr
