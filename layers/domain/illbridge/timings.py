"""How long each outbound call of a function may take: the budgets its timeout must hold.

Every figure comes from the function's settings, that is from ``template.yaml`` (the Globals environment and
each function's own), so one place sets them and ``tests/template/test_timings.py`` checks that they fit
together (docs/reliability.md, "Timings"):

- a step's lease is longer than its function's timeout and shorter than its queue's visibility timeout;
- a function's timeout x 6 is at most its queue's visibility timeout (AWS's advice for SQS event sources);
- each outbound call's worst case (timeout x tries, with the pauses between tries) fits in its function's
  timeout, and the webhook's ReShare read, bus put and one DynamoDB call together fit in API Gateway's 29 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from illbridge.bus import BusTimings
from illbridge.reshare.client import BACKOFF_CAP_SECONDS
from illbridge.settings import BridgeSettings

API_GATEWAY_LIMIT_SECONDS = 29.0  # REST API integration timeout
VISIBILITY_PER_FUNCTION_TIMEOUT = 6  # AWS: visibility timeout >= 6 x the function's timeout
WMS_TRIES = 2  # a 401 makes the WMS client fetch a new token and send once more (no other retries: NCIP)


@dataclass(frozen=True, slots=True)
class CallBudget:
    """One kind of outbound call: its (connect, read) timeouts, how many tries, and the pauses between."""

    system: str
    connect: float
    read: float
    tries: int
    pauses: float = 0.0

    @property
    def worst_case_seconds(self) -> float:
        return self.tries * (self.connect + self.read) + self.pauses


def reshare_budget(settings: BridgeSettings) -> CallBudget:
    tries = settings.reshare_read_tries
    first = settings.reshare_backoff_seconds  # the first pause between read tries (then doubling, capped)
    pauses = sum(min(BACKOFF_CAP_SECONDS, first * 2 ** (n - 1)) for n in range(1, tries))
    return CallBudget(
        "ReShare", settings.reshare_connect_timeout, settings.reshare_read_timeout, tries, pauses
    )


def wms_budget(settings: BridgeSettings) -> CallBudget:
    return CallBudget("WMS", settings.wms_connect_timeout, settings.wms_max_read_timeout, WMS_TRIES)


def dynamodb_budget(settings: BridgeSettings) -> CallBudget:
    return CallBudget("DynamoDB", settings.aws_connect_timeout, settings.aws_read_timeout, settings.aws_tries)


def bus_timings(settings: BridgeSettings) -> BusTimings:
    return BusTimings(
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        sdk_attempts=settings.aws_tries,
        entry_attempts=settings.bus_entry_tries,
        backoff_seconds=settings.bus_backoff_seconds,
    )


def bus_budget(settings: BridgeSettings) -> CallBudget:
    timings = bus_timings(settings)
    calls = timings.sdk_attempts * timings.entry_attempts
    pauses = timings.worst_case_seconds - calls * (timings.connect_timeout + timings.read_timeout)
    return CallBudget("EventBridge", timings.connect_timeout, timings.read_timeout, calls, pauses)


def budgets(settings: BridgeSettings) -> list[CallBudget]:
    """Every kind of outbound call a function may make, as its settings configure them."""
    return [reshare_budget(settings), wms_budget(settings), dynamodb_budget(settings), bus_budget(settings)]


def wms_read_timeout(settings: BridgeSettings, configured: float) -> float:
    """A library's WMS read timeout (``wms.timeout_seconds``), capped by what the function's timeout holds."""
    return min(float(configured), settings.wms_max_read_timeout)


def botocore_config(settings: BridgeSettings) -> Any:
    """The botocore ``Config`` of the bridge's DynamoDB and EventBridge clients (timeouts, tries)."""
    from botocore.config import Config

    return Config(
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
        retries={"mode": "standard", "total_max_attempts": settings.aws_tries},
    )
