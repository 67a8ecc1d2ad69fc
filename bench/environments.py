"""What the sandbox's execution environments cost (``sandbox/runtime/functions.py``).

Each concurrent invocation of a function runs in an environment of its own; a free one is reused (warm), a new
one executes the handler module again (cold). Measured on a real step handler (LendShipped: Powertools batch
processing of one record that is not a bridge event, so the whole batch fails: the cheapest full run through
the handler): ``invocations`` warm invocations one at a time, then as many in ``threads`` overlapping threads
(each running invocation needs an environment of its own: more are made as needed), and what making one
environment costs. The figure that matters is the ratio of the overlapping run's time per invocation to the
warm one's: environments must not make concurrency slower.

``python -m bench.environments`` prints the figures of one run as JSON.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

from sandbox.runtime import HandlerError, Sandbox

FUNCTION = "LendShippedFunction"


def _event(sb: Sandbox) -> dict[str, Any]:
    arn = f"arn:aws:sqs:eu-west-1:123456789012:{sb.physical_name('LendShippedQueue')}"
    record = {
        "messageId": "bench",
        "receiptHandle": "bench",
        "body": "not a bridge event",
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "eu-west-1",
    }
    return {"Records": [record]}


def _invoke(sb: Sandbox, event: dict[str, Any]) -> None:
    with contextlib.suppress(HandlerError):  # every record failed: the batch fails, as intended
        sb.invoke(FUNCTION, event)


def run(invocations: int = 200, threads: int = 4) -> dict[str, Any]:
    with Sandbox(background=False, visibility=1) as sb:
        event = _event(sb)
        _invoke(sb, event)  # the first environment is warm now
        started = time.perf_counter()
        for _ in range(invocations):
            _invoke(sb, event)
        sequential = time.perf_counter() - started

        spec = sb.function(FUNCTION)
        cold_started = time.perf_counter()
        module = sb.functions._new_environment(spec)  # type: ignore[union-attr]
        cold = time.perf_counter() - cold_started
        spec._free.append(module)  # free for the overlapping run

        per_thread = invocations // threads
        barrier = threading.Barrier(threads)

        def worker() -> None:
            barrier.wait()
            for _ in range(per_thread):
                _invoke(sb, event)

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        started = time.perf_counter()
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        overlapping = time.perf_counter() - started
        environments = len(sb.function(FUNCTION).environments)
    warm_each = sequential / invocations
    overlapping_each = overlapping / (per_thread * threads)
    return {
        "invocations": invocations,
        "threads": threads,
        "warm_ms": round(warm_each * 1000, 3),
        "overlapping_ms": round(overlapping_each * 1000, 3),
        "ratio": round(overlapping_each / warm_each, 2),
        "cold_environment_ms": round(cold * 1000, 3),
        "environments": environments,
    }


def line(result: dict[str, Any]) -> str:
    return (
        f"| {result['invocations']} | {result['threads']} | {result['warm_ms']} ms | {result['overlapping_ms']} ms"
        f" | {result['ratio']}x | {result['cold_environment_ms']} ms | {result['environments']} |"
    )


if __name__ == "__main__":
    print(json.dumps(run()))
