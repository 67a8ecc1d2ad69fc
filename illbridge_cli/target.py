"""Where the bridge is: the sandbox that ``make run`` started, a deployed stack, or the environment as given.

- default: the sandbox. ``make run`` (``python -m sandbox up``) writes ``.sandbox/endpoints.json`` in the
  repository it runs from (gitignored) and removes it when it stops; the command looks for that file from the
  working directory upwards, then in the repository it is installed from.
- ``--stack NAME``: a deployed stack. Its outputs name the tables, the bus and the topic, its parameters the
  configuration's name, its resources the queues and functions; AWS credentials and region come from the
  usual places (profile, environment, ``--region``).
- ``--env``: the environment as it is (``TABLE_NAME``, ``EVENT_BUS_NAME``, ... as a function has them).

The target sets the process's environment the way the functions see theirs, so the layer's ``Services``
work unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENDPOINTS = Path(".sandbox") / "endpoints.json"
REPO = Path(__file__).resolve().parents[1]


class TargetError(Exception):
    """The bridge cannot be found where the command was told (or by default) to look."""


@dataclass
class Target:
    kind: str  # "sandbox", "stack" or "environment"
    description: str
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> function name (stack only)
    urls: dict[str, str] = field(default_factory=dict)  # sandbox: moto, reshare, wms, gateway

    def dead_letter_queues(self) -> dict[str, str]:
        return {name: url for name, url in sorted(self.queues.items()) if name.endswith("DeadLetterQueue")}


def find_endpoints(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents, REPO):
        candidate = directory / ENDPOINTS
        if candidate.is_file():
            return candidate
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def use_sandbox(path: Path | None = None) -> Target:
    found = path or find_endpoints()
    if found is None:
        raise TargetError(
            "no running sandbox found (.sandbox/endpoints.json): start one with `make run`, "
            "or name a deployed stack with --stack NAME"
        )
    data = json.loads(found.read_text())
    pid = int(data.get("pid") or 0)
    if pid and not _alive(pid):
        raise TargetError(
            f"the sandbox that wrote {found} (pid {pid}) is not running: start it with `make run`"
        )
    keep = {"POWERTOOLS_LOG_LEVEL"}  # the command's own (quiet unless --verbose)
    os.environ.update({str(k): str(v) for k, v in data["env"].items() if k not in keep})
    return Target(
        kind="sandbox",
        description=f"sandbox {data.get('stack_name', '')} ({data['urls'].get('gateway', '')})",
        queues=dict(data.get("queues") or {}),
        urls=dict(data.get("urls") or {}),
    )


# the stack's outputs (template.yaml Outputs) -> the functions' environment
STACK_OUTPUTS = {
    "BridgeTableName": "TABLE_NAME",
    "EventBusName": "EVENT_BUS_NAME",
    "AttentionTopicArn": "ATTENTION_TOPIC_ARN",
}


def use_stack(name: str, region: str | None = None, cloudformation: Any = None) -> Target:
    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation", region_name=region)
    try:
        [stack] = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except Exception as exc:  # botocore's ClientError, NoCredentialsError, ...
        raise TargetError(f"cannot read stack {name!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    missing = sorted(set(STACK_OUTPUTS) - set(outputs))
    if missing:
        raise TargetError(f"stack {name!r} has no output(s) {', '.join(missing)}: is it the bridge's stack?")
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    env = {variable: outputs[output] for output, variable in STACK_OUTPUTS.items()}
    env["CONFIG_PREFIX"] = "/" + (parameters.get("ConfigName") or "reshare-wms-bridge")
    if region:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    os.environ.update(env)
    queues: dict[str, str] = {}
    functions: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
        for resource in page["StackResourceSummaries"]:
            kind, logical, physical = (
                resource["ResourceType"],
                resource["LogicalResourceId"],
                resource.get("PhysicalResourceId", ""),
            )
            if kind == "AWS::SQS::Queue":
                queues[logical] = physical  # a queue's physical id is its URL
            elif kind == "AWS::Lambda::Function":
                functions[logical] = physical
    return Target(kind="stack", description=f"stack {name}", queues=queues, functions=functions)


def use_environment() -> Target:
    missing = [v for v in ("TABLE_NAME", "EVENT_BUS_NAME") if not os.environ.get(v)]
    if missing:
        raise TargetError(f"--env: {', '.join(missing)} not set")
    return Target(kind="environment", description="the environment's TABLE_NAME, EVENT_BUS_NAME, ...")


def resolve(stack: str | None, region: str | None, sandbox: Path | None, env: bool) -> Target:
    if stack:
        return use_stack(stack, region)
    if env:
        return use_environment()
    return use_sandbox(sandbox)
