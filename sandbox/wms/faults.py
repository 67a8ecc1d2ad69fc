"""Injected faults and the request log."""

from __future__ import annotations

from typing import Any

from .records import (
    FAULT_KINDS,
    FAULT_OPERATIONS,
    REQUEST_LOG_LIMIT,
    Fault,
    _int,
    _new_id,
    iso,
    utcnow,
)
from .tokens import TokenState


def _probability(spec: dict[str, Any]) -> tuple[float, int | None]:
    """``probability`` (0 < p <= 1, default 1: every matching call) and ``seed`` (an integer or absent)."""
    probability = spec.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 < probability <= 1:
        raise ValueError("probability must be a number greater than 0 and at most 1")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed must be an integer")
    return float(probability), seed


class FaultState(TokenState):
    # -- faults and log -------------------------------------------------------------------------------
    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        operation = spec.get("operation", "*")
        kind = spec.get("kind")
        if operation not in FAULT_OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(FAULT_OPERATIONS)}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        fault = Fault(fault_id=_new_id("fault"), operation=operation, kind=kind)
        fault.latency_ms = _int(spec, "latency_ms", 0, minimum=0)
        fault.status = _int(spec, "status", 503, minimum=100)
        if fault.status > 599:
            raise ValueError("status must be an HTTP status (100-599)")
        fault.times = _int(spec, "times", 1, minimum=-1)
        if fault.times == 0:
            raise ValueError("times must be positive or -1 (until cleared)")
        timeout = spec.get("timeout_s", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError("timeout_s must be a non-negative number")
        fault.timeout_s = float(timeout)
        fault.probability, fault.seed = _probability(spec)
        fault.rng.seed(fault.seed)
        if spec.get("problem_type") is not None:
            fault.problem_type = str(spec["problem_type"])
        if spec.get("problem_detail") is not None:
            fault.problem_detail = str(spec["problem_detail"])
        with self.lock:
            self.faults.append(fault)
            return fault.to_dict()

    def list_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.to_dict() for f in self.faults]

    def clear_faults(self) -> int:
        with self.lock:
            count = len(self.faults)
            self.faults.clear()
            return count

    def take_fault(self, operation: str) -> Fault | None:
        """Consume one use of the first fault matching ``operation`` (or ``*``) that fires (``probability``)."""
        with self.lock:
            for fault in list(self.faults):
                if fault.operation in (operation, "*") and fault.fires():
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self.faults.remove(fault)
                    return fault
            return None

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry = {"time": iso(utcnow()), **entry}
            self.requests_log.append(entry)
            if len(self.requests_log) > REQUEST_LOG_LIMIT:
                del self.requests_log[: len(self.requests_log) - REQUEST_LOG_LIMIT]
