"""One place that builds the shared logger, tracer and metrics (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "reshare-wms-bridge"
NAMESPACE = "ReShareWmsBridge"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def mask(value: str | None, keep: int = 4) -> str:
    """Mask a secret or a patron barcode for logs: only the last ``keep`` characters are shown."""
    if not value:
        return ""
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]
