"""A burst of changes at mod-rs's second precision, read by the poller (a test and a benchmark share it).

mod-rs renders ``lastUpdated`` to the second and its sort has no tie-break, so many rows share one
``lastUpdated`` and come back in a different order on every call. The scenario: ``size`` lender requests in
``west`` (their first sighting polled away), then each one changes state once (``supplierPrintPullSlip``), the
lending side of ``west`` being polled as the schedule polls it:
the first ``before`` changes one per second, then ``tied`` changes inside one second, then the rest one per
second. With ``before`` = 80 and ``tied`` = 40 the tied second straddles the boundary between the first two
pages of 100. Then the poller runs as the schedule runs it, until a poll finds nothing new, and every
transition it put on the bus is counted.

``python -m bench.burst`` prints the figures of one run as JSON (``make bench`` puts them in RESULTS.md).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.reshare.records import ItemSpec

START = datetime(2031, 1, 1, 9, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_burst(
    sb: Any,
    *,
    size: int = 300,
    before: int = 80,
    tied: int = 40,
    max_polls: int = 30,
    start: datetime = START,
) -> dict[str, Any]:
    """Drive the burst in ``sb`` (a started sandbox with the demo libraries, its simulator's clock not past
    ``start``); the poller's results."""
    from illbridge.intake.outbox import deliver_pending
    from illbridge.intake.polling import poll_side
    from illbridge.models import ReShareRequestChanged, Side
    from illbridge.wiring import current_services

    store = sb.reshare.store
    store.set_clock(_iso(start), step_ms=1000)
    lenders = []
    for n in range(size):
        borrower = store.create_pair(
            "east",
            "west",
            {"title": f"Burst {n}", "patron_identifier": "EAST-P-0001", "pickup_location_slug": "east-main"},
            [ItemSpec(f"WEST-BURST-{n:05d}")],
        )
        assert borrower.partner is not None
        lenders.append(borrower.partner[1])

    services = current_services()
    west = services.configs.get("west")

    def poll() -> None:  # the lending side of west, as the scheduled poller polls it
        report = poll_side(services.ports, west, Side.LENDING)
        assert report.error is None, report.error
        # and what the next scheduled run delivers first (poll_all): the outbox, which ReShare transitions no
        # longer use (they are put on the bus before they are recorded), so it stays empty here
        deliver_pending(services, west.reshare.tenant)

    emitted: list[Any] = []
    real_send = services.bus.send

    def recording_send(items: Any) -> Any:  # the way onto the bus: count what the bus took
        put, not_put, reason = real_send(items)
        taken = [detail for key, _, detail in items if key in put]
        emitted.extend(ReShareRequestChanged.model_validate_json(detail) for detail in taken)
        return put, not_put, reason

    services.bus.send = recording_send  # type: ignore[method-assign]
    try:
        poll()  # the first sighting of every request
        emitted.clear()

        # the burst, an hour after the set-up (beyond the cursor's overlap)
        burst_start = start + timedelta(hours=1)
        store.set_clock(_iso(burst_start), step_ms=1000)
        for lender in lenders[:before]:
            store.perform_action("west", lender, {"action": "supplierPrintPullSlip", "actionParams": {}})
        tied_at = burst_start + timedelta(hours=1)
        store.set_clock(_iso(tied_at), step_ms=0)
        for lender in lenders[before : before + tied]:
            store.perform_action("west", lender, {"action": "supplierPrintPullSlip", "actionParams": {}})
        store.set_clock(_iso(tied_at + timedelta(seconds=1)), step_ms=1000)
        for lender in lenders[before + tied :]:
            store.perform_action("west", lender, {"action": "supplierPrintPullSlip", "actionParams": {}})
        store.set_clock(None)

        calls_before = len([c for c in sb.reshare.calls.list() if c.get("path") == "/rs/patronrequests"])
        polls = 0
        began = time.perf_counter()
        first_poll_s = 0.0
        while polls < max_polls:
            count = len(emitted)
            poll()
            polls += 1
            if polls == 1:
                first_poll_s = time.perf_counter() - began
            if len(emitted) == count and polls > 1:
                break
        list_calls = (
            len([c for c in sb.reshare.calls.list() if c.get("path") == "/rs/patronrequests"]) - calls_before
        )
    finally:
        services.bus.send = real_send  # type: ignore[method-assign]

    lending = [event for event in emitted if event.side == "lending" and event.tenant == "west"]
    per_request = Counter(event.request_id for event in lending)
    return {
        "size": size,
        "tied_in_one_second": tied,
        "tied_positions": f"{before + 1}-{before + tied}",
        "polls": polls,
        "list_calls": list_calls,
        "lending_transitions": len(lending),
        "distinct_requests": len(per_request),
        "emitted_twice": sorted(rid for rid, n in per_request.items() if n > 1),
        "missing": sorted(set(lenders) - set(per_request)),
        "states": sorted({event.state for event in lending}),
        "first_poll_s": round(first_poll_s, 3),
    }


def measure() -> dict[str, Any]:
    from sandbox.runtime import Sandbox

    sb = Sandbox(background=False, visibility=1).start()
    try:
        return run_burst(sb)
    finally:
        sb.stop()


def line(result: dict[str, Any]) -> str:
    return (
        f"| {result['size']} | {result['tied_in_one_second']} (rows {result['tied_positions']}) | "
        f"{result['lending_transitions']} | {result['distinct_requests']} | {len(result['emitted_twice'])} | "
        f"{len(result['missing'])} | {result['polls']} | {result['list_calls']} | {result['first_poll_s']} s |"
    )


if __name__ == "__main__":
    import logging

    logging.disable(logging.CRITICAL)
    print(json.dumps(measure()))
