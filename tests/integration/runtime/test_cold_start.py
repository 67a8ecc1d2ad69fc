"""What a function loads and builds when Lambda starts it (docs/performance.md#cold-start), without timing
anything (``bench/coldstart.py`` measures): each function in a fresh interpreter, as Lambda starts one, with
the layer on its path and its own environment from the template, counting the boto3 clients it creates.

- importing a handler creates no client (everything is built at the first call), loads neither Powertools'
  batch utility nor its parser models (and its event data classes only for an HTTP router), and loads lxml
  only where
  NCIP is spoken (not in the ReShare poller nor the webhook);
- two invocations build each client once, all from the one boto3 session (so each service's model is loaded
  once): the second creates none; one DynamoDB client, the store's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.coldstart import CONTEXT
from sandbox import events
from sandbox.runtime import Sandbox
from sandbox.runtime.functions import layer_dirs

# argv: code dir, layer dirs (os.pathsep-joined), handler, event file ("" = import only), function name
SCRIPT = (
    """
import json, os, sys, time, uuid
code_dir, layers, handler, event_file, name = sys.argv[1:6]
timeout = 60
sys.path[:0] = [code_dir, *layers.split(os.pathsep)]
import botocore.session

made = []
real = botocore.session.Session.create_client


def counting(self, service_name, *args, **kwargs):
    made.append([service_name, id(self)])  # the service, and the botocore session that made it
    return real(self, service_name, *args, **kwargs)


botocore.session.Session.create_client = counting
module_name, _, attribute = handler.rpartition(".")
module = __import__(module_name)
heavy = [m for m in ("lxml", "aws_xray_sdk", "aws_lambda_powertools.utilities.batch",
         "aws_lambda_powertools.utilities.parser", "aws_lambda_powertools.utilities.data_classes") if m in sys.modules]
at_import = list(made)
runs = []
if event_file:
    handle = getattr(module, attribute)
    event = json.loads(open(event_file).read())
"""
    + CONTEXT.replace("\n", "\n    ")
    + """
    for _ in range(2):
        before = len(made)
        try:
            handle(json.loads(json.dumps(event)), Context())
        except Exception:
            pass  # what a failed run builds counts too
        runs.append(made[before:])
print(json.dumps({"heavy": heavy, "at_import": at_import, "runs": runs}))
"""
)

FUNCTIONS = {
    "ReSharePollerFunction": "reshare_poller/scheduled.json",
    "WebhookFunction": "webhook/reshare-status-changed.json",
    "WmsReconcilerFunction": "wms_reconciler/scheduled.json",
    "BorrowReceivedFunction": "borrow_received/item-received.json",
    "LendShippedFunction": "lend_shipped/item-shipped.json",
}
NO_NCIP = {"ReSharePollerFunction", "WebhookFunction"}
ROUTERS = {"WebhookFunction"}  # an APIGatewayRestResolver: Powertools' event handler


def start(sb: Sandbox, logical_id: str, event_file: Path | None) -> dict[str, Any]:
    assert sb.stack is not None
    spec = sb.function(logical_id)
    layers = os.pathsep.join(str(d) for d in layer_dirs(sb.stack, sb.root))
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(spec.code_dir),
            layers,
            spec.handler,
            str(event_file or ""),
            spec.function_name,
        ],
        check=True,
        capture_output=True,
        text=True,
        env=sb.function_env(logical_id),
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_importing_a_handler_builds_no_client_and_loads_lxml_only_where_ncip_is_spoken(
    sb: Sandbox, logical_id: str
) -> None:
    started = start(sb, logical_id, None)
    assert started["at_import"] == []
    assert "aws_xray_sdk" not in started["heavy"]  # tracing is off (XRayTracing PassThrough)
    # no function imports Powertools' batch utility or its parser models (the steps' batches are
    # intake.batch's): importing them cost a step about 85 ms of CPU at each cold start; only the webhook's
    # HTTP router (Powertools' event handler) loads the event data classes
    powertools = [m for m in started["heavy"] if m.startswith("aws_lambda_powertools")]
    assert powertools == (["aws_lambda_powertools.utilities.data_classes"] if logical_id in ROUTERS else [])
    if logical_id in NO_NCIP:
        assert "lxml" not in started["heavy"]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_two_invocations_build_each_client_once(sb: Sandbox, logical_id: str, tmp_path: Path) -> None:
    event = events.load(FUNCTIONS[logical_id])
    if logical_id == "WebhookFunction":
        from sandbox.demo import WEBHOOK_SECRETS

        event = events.resign(event, WEBHOOK_SECRETS["east"])
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    first, second = start(sb, logical_id, event_file)["runs"]
    assert second == []  # a warm invocation builds nothing
    assert len({session for _, session in first}) == 1, first  # one boto3 session: models loaded once
    built = Counter(service for service, _ in first)
    assert built["ssm"] <= 1 and built["secretsmanager"] <= 1
    # one DynamoDB client, the store's
    assert built["dynamodb"] == 1, first
    assert all(count == 1 for count in built.values()), first
