"""One place that builds the shared logger, tracer and metrics (Powertools)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "reshare-wms-bridge"
NAMESPACE = "ReShareWmsBridge"

# One count per run that waits out an outage of ReShare or WMS (a step put off, a poll or reconciliation that
# could not reach them): the one alarm of an outage watches it (template.yaml, OutageAlarm).
OUTAGE_METRIC = "OutageWaits"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def redact(value: Any, private: Iterable[str]) -> Any:
    """``value`` (text, or dicts and lists of them) with every private string (a patron barcode) masked."""
    hidden = sorted({p for p in private if p and len(p) > 4}, key=len, reverse=True)
    if not hidden:
        return value
    if isinstance(value, str):
        for secret in hidden:
            value = value.replace(secret, mask(secret))
        return value
    if isinstance(value, dict):
        return {k: redact(v, hidden) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, hidden) for v in value]
    return value


def mask(value: str | None, keep: int = 4) -> str:
    """Mask a secret or a patron barcode for logs: only the last ``keep`` characters are shown."""
    if not value:
        return ""
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]
