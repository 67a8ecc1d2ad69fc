"""``python -m bench``: run every benchmark and rewrite bench/RESULTS.md with the figures of this run (the chaos
suite's rows are kept). ``python -m bench chaos --pairs 300 --seed N``: one chaos run (bench/chaos.py), its
table printed and its row put in bench/RESULTS.md (replacing the row of the same seed and size)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench import burst, calls, chaos, coldstart, environments, layer, poller, queues, reconcile, transactions

RESULTS = Path(__file__).with_name("RESULTS.md")
T = TypeVar("T")
RECONCILE_INTRO = """N request pairs west lends to east: west's bridge watches N items on loan to one partner account
(ILL-EAST), east's N temp items held for one patron (EAST-P-0001). One reconciliation run per library with every
check due, per check-in probe (the WMS simulator with `lookup_item=supported` so both can run). LookupUser, the
default, costs one call per patron or partner account whatever N; LookupItem one per item. Token requests:
the token cached from the steps before is reused (0 new ones)."""


def in_process(module: str) -> Any:
    """``python -m <module>``'s last line of output, as JSON."""
    out = subprocess.run([sys.executable, "-m", module], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    if sys.argv[1:2] == ["chaos"]:
        return chaos.main(sys.argv[2:], results=RESULTS)
    load_before = os.getloadavg()[0]
    took: dict[str, float] = {}  # seconds each benchmark took, in the order run
    loads = [load_before]

    def timed(name: str, run: Callable[[], T]) -> T:
        began = time.perf_counter()
        result = run()
        took[name] = time.perf_counter() - began
        loads.append(os.getloadavg()[0])
        print(f"{name}: {took[name]:.1f} s (load {loads[-1]:.1f})", file=sys.stderr, flush=True)
        return result

    began = time.perf_counter()
    layer_result = timed("layer", layer.run)
    coldstart_result = timed("coldstart", coldstart.run)
    calls_result = timed("calls", calls.run)
    queues_result = timed("queues", queues.run)
    results = timed("poller", poller.run)
    transaction_results = timed("transactions", transactions.run)
    reconcile_results = timed("reconcile", reconcile.run)
    burst_result = timed("burst", lambda: in_process("bench.burst"))
    environments_result = timed("environments", lambda: in_process("bench.environments"))
    total = time.perf_counter() - began
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    load = (
        f"load average {load_before:.1f} when it began, {os.getloadavg()[0]:.1f} when it ended, "
        f"{max(loads):.1f} at its highest between benchmarks"
    )
    times = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items())
    text = f"""# Benchmark results

Written by `make bench` (`python -m bench`) on {datetime.now(UTC):%Y-%m-%d} ({machine};
{load}). Compare the ratios within one run: these machines are shared and absolute times move from run to run.

The run took {total / 60:.0f} min {total % 60:.0f} s (the target: under 15 minutes): {times}.

## The ReShare poller (`bench/poller.py`)

One poll of every library and side in the sandbox, after N request pairs whose lender has shipped were
created; moto and the ReShare simulator run in processes of their own (`Sandbox(apart=True)`), so the memory
figures are the bridge's process alone. The first poll finds every transition and puts it on the bus; the
repeat poll re-reads the same changes (cursor overlap) and finds none: that is the steady cost per changed
request, which must stay flat as N grows, with memory that does not grow with N (one page of 100 requests,
the requests of the current second, at most 10 events; at 50 pairs each listing fills half a page). Memory:
tracemalloc's peak during a third poll, and the resident set's growth while the timed poll ran.

{poller.table(results)}

History: before the poller skipped requests already seen at their `lastUpdated` (2026-11-29), a repeat poll
made three DynamoDB calls per request (a read and two refused conditional writes) and cost 13.5 ms per
request at 50 and 200 pairs on this kind of machine; it is one read now.

## A burst at mod-rs's second precision (`bench/burst.py`)

300 lender requests each change state once; 40 of the changes share one second (mod-rs renders `lastUpdated`
to the second, and its sort has no tie-break: the simulator shuffles ties on every call) and straddle the
boundary between the first two pages of 100. The lending side is polled until a poll finds nothing new. What
must hold: every transition on the bus exactly once, none missing.

| changes | in one second | transitions put | distinct requests | twice | missing | polls | list calls | first poll |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{burst.line(burst_result)}

## Execution environments of the sandbox (`bench/environments.py`)

Each concurrent invocation of a function runs in an environment of its own (its own handler module), reused
when free. Warm invocations one at a time against the same number in overlapping threads, and the cost of
making one environment. What must hold: overlapping invocations are not slower per invocation than sequential
ones, and a cold environment costs no more than a few warm invocations.

| invocations | threads | warm, each | overlapping, each | ratio | one new environment | environments made |
|---:|---:|---:|---:|---:|---:|---:|
{environments.line(environments_result)}

## The domain layer (`bench/layer.py`)

The layer as `sam build` makes it (layers/domain/Makefile, arm64 wheels), without the AWS SDK the python3.12
runtime carries. Before 2026-11-30 the layer was built by SAM's python builder and weighed 61 MB, 30 MB of it
a botocore that aws-xray-sdk pulled in (newer than the one the tests ran, shadowing the runtime's); since the
evening of 2026-11-30 it ships its modules' bytecode (27 MB before).

| layer | largest packages |
|---:|---|
{layer.line(layer_result)}

## Cold start per function (`bench/coldstart.py`)

Each function in a fresh interpreter that sees what Lambda's python3.12 runtime sees (no site-packages; the
function's code, the domain layer as its Makefile builds it, with bytecode, and the runtime's SDK): its init
(importing the handler) against the floor (a fresh interpreter, `import boto3`, one DynamoDB client:
{coldstart_result["floor_ms"]} ms here, {coldstart_result["floor_cpu_ms"]} ms of CPU), the floor measured beside
each sample and the ratio taken on CPU time; the same init on the layer without its bytecode (as it shipped
before 2026-11-30); then its own sample event from `events/` twice against the sandbox: what the first
invocation costs over a warm one is what the handler builds lazily. Medians of {coldstart_result["runs"]}
processes.

{coldstart.table(coldstart_result)}

{calls.section(calls_result)}
## A step queue at its limit (`bench/queues.py`)

Lenders ship (each a record on the LendShipped queue: a SCIM look-up and a CheckOutItem in WMS, a ReShare read,
the step's DynamoDB writes) with WMS answering every call in {queues_result["latency_ms"]} ms. The queue's event
source mapping runs as Lambda runs it: `MaximumConcurrency` pollers, each invoking the function with a batch of up
to `BatchSize` records. The cap is `BatchSize` x `MaximumConcurrency` records at WMS at once; one record alone
takes t1 (a warm invocation with a batch of that one record), so at the cap the step finishes at most cap / t1
records a second. What must hold: the rate measured from the first poll to the last record done is at least 0.8
of that. Before (records of a batch one after another) for comparison, in the same run. moto and both
simulators run in processes of their own (`Sandbox(apart=True)`), the functions in the bench's.
{queues.cpu_note(queues_result)}.

{queues.table(queues_result)}

## WMS calls per reconciliation run (`bench/reconcile.py`)

{RECONCILE_INTRO}

{reconcile.table(reconcile_results)}

## DynamoDB transactions in the sandbox's moto (`bench/transactions.py`)

200 transactions of two puts each, in a table of N items, with moto's own `transact_write_items` (which
deep-copies every table a transaction names) and with the sandbox's (`sandbox/runtime/motofix.py`: only the
named items). What must hold: with the fix the cost does not grow with the table.

{transactions.table(transaction_results)}
"""
    text += chaos.section(RESULTS.read_text() if RESULTS.exists() else "")
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
