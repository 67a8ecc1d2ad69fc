"""A step queue at its limit: throughput with WMS answering in 200 ms, against the step's cap.

In the sandbox (moto, both simulators over HTTP, the template's functions): M lenders ship (each a
``RES_ITEM_SHIPPED`` on the LendShipped queue: a SCIM look-up of the borrowing institution's account and a
CheckOutItem in WMS, a ReShare read, the step's DynamoDB writes), with the WMS simulator holding every answer
200 ms (its ``latency`` fault). The queue's event source mapping runs as Lambda runs it: ``MaximumConcurrency``
pollers, each invoking the function with a batch of up to ``BatchSize`` records (``QueuePoller.start``).

The cap is the records of one step at WMS at once: ``BatchSize`` x ``MaximumConcurrency``. One record alone
takes t1 (the function's invocation with a batch of that one record, warm); at the cap the step can finish at
most cap / t1 records a second. The measured rate is the records over the time from the first poll to the last
record done (so it includes the mapping's polls and its batching window). What must hold: the rate is at least
0.8 of cap / t1. The same is measured with the records of a batch one
after another (``illbridge.intake.queue.WORKERS`` = 1, as before) for comparison. Ratios within one run only.

moto and both simulators run in processes of their own (``Sandbox(apart=True)``), so the bench's process holds
what a function instance holds and the rate is the queue's, not bounded by one process running everything;
the CPU each process used while the records ran side by side is measured (``/proc/<pid>/stat``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from typing import Any

LATENCY_MS = 200
FUNCTION = "LendShippedFunction"
RECORDS = 41  # side by side: 40 records, whole rounds of the cap (10)
SERIAL_RECORDS = 20  # one after another, for comparison


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU a process has used (Linux ``/proc/<pid>/stat``; this process without a pid)."""
    with open(f"/proc/{pid or 'self'}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Waits:
    """Seconds this process's threads spent waiting on each system's calls (DynamoDB, EventBridge, SQS through
    botocore; WMS and ReShare through requests), summed over the calls (they overlap when records do)."""

    def __init__(self, hosts: dict[str, str]) -> None:
        import botocore.client
        import requests

        self.hosts = hosts  # "host:port" -> system
        self.lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        waits = self
        real_call = botocore.client.BaseClient._make_api_call
        real_send = requests.Session.send

        def make_api_call(client: Any, operation: str, params: Any) -> Any:
            began = time.perf_counter()
            try:
                return real_call(client, operation, params)
            finally:
                waits.add(client.meta.service_model.service_name, time.perf_counter() - began)

        def send(session: Any, request: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return real_send(session, request, **kwargs)
            finally:
                netloc = request.url.split("/")[2]
                waits.add(waits.hosts.get(netloc, netloc), time.perf_counter() - began)

        botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        requests.Session.send = send  # type: ignore[method-assign]

    def add(self, system: str, seconds: float) -> None:
        with self.lock:
            self.seconds[system] = self.seconds.get(system, 0.0) + seconds

    def now(self) -> dict[str, float]:
        with self.lock:
            return dict(self.seconds)


def measure(records: int = RECORDS, serial_records: int = SERIAL_RECORDS) -> dict[str, Any]:

    from bench.chaos import Chaos
    from sandbox.runtime import Sandbox

    sb = Sandbox(background=False, visibility=None, apart=True).start()
    try:
        from illbridge.intake import queue as step_queue

        poller = next(p for p in sb.pollers.values() if p.source.function == FUNCTION)
        done = [0]
        changed = threading.Condition()
        real_invoke = sb.functions.invoke

        handler_seconds: list[float] = []
        batches: list[tuple[int, float]] = []  # (records, seconds) of each invocation
        servers = {"moto": sb._moto.pid, "ReShare simulator": sb.reshare.pid, "WMS simulator": sb.wms.pid}
        cpu: list[dict[str, float]] = []  # CPU seconds per process (the functions' and each server's) per run

        waits = Waits({sb.urls[name].split("/")[2]: name for name in ("wms", "reshare")})
        waited: list[dict[str, float]] = []  # seconds waited per system, per run

        def cpu_now() -> dict[str, float]:
            return {"functions": cpu_seconds(), **{name: cpu_seconds(pid) for name, pid in servers.items()}}

        def invoke(logical_id: str, event: Any) -> Any:
            began = time.perf_counter()
            try:
                return real_invoke(logical_id, event)
            finally:
                if logical_id == FUNCTION:
                    handler_seconds.append(time.perf_counter() - began)
                    batches.append((len(event.get("Records", [])), handler_seconds[-1]))
                    with changed:
                        done[0] += len(event.get("Records", []))
                        changed.notify_all()

        sb.functions.invoke = invoke
        world = Chaos(sb, 1 + records + serial_records, seed=3)
        world.create()
        sb.drain()
        pairs = world.pairs

        def ship(some: list[Any]) -> None:
            for pair in some:
                world.act(
                    pair.lender,
                    pair.ids["lender"],
                    "supplierCheckInToReshareAndSupplierMarkShipped",
                    {"itemBarcodes": [{"itemId": item} for item in pair.items]},
                )
            sb.run_schedule("ReSharePollerFunction")  # the transitions onto the bus, so onto the queue

        def run(some: list[Any]) -> float:
            """Ship ``some`` (their records wait on the queue), then let the mapping's pollers work them off."""
            ship(some)
            target = done[0] + len(some)
            cpu_began = cpu_now()
            waits_began = waits.now()
            began = time.perf_counter()
            poller._stop = threading.Event()  # a stopped poller starts again
            poller.start()
            try:
                with changed:
                    if not changed.wait_for(lambda: done[0] >= target, timeout=600):
                        raise RuntimeError(f"{FUNCTION}: {target - done[0]} records not processed")
                elapsed = time.perf_counter() - began
                cpu.append({name: spent - cpu_began[name] for name, spent in cpu_now().items()})
                waited.append(
                    {name: spent - waits_began.get(name, 0.0) for name, spent in waits.now().items()}
                )
                return elapsed
            finally:
                poller.stop()

        world.sim("wms", "POST", "faults", operation="*", kind="latency", latency_ms=LATENCY_MS, times=-1)
        run(pairs[:1])  # alone (and the token fetched: later records reuse it, as a warm instance does)
        run(pairs[1:2])
        one = min(handler_seconds[-2:])  # one record's invocation, warm: what one record takes at WMS
        before = len(batches)
        concurrent = run(pairs[2 : 2 + records - 1])
        side_by_side = batches[before:]
        workers, step_queue.WORKERS = step_queue.WORKERS, 1  # a batch's records one after another
        try:
            serial = run(pairs[1 + records : 1 + records + serial_records])
        finally:
            step_queue.WORKERS = workers
        checked = world.count()
        source = poller.source
        cap = source.batch_size * source.max_concurrency
        t1 = one
        ideal = cap / t1
        rate = (records - 1) / concurrent
        serial_rate = serial_records / serial
        return {
            "latency_ms": LATENCY_MS,
            "batch_size": source.batch_size,
            "max_concurrency": source.max_concurrency,
            "cap": cap,
            "one_record_s": round(t1, 3),
            "records": records - 1,
            "seconds": round(concurrent, 2),
            "per_second": round(rate, 2),
            "of_cap": round(rate / ideal, 2),
            "of_n_per_latency": round(rate / (source.max_concurrency / (LATENCY_MS / 1000)), 2),
            "serial_records": serial_records,
            "serial_seconds": round(serial, 2),
            "serial_per_second": round(serial_rate, 2),
            "serial_of_cap": round(serial_rate / ideal, 2),
            "serial_of_n_per_latency": round(serial_rate / (source.max_concurrency / (LATENCY_MS / 1000)), 2),
            "cpu_per_record_s": {name: round(spent / (records - 1), 3) for name, spent in cpu[2].items()},
            "cpu_busy": {name: round(spent / concurrent, 2) for name, spent in cpu[2].items()},
            "cpus": os.cpu_count(),
            # seconds a record waited on each system: alone (the second single run, warm) and side by side
            "waits_alone": {name: round(spent, 3) for name, spent in sorted(waited[1].items())},
            "waits_side_by_side": {
                name: round(spent / (records - 1), 3) for name, spent in sorted(waited[2].items())
            },
            "invocations": len(side_by_side),
            "records_per_invocation": round(sum(n for n, _ in side_by_side) / len(side_by_side), 2),
            "invocation_s": round(sum(t for _, t in side_by_side) / len(side_by_side), 3),
            "invocation_s_max": round(max(t for _, t in side_by_side), 3),
            "duplicates": len(checked["duplicates"]),
            "refused": len(world.refused),
        }
    finally:
        sb.stop()


def run() -> dict[str, Any]:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "bench.queues"], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def table(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| records of a batch | cap (BatchSize x MaximumConcurrency) | one record alone | records "
            "| time | records/s | of the cap (cap / one record alone) | of N / 200 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            f"| side by side | {r['batch_size']} x {r['max_concurrency']} = {r['cap']} | {r['one_record_s']} s "
            f"| {r['records']} | {r['seconds']} s | {r['per_second']} | **{r['of_cap']}** "
            f"| {r['of_n_per_latency']} |",
            f"| one after another (before) | {r['cap']} | {r['one_record_s']} s | {r['serial_records']} "
            f"| {r['serial_seconds']} s | {r['serial_per_second']} | {r['serial_of_cap']} "
            f"| {r['serial_of_n_per_latency']} |",
        ]
    )


def cpu_note(r: dict[str, Any]) -> str:
    """Where the CPU went while the records ran side by side, per process."""
    per = r["cpu_per_record_s"]
    busy = r["cpu_busy"]
    parts = ", ".join(f"{name} {per[name]} s ({busy[name]} of a core)" for name in per)
    total_busy = round(sum(busy.values()), 2)
    alone, side = r["waits_alone"], r["waits_side_by_side"]
    waits = ", ".join(
        f"{name} {alone.get(name, 0.0)} s alone, {side[name]} s side by side"
        for name in ("dynamodb", "wms", "reshare")
        if name in side
    )
    return (
        f"CPU per record, by process (and how busy each was): {parts}; together {total_busy} of the "
        f"machine's {r['cpus']} cores. A full batch's invocation took {r['invocation_s']} s on average "
        f"({r['records_per_invocation']} records; one record alone {r['one_record_s']} s). Seconds a record "
        f"waited on each system's calls: {waits}"
    )


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    with contextlib.redirect_stdout(io.StringIO()):  # the functions' metrics (EMF) go to stdout
        result = measure()
    print(table(result))
    print(json.dumps(result))
