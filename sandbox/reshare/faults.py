"""Injected faults (`/_sim/faults`) and the API call log (`/_sim/calls`).

A fault matches API calls (never `/_sim/` ones) whose path starts with `path_prefix` (`"*"`: every path)
and, if given, whose method is `method`. It fires `times` times (`-1`: until cleared). Kinds:

- `http_error`: answer `status` (default 503) with a JSON error; the call is not processed.
- `latency`: wait `latency_ms`, then process normally.
- `timeout`: hold the connection `timeout_s` seconds (default 30), then close it with no answer; the call is
  not processed.
- `expire_token`: the token presented on the matching call counts as expired (401), and stays expired.
- `drop_response`: process the call (e.g. performAction is applied), then close the connection with no answer.
"""

from __future__ import annotations

import itertools
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

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return self.path_prefix == "*" or path.startswith(self.path_prefix)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
        unknown = set(spec) - {"path_prefix", "method", "kind", "status", "latency_ms", "timeout_s", "times"}
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
            )
            self._faults.append(fault)
            return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this call, counted as fired (and dropped when used up)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
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
