"""Cold start of every function against the floor, each in a fresh interpreter as Lambda starts one.

The floor is what any Python function that talks to DynamoDB pays: a fresh interpreter, ``import boto3`` and
one DynamoDB client. A function's cold start is a fresh interpreter importing its handler module (Lambda's
init phase: the layer on ``sys.path`` as ``/opt/python``, the function's environment from the template). Its
first invocation, with the function's own sample event from ``events/`` against the sandbox (moto server and
the two simulators over HTTP), then costs more than a warm one by what the handler builds lazily (clients,
configuration, secrets, tokens): that difference is the second figure.

Each figure is the median of ``runs`` fresh processes, run one after another. Compare the ratios: absolute
times move with the machine's load.

``python -m bench.coldstart`` prints the figures of one run as JSON on its last line.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sandbox import events
from sandbox.runtime import Sandbox
from sandbox.runtime.functions import layer_dirs

# one sample per function: what its trigger hands it (events/README.md)
SAMPLES = {
    "ReSharePollerFunction": "reshare_poller/scheduled.json",
    "WmsReconcilerFunction": "wms_reconciler/scheduled.json",
    "WebhookFunction": "webhook/reshare-status-changed.json",
    "BorrowReceivedFunction": "borrow_received/item-received.json",
    "BorrowReturnedFunction": "borrow_returned/patron-returned.json",
    "LendShippedFunction": "lend_shipped/item-shipped.json",
    "LendReturnedFunction": "lend_returned/request-complete.json",
    "RequestClosedFunction": "request_closed/cancelled.json",
}

FLOOR = """
import sys, time
import boto3
boto3.client("dynamodb")
print(time.time() - float(sys.argv[1]))
"""

# Lambda's context object for a handler run in a plain interpreter: the script defines ``name`` (the
# function's) and ``timeout`` (seconds) first, and imports json, time and uuid
CONTEXT = """

class Context:
    function_name = name
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:" + name
    memory_limit_in_mb = "256"
    log_group_name = "/aws/lambda/" + name
    log_stream_name = "bench"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + float(timeout)

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)

"""

# argv: spawn time, code dir, layer dirs (os.pathsep-joined), handler, event file, function name, timeout
FUNCTION = (
    """
import json, os, sys, time, uuid
spawned, code_dir, layers, handler, event_file, name, timeout = sys.argv[1:8]
sys.path[:0] = [code_dir, *layers.split(os.pathsep)]
module_name, _, attribute = handler.rpartition(".")
module = __import__(module_name)
ready = time.time() - float(spawned)
handle = getattr(module, attribute)
event = json.loads(open(event_file).read())
"""
    + CONTEXT
    + """

def invoke():
    started = time.perf_counter()
    try:
        handle(json.loads(json.dumps(event)), Context())
    except Exception:
        pass  # a failed run costs what it costs: the figure is the time, not the outcome
    return time.perf_counter() - started


first = invoke()
warm = sorted(invoke() for _ in range(3))[1]
print(json.dumps({"init": ready, "first": first, "warm": warm, "modules": len(sys.modules)}))
"""
)


def _spawn(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", script, repr(time.time()), *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return out.strip().splitlines()[-1]


def run(runs: int = 5) -> dict[str, Any]:
    with Sandbox(background=False) as sb, tempfile.TemporaryDirectory() as tmp:
        assert sb.stack is not None
        from sandbox.demo import WEBHOOK_SECRETS  # the layer is on sys.path once the sandbox runs

        layers = ":".join(str(d) for d in layer_dirs(sb.stack, sb.root))
        floor = statistics.median(
            float(_spawn(FLOOR, env=sb.function_env("ReSharePollerFunction"))) for _ in range(runs)
        )
        functions = {}
        for logical_id, sample in SAMPLES.items():
            spec = sb.function(logical_id)
            event = events.load(sample)
            if logical_id == "WebhookFunction":
                event = events.resign(event, WEBHOOK_SECRETS["east"])
            event_file = Path(tmp) / f"{logical_id}.json"
            event_file.write_text(json.dumps(event))
            samples = []
            for _ in range(runs):
                if logical_id == "WebhookFunction":  # a fresh webhook-id each run: not a replay
                    event = events.resign(event, WEBHOOK_SECRETS["east"])
                    event_file.write_text(json.dumps(event))
                args = (str(spec.code_dir), layers, spec.handler, str(event_file), spec.function_name)
                samples.append(
                    json.loads(_spawn(FUNCTION, *args, str(spec.timeout), env=sb.function_env(logical_id)))
                )
            init = statistics.median(s["init"] for s in samples)
            first = statistics.median(s["first"] for s in samples)
            warm = statistics.median(s["warm"] for s in samples)
            functions[logical_id] = {
                "init_ms": round(init * 1000, 1),
                "vs_floor": round(init / floor, 2),
                "first_ms": round(first * 1000, 1),
                "warm_ms": round(warm * 1000, 1),
                "first_over_warm_ms": round((first - warm) * 1000, 1),
                "modules": samples[-1]["modules"],
            }
    return {"runs": runs, "floor_ms": round(floor * 1000, 1), "functions": functions}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| function | init (import) | vs floor | first invocation | warm | first over warm | modules loaded |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in result["functions"].items():
        lines.append(
            f"| {name} | {f['init_ms']} ms | {f['vs_floor']}x | {f['first_ms']} ms | {f['warm_ms']} ms"
            f" | {f['first_over_warm_ms']} ms | {f['modules']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    result = run()
    print(table(result))
    print(json.dumps(result))
