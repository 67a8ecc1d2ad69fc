"""How one poll scales with the number of changed requests, in the sandbox (moto server + ReShare simulator).

For each size N, in a fresh process: create N request pairs whose lender has shipped (so each pair is two
changed requests, one of them a transition that some step reacts to; 5,000 pairs are 10,000 changes), then time
one poll of every library and side (above ``FIRST_POLL_UP_TO`` pairs, what it would leave behind is written
directly: ``seen_already``), counting the PutEvents calls it made, then a repeat poll (timed, and the
process's resident memory sampled every 5 ms while it runs) and a third one under tracemalloc (its peak: the
Python memory the poll held at once). moto and the ReShare simulator run in processes of their own
(``Sandbox(apart=True)``), so both memory figures are the bridge's process alone, as a Lambda function
instance holds it. What must hold: the cost per changed request stays flat as N grows (the poller pages and
flushes as it goes), PutEvents carries 10 entries per call, and the poll's memory does not grow with N (one
page of 100 requests, the requests of the current second, at most 10 events). Ratios are compared within one
run, never against fixed times (shared machines are noisy).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any

import requests

from bench.pairs import create_shipped_pairs

SIZES = (50, 500, 5000)  # 100, 1,000 and 10,000 changed requests (50 pairs: half a page per listing)
FIRST_POLL_UP_TO = 1000  # pairs; above, the poller's state is written as a first poll would leave it (below)


def seen_already(ports: Any) -> None:
    """What a first poll leaves behind (each request's last-seen state, the cursors), written directly: in the
    sandbox a first poll of 10,000 changes spends most of an hour of one shared core in moto, recording one
    transition at a time, and what is measured here is the repeat poll (one read per request). The listing is
    the poller's own (the bridge's ReShare client); the rows are what ``record_state_change`` writes."""
    from datetime import timedelta

    from illbridge.models import Side
    from illbridge.store import keys
    from illbridge.timeutil import epoch_ms

    store = ports.store
    for library_id in ports.configs.library_ids():
        config = ports.configs.get(library_id)
        tenant = config.reshare.tenant
        reshare = ports.reshare(config)
        for side in (Side.BORROWING, Side.LENDING):
            highest = None
            with store._table.batch_writer() as batch:
                for request in reshare.changed_since(
                    is_requester=side == Side.BORROWING, since=ports.clock() - timedelta(days=1)
                ):
                    at = request.last_updated
                    if at is None:
                        continue
                    batch.put_item(
                        Item={
                            "pk": keys.request_pk(tenant, request.id),
                            "sk": keys.SEEN_SK,
                            "kind": "seen",
                            "state": request.state.code,
                            "last_updated": keys.timestamp(at),
                            "last_updated_ms": epoch_ms(at),
                            "changed_at": keys.timestamp(ports.clock()),
                            "states_at": {request.state.code},
                        }
                    )
                    highest = at if highest is None or at > highest else highest
            if highest is not None:
                store.advance_cursor(tenant, side.value, highest)


def resident_kib() -> int:
    """This process's resident set now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class ResidentPeak:
    """The highest resident set of this process while the block runs, sampled every 5 ms."""

    def __enter__(self) -> ResidentPeak:
        gc.collect()
        self.before = self.peak = resident_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, resident_kib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_kib())


def measure(size: int) -> dict[str, Any]:
    from sandbox.runtime import Sandbox

    sb = Sandbox(background=False, visibility=1, apart=True).start()
    try:
        with requests.Session() as http:
            create_shipped_pairs(http, sb.urls["reshare"], size, "WEST-BENCH")
        from illbridge.intake.polling import poll_all
        from illbridge.wiring import current_services

        services = current_services()
        client = services.bus.client
        calls: list[int] = []
        real_put = client.put_events

        def counting_put(**kwargs: Any) -> Any:
            calls.append(len(kwargs["Entries"]))
            return real_put(**kwargs)

        client.put_events = counting_put
        began = time.perf_counter()
        if size <= FIRST_POLL_UP_TO:
            poll_all(services.ports)  # first sight of every request (a new deployment): each one a transition
        else:
            seen_already(services.ports)
        first = time.perf_counter() - began
        gc.collect()
        with ResidentPeak() as resident:
            began = time.perf_counter()
            reports = poll_all(
                services.ports
            )  # nothing new: the cost of reading N changes and finding no transition
            idle = time.perf_counter() - began
        tracemalloc.start()  # memory in a third poll of its own: tracemalloc slows what it traces
        poll_all(services.ports)
        _, idle_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {
            "size": size,
            "changed_requests": sum(r.seen for r in reports),
            "first_poll_s": round(first, 3),
            "first_poll_put_calls": len(calls),
            "first_poll_entries_per_call": round(sum(calls) / len(calls), 2) if calls else 0,
            "max_entries_per_call": max(calls, default=0),
            "repeat_poll_s": round(idle, 3),
            "repeat_poll_ms_per_request": round(1000 * idle / max(1, sum(r.seen for r in reports)), 3),
            "repeat_poll_peak_kib": round(idle_peak / 1024, 1),
            "resident_before_kib": resident.before,
            "resident_growth_kib": resident.peak - resident.before,
        }
    finally:
        sb.stop()


def run() -> list[dict[str, Any]]:
    results = []
    for size in SIZES:  # one process per size: one sandbox per process, and no warm state carried over
        out = subprocess.run(
            [sys.executable, "-m", "bench.poller", str(size)], check=True, capture_output=True, text=True
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def table(results: list[dict[str, Any]]) -> str:
    base = results[0]["repeat_poll_ms_per_request"] or 1
    lines = [
        "| pairs | changed requests seen | first poll | PutEvents calls | entries per call (max) "
        "| repeat poll | per request | vs smallest | the poll's Python memory (peak) | vs smallest, vs the row above "
        "| resident set before, growth during the poll |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    smallest = results[0]["repeat_poll_peak_kib"] or 1
    above = None
    for r in results:
        peak_ratio = f"{r['repeat_poll_peak_kib'] / smallest:.2f}x, " + (
            f"{r['repeat_poll_peak_kib'] / above:.2f}x" if above else "-"
        )
        above = r["repeat_poll_peak_kib"] or 1
        if r["size"] > FIRST_POLL_UP_TO:
            first = f"(written directly: {r['first_poll_s']} s) | - | - "
        else:
            first = (
                f"{r['first_poll_s']} s | {r['first_poll_put_calls']} | "
                f"{r['first_poll_entries_per_call']} ({r['max_entries_per_call']}) "
            )
        lines.append(
            f"| {r['size']} | {r['changed_requests']} | {first}| {r['repeat_poll_s']} s | "
            f"{r['repeat_poll_ms_per_request']} ms | {r['repeat_poll_ms_per_request'] / base:.2f}x | "
            f"{r['repeat_poll_peak_kib']} KiB | {peak_ratio} "
            f"| {r['resident_before_kib'] / 1024:.1f} MiB, +{r['resident_growth_kib']} KiB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import logging

    logging.disable(logging.CRITICAL)
    print(json.dumps(measure(int(sys.argv[1]))))
