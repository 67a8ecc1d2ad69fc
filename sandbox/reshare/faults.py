"""Injected faults (`/_sim/faults`) and the API call log (`/_sim/calls`).

A fault matches API calls (never `/_sim/` ones) whose path starts with `path_prefix` (`"*"`: every path)
and, if given, whose method is `method`. It fires `times` times (`-1`: until cleared). Kinds:

- `http_error`: answer `status` (default 503) with a JSON error; the call is not processed.
- `latency`: wait `latency_ms`, then process normally.
- `timeout`: hold the connection `timeout_s` seconds (default 30), then close it with no answer; the call is
  not processed.
- `expire_token`: the token presented on the matching call counts as expired (401), and stays expired.
- `drop_response`: process the call (e.g. performAction is applied), then close the connection with no answer.

`probability` (0 < p <= 1, default 1) makes a fault fire on that share of the calls it matches, drawn from
the fault's own `random.Random(seed)` (`seed`: an integer, or absent for an unseeded one), so a seeded run
replays the same faults; a call a fault passes over goes on to the next matching fault (the chaos suite,
bench/chaos.py, stacks 5xx and token expiries this way).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from .state import bad

KINDS = ("http_error", "latency", "timeout", "expire_token", "drop_response")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


@dataclass
class Fault:
    id: int
    path_prefix: str
    kind: str
    method: str | None = None
    status: int = 503
    latency_ms: int = 0
    timeout_s: float = 30.0
    times: int = 1
    fired: int = 0
    probability: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def fires(self) -> bool:
        return self.probability >= 1.0 or self._rng.random() < self.probability

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return self.path_prefix == "*" or path.startswith(self.path_prefix)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # dataclass fields only (not the random generator)


def _number(spec: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad(f"{key} must be a number between {low} and {high}")
    return value


class FaultBook:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise bad("a fault is a JSON object")
        unknown = set(spec) - {
            "path_prefix",
            "method",
            "kind",
            "status",
            "latency_ms",
            "timeout_s",
            "times",
            "probability",
            "seed",
        }
        if unknown:
            raise bad(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise bad(f"kind must be one of {', '.join(KINDS)}")
        prefix = spec.get("path_prefix", "*")
        if not isinstance(prefix, str) or not (prefix == "*" or prefix.startswith("/")):
            raise bad('path_prefix must be "*" or a path starting with /')
        if prefix.startswith("/_sim"):
            raise bad("faults cannot target /_sim/ endpoints")
        method = spec.get("method")
        if method is not None and (not isinstance(method, str) or method.upper() not in METHODS):
            raise bad(f"method must be one of {', '.join(METHODS)}")
        times = spec.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or times == 0 or times < -1:
            raise bad("times must be a positive integer, or -1 for until cleared")
        status = int(_number(spec, "status", 503, 400, 599))
        probability = spec.get("probability", 1.0)
        if (
            isinstance(probability, bool)
            or not isinstance(probability, int | float)
            or not 0 < probability <= 1
        ):
            raise bad("probability must be a number greater than 0 and at most 1")
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise bad("seed must be an integer")
        with self._lock:
            fault = Fault(
                id=next(self._ids),
                path_prefix=prefix,
                kind=kind,
                method=method.upper() if method else None,
                status=status,
                latency_ms=int(_number(spec, "latency_ms", 0, 0, 120_000)),
                timeout_s=float(_number(spec, "timeout_s", 30, 0, 600)),
                times=times,
                probability=float(probability),
                seed=seed,
            )
            self._faults.append(fault)
            return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this call, counted as fired (and dropped when used up)."""
        with self._lock:
            for fault in list(self._faults):
                if fault.matches(method, path) and fault.fires():
                    fault.fired += 1
                    if fault.times != -1 and fault.fired >= fault.times:
                        self._faults.remove(fault)
                    return fault
            return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def clear(self) -> int:
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count


class CallLog:
    """The last `limit` API calls: method, path, query, tenant, status, action, fault."""

    def __init__(self, lock: threading.RLock, limit: int = 10_000) -> None:
        self._lock = lock
        self._calls: deque[dict[str, Any]] = deque(maxlen=limit)

    def record(self, **call: Any) -> None:
        with self._lock:
            self._calls.append({"time": time.time(), **call})

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
