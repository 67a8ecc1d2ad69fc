"""Cold start of every function against the floor, each in a fresh interpreter as Lambda starts one.

The interpreters see what Lambda's python3.12 runtime sees, not the development venv: no site-packages
(``python -S -E -B``: no venv, no ``PYTHON*`` variables, no bytecode written, as /opt and /var/runtime are
read-only), and on ``sys.path`` only the function's code, the domain layer as layers/domain/Makefile builds it
for ``sam build`` (built here for this machine's platform: ``PLATFORM=``) and the runtime's SDK (boto3 and
botocore at the versions the tests run, with their dependencies, as pip installs them: with bytecode). The venv
has more (awscrt, pyOpenSSL: boto3 imports them when present, about 70 ms) and would flatter the floor.

The floor is what any Python function that talks to DynamoDB pays: a fresh interpreter, ``import boto3`` and
one DynamoDB client (the runtime's SDK alone on ``sys.path``). A function's cold start is a fresh interpreter
importing its handler module (Lambda's init phase, the function's environment from the template). Its
first invocation, with the function's own sample event from ``events/`` against the sandbox (moto server and
the two simulators over HTTP), then costs more than a warm one by what the handler builds lazily (clients,
configuration, secrets, tokens): that difference is the second figure. The same init is also run on a copy of
the layer without its bytecode (how the layer shipped before 2026-11-30): every module compiled from source.

Each figure is the median of ``runs`` fresh processes, run one after another. Init is given as wall time and as
the CPU time the process used (user + system): on a shared machine the CPU time moves less with the load, so
the ratios are taken on it. Compare the ratios: absolute times move with the machine's load.

``python -m bench.coldstart`` prints the figures of one run as JSON on its last line.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.layer import build
from sandbox import events
from sandbox.runtime import Sandbox

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

# argv: spawn time, the runtime's SDK directory
FLOOR = """
import json, resource, sys, time
sys.path[:0] = [sys.argv[2]]
import boto3
boto3.client("dynamodb")
ready = time.time() - float(sys.argv[1])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"init": ready, "cpu": usage.ru_utime + usage.ru_stime}))
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
import json, os, resource, sys, time, uuid
spawned, code_dir, layers, handler, event_file, name, timeout = sys.argv[1:8]
sys.path[:0] = [code_dir, *layers.split(os.pathsep)]
module_name, _, attribute = handler.rpartition(".")
module = __import__(module_name)
ready = time.time() - float(spawned)
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
handle = getattr(module, attribute)
if not event_file:
    print(json.dumps({"init": ready, "cpu": cpu}))
    sys.exit(0)
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
print(json.dumps({"init": ready, "cpu": cpu, "first": first, "warm": warm, "modules": len(sys.modules)}))
"""
)


# Lambda's interpreter: no site-packages, no PYTHON* variables, no bytecode written (its /opt and /var/runtime
# are read-only): sys.path is the standard library and what each script puts in front of it
LAMBDA_PYTHON = [sys.executable, "-S", "-E", "-B"]


def _spawn(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [*LAMBDA_PYTHON, "-c", script, repr(time.time()), *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def runtime_sdk(target: Path) -> Path:
    """boto3 and botocore as the tests run them (a consistent pair, tests/template/test_layer.py), with their
    dependencies and bytecode, in a directory of their own: the runtime's SDK (/var/runtime on Lambda)."""
    pins = [f"{name}=={metadata.version(name)}" for name in ("boto3", "botocore")]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            *pins,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def without_bytecode(python: Path, target: Path) -> Path:
    """A copy of the built layer without its bytecode: the layer as it shipped before 2026-11-30."""
    shutil.copytree(python, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def run(runs: int = 5) -> dict[str, Any]:
    with Sandbox(background=False) as sb, tempfile.TemporaryDirectory() as tmp:
        assert sb.stack is not None
        from sandbox.demo import WEBHOOK_SECRETS  # the layer is on sys.path once the sandbox runs

        sdk = runtime_sdk(Path(tmp) / "runtime")
        layer = build(Path(tmp) / "layer", platform="")
        source_only = without_bytecode(layer, Path(tmp) / "layer-source-only")
        functions, all_floors = {}, []
        for logical_id, sample in SAMPLES.items():
            spec = sb.function(logical_id)
            env = sb.function_env(logical_id)
            event = events.load(sample)
            if logical_id == "WebhookFunction":
                event = events.resign(event, WEBHOOK_SECRETS["east"])
            event_file = Path(tmp) / f"{logical_id}.json"
            event_file.write_text(json.dumps(event))
            samples, uncompiled, floors = [], [], []
            for _ in range(runs):  # the floor beside each sample: the ratio compares neighbours in time
                floors.append(_spawn(FLOOR, str(sdk), env=env))
                if logical_id == "WebhookFunction":  # a fresh webhook-id each run: not a replay
                    event = events.resign(event, WEBHOOK_SECRETS["east"])
                    event_file.write_text(json.dumps(event))
                paths = os.pathsep.join([str(layer), str(sdk)])
                args = (str(spec.code_dir), paths, spec.handler, str(event_file), spec.function_name)
                samples.append(_spawn(FUNCTION, *args, str(spec.timeout), env=env))
                paths = os.pathsep.join([str(source_only), str(sdk)])
                args = (str(spec.code_dir), paths, spec.handler, "", spec.function_name)
                uncompiled.append(_spawn(FUNCTION, *args, str(spec.timeout), env=env))
            init = statistics.median(s["init"] for s in samples)
            cpu = statistics.median(s["cpu"] for s in samples)
            floor_cpu = statistics.median(f["cpu"] for f in floors)
            all_floors += floors
            first = statistics.median(s["first"] for s in samples)
            warm = statistics.median(s["warm"] for s in samples)
            functions[logical_id] = {
                "init_ms": round(init * 1000, 1),
                "init_cpu_ms": round(cpu * 1000, 1),
                "floor_cpu_ms": round(floor_cpu * 1000, 1),
                "vs_floor": round(cpu / floor_cpu, 2),
                "source_only_cpu_ms": round(statistics.median(u["cpu"] for u in uncompiled) * 1000, 1),
                "first_ms": round(first * 1000, 1),
                "warm_ms": round(warm * 1000, 1),
                "first_over_warm_ms": round((first - warm) * 1000, 1),
                "modules": samples[-1]["modules"],
            }
    return {
        "runs": runs,
        "floor_ms": round(statistics.median(f["init"] for f in all_floors) * 1000, 1),
        "floor_cpu_ms": round(statistics.median(f["cpu"] for f in all_floors) * 1000, 1),
        "functions": functions,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| function | init (import) | its CPU | floor's CPU | vs floor (CPU) | CPU without bytecode | first invocation | warm"
        " | first over warm | modules loaded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in result["functions"].items():
        lines.append(
            f"| {name} | {f['init_ms']} ms | {f['init_cpu_ms']} ms | {f['floor_cpu_ms']} ms | {f['vs_floor']}x"
            f" | {f['source_only_cpu_ms']} ms"
            f" | {f['first_ms']} ms | {f['warm_ms']} ms | {f['first_over_warm_ms']} ms | {f['modules']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    result = run()
    print(table(result))
    print(json.dumps(result))
