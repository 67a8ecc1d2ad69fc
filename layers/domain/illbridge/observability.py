"""One place that builds the shared logger, tracer and metrics (Powertools)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from aws_lambda_powertools import Logger, Metrics

SERVICE = "reshare-wms-bridge"
NAMESPACE = "ReShareWmsBridge"

# One count per run that waits out an outage of ReShare or WMS (a step put off, a poll or reconciliation that
# could not reach them): the one alarm of an outage watches it (template.yaml, OutageAlarm).
OUTAGE_METRIC = "OutageWaits"


def tracing_on(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether invocations are traced in X-Ray: on Lambda, with the template's ``XRayTracing`` set to Active.

    Powertools' own rule (``Tracer._is_tracer_disabled``): not when ``POWERTOOLS_TRACE_DISABLED`` is true, and
    not outside Lambda or under ``sam local``. Decided here so that, when tracing is off, the X-Ray SDK (which
    Powertools' Tracer imports even when disabled, with botocore's session behind it) is never imported.
    """
    if environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in {"1", "true", "yes", "on", "y"}:
        return False
    return bool(environ.get("LAMBDA_TASK_ROOT")) and not environ.get("AWS_SAM_LOCAL")


class Untraced:
    """What the handlers use of Powertools' ``Tracer`` when tracing is off: the same decorators, doing nothing."""

    def capture_lambda_handler(self, handler: Callable[..., Any] | None = None, **_: Any) -> Any:
        return handler if handler is not None else (lambda function: function)

    def capture_method(self, method: Callable[..., Any] | None = None, **_: Any) -> Any:
        return method if method is not None else (lambda function: function)

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        return None


def _tracer() -> Any:
    if not tracing_on():
        return Untraced()
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


logger = Logger(service=SERVICE)
tracer = _tracer()
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
