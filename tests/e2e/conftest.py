"""The whole bridge in one process: moto server, both simulators, the template's functions, queues, bus."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from illbridge.config import ReShareSettings
from illbridge.config.loader import settings_parameter
from illbridge.reshare.client import ReShareClient
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox

DEMO_PASSWORDS = {"east": "east-password", "west": "west-password"}
DEMO_SYMBOLS = {"east": "RESHARE:EAST", "west": "RESHARE:WEST"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(gateway_port=0, reshare_port=0, wms_port=0, moto_port=0, background=False, visibility=1)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


class Library:
    """Staff of one demo library, acting in ReShare (as the bridge's own client does) and in WMS."""

    def __init__(self, sb: Sandbox, tenant: str) -> None:
        self.sb = sb
        self.tenant = tenant
        self.reshare = ReShareClient(
            ReShareSettings(
                base_url=sb.urls["reshare"],
                tenant=tenant,
                username="bridge",
                password=DEMO_PASSWORDS[tenant],
                symbol=DEMO_SYMBOLS[tenant],
            )
        )

    def act(self, request_id: str, action: str, params: dict[str, Any] | None = None) -> None:
        self.reshare.perform_action(request_id, action, params or {})

    def state(self, request_id: str) -> str:
        return self.reshare.get_request(request_id).state.code


def sim(sb: Sandbox, system: str, method: str, path: str, **body: Any) -> Any:
    answer = requests.request(method, f"{sb.urls[system]}/_sim/{path}", json=body or None, timeout=10)
    assert answer.status_code < 300, (path, answer.status_code, answer.text)
    return answer.json()


def create_pair(sb: Sandbox, **overrides: Any) -> dict[str, Any]:
    body = {
        "borrower_tenant": "east",
        "lender_tenant": "west",
        "title": "The Name of the Rose",
        "author": "Eco, Umberto",
        "publisher": "Harcourt",
        "publication_date": "1983",
        "patron_barcode": "EAST-P-0001",
        "pickup_location_slug": "east-main",
        "volumes": [{"item_barcode": "WEST-ITEM-0001", "call_number": "PQ4865.C6 N6"}],
        "lender_state": "RES_AWAIT_PICKING",
        **overrides,
    }
    return sim(sb, "reshare", "POST", "requests", **body)


def other_library(sb: Sandbox, tenant: str = "north") -> ReShareClient:
    """A ReShare library that is not a bridge library (symbol RESHARE:<TENANT>, pickup location <tenant>-main),
    and its staff's client; created once per sandbox (the simulator's tenant call is an upsert)."""
    sim(
        sb,
        "reshare",
        "POST",
        "tenants",
        tenant=tenant,
        symbol=f"RESHARE:{tenant.upper()}",
        username="bridge",
        password=f"{tenant}-password",
        settings={"host_lms_integration": "manual", "request_id_prefix": f"{tenant.upper()}-"},
        pickup_locations=[{"slug": f"{tenant}-main", "name": tenant.title(), "lmsLocationCode": "111111"}],
    )
    return ReShareClient(
        ReShareSettings(
            base_url=sb.urls["reshare"],
            tenant=tenant,
            username="bridge",
            password=f"{tenant}-password",
            symbol=f"RESHARE:{tenant.upper()}",
        )
    )


def ship(sb: Sandbox, pair: dict[str, Any], item_barcodes: list[str]) -> None:
    """The lender (west) checks the items in to ReShare and ships them; the bridge catches up."""
    Library(sb, "west").act(
        pair["lender"]["id"],
        "supplierCheckInToReshareAndSupplierMarkShipped",
        {"itemBarcodes": [{"itemId": b} for b in item_barcodes]},
    )
    settle(sb)


def ship_and_receive(sb: Sandbox, pair: dict[str, Any], item_barcodes: list[str]) -> tuple[Library, Library]:
    """Shipped by the lender, received by the borrower (east), the bridge caught up: (east, west)."""
    ship(sb, pair, item_barcodes)
    east = Library(sb, "east")
    east.act(pair["borrower"]["id"], "requesterReceived", {"note": "arrived"})
    settle(sb)
    return east, Library(sb, "west")


@contextlib.contextmanager
def reconciliation_due(hours: float = 2) -> Iterator[None]:
    """The bridge's clock ``hours`` ahead (default two): every open mapping's first reconciliation check is
    due; a later look needs a later clock (checks back off, up to the library's 24-hour ceiling)."""
    services = current_services()
    real_clock = services.clock
    services.clock = lambda: real_clock() + timedelta(hours=hours)
    try:
        yield
    finally:
        services.clock = real_clock


def settle(sb: Sandbox, rounds: int = 6) -> None:
    """Let the bridge catch up: poll ReShare, run every step queue until quiet (retries included)."""
    for _ in range(rounds):
        sb.run_schedule("ReSharePollerFunction")
        processed = sb.drain(wait_invisible=True)
        sb.run_schedule("WmsReconcilerFunction")
        processed += sb.drain(wait_invisible=True)
        if processed == 0:
            return


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merged(base.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


@contextlib.contextmanager
def library_settings(sb: Sandbox, library_id: str, **changes: Any) -> Iterator[None]:
    """Staff change a library's settings where a deployment keeps them (SSM; nested dicts are merged), and the
    functions see it at once (their configuration cache is cleared); the old settings are put back after."""
    ssm = sb.boto3_client("ssm")
    name = settings_parameter(sb.env.get("CONFIG_PREFIX", "/reshare-wms-bridge"), library_id)
    original = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    configs = current_services().configs
    try:
        changed = _merged(json.loads(original), changes)
        ssm.put_parameter(Name=name, Value=json.dumps(changed), Type="String", Overwrite=True)
        configs.ssm.clear_cache()  # the functions' cached configuration would otherwise last max_age
        yield
    finally:
        ssm.put_parameter(Name=name, Value=original, Type="String", Overwrite=True)
        configs.ssm.clear_cache()
