"""Outages are waited out, not escalated: a step that meets a ReShare or WMS outage is put off with exponential
backoff (30 s doubling to 15 minutes) up to the library's ``outage_deadline_hours`` (24 h), using no SQS receives
and no attempts, so a 12-hour outage (simulated time) ends with every request done by itself within 15 minutes
of recovery, every dead-letter queue empty and no attention item."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from illbridge.models import StepName, StepStatus
from illbridge.reshare.client import ReShareClient
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import Library, create_pair, library_settings, sim

pytestmark = pytest.mark.e2e

HOUR = 3600


@pytest.fixture
def quick_reshare_client() -> Iterator[None]:
    """The bridge's ReShare client without its own pauses between read retries (real seconds, not simulated)."""
    services = current_services()
    factory = services.reshare_factory
    services.reshare_factory = lambda config: ReShareClient(config.reshare, backoff=0)
    services._reshare.clear()
    try:
        yield
    finally:
        services.reshare_factory = factory
        services._reshare.clear()


def outage(sb: Sandbox, system: str) -> None:
    if system == "wms":
        sim(sb, "wms", "POST", "faults", operation="*", kind="http_error", status=503, times=-1)
    else:
        sim(sb, "reshare", "POST", "faults", path_prefix="*", kind="http_error", status=503, times=-1)


def recovery(sb: Sandbox, system: str) -> None:
    requests.delete(f"{sb.urls[system]}/_sim/faults", timeout=10).raise_for_status()


def shipped_and_received(sb: Sandbox, items: list[str]) -> list[dict[str, Any]]:
    """Pairs whose lender shipped and whose borrower received, seen by the poller: two steps queued each."""
    for item in items:  # west's own items, on its shelf
        sim(sb, "wms", "POST", "items", registry_id="262626", barcode=item, branch="262626", title="Outage")
    pairs = [create_pair(sb, volumes=[{"item_barcode": item}]) for item in items]
    west, east = Library(sb, "west"), Library(sb, "east")
    for pair, item in zip(pairs, items, strict=True):
        west.act(
            pair["lender"]["id"],
            "supplierCheckInToReshareAndSupplierMarkShipped",
            {"itemBarcodes": [{"itemId": item}]},
        )
        east.act(pair["borrower"]["id"], "requesterReceived", {"note": "arrived"})
    assert sb.run_schedule("ReSharePollerFunction").ok
    return pairs


def steps(pairs: list[dict[str, Any]]) -> list[Any]:
    store = current_services().store
    return [
        store.get_step(tenant, pair[side]["id"], step)
        for pair in pairs
        for tenant, side, step in (
            ("east", "borrower", StepName.BORROW_RECEIVED),
            ("west", "lender", StepName.LEND_SHIPPED),
        )
    ]


def dead_letters(sb: Sandbox) -> dict[str, int]:
    sqs = sb.boto3_client("sqs")
    assert sb.resources is not None
    counts = {}
    for logical_id in sb.resources.queues:
        if logical_id.endswith("DeadLetterQueue"):
            attributes = sqs.get_queue_attributes(
                QueueUrl=sb.queue_url(logical_id), AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            counts[logical_id] = int(attributes["ApproximateNumberOfMessages"])
    return counts


@pytest.mark.parametrize("system", ["wms", "reshare"])
@pytest.mark.usefixtures("quick_reshare_client")
def test_a_12_hour_outage_is_waited_out_and_every_request_completes_within_15_minutes_of_recovery(
    sandbox: Sandbox, system: str
) -> None:
    sb = sandbox
    items = {"wms": ["WEST-ITEM-0911", "WEST-ITEM-0912"], "reshare": ["WEST-ITEM-0921", "WEST-ITEM-0922"]}[
        system
    ]
    # Given two pairs whose lender shipped and borrower received, their four steps queued
    pairs = shipped_and_received(sb, items)
    store = current_services().store
    dead_before = dead_letters(sb)
    # When the system goes down for 12 hours (simulated; the queues are looked at once an hour, each step
    # being put off 15 minutes at most, so each runs once per hour here)
    outage(sb, system)
    began = sb.now()
    while (sb.now() - began).total_seconds() < 12 * HOUR:
        sb.drain()
        # the schedules run too: a poll (or reconciliation) that cannot reach the system waits, it does not fail
        run = sb.run_schedule("ReSharePollerFunction" if system == "reshare" else "WmsReconcilerFunction")
        assert run.ok and not run.dead_lettered, run.error
        sb.advance(HOUR)
    if system == "reshare":
        assert run.result["waiting"] == 4  # both sides of both libraries
    # Then, all that time, no step finished, gave up or asked for staff, and no message was dead-lettered
    waiting = steps(pairs)
    assert all(s is not None and s.status == StepStatus.RETRYABLE for s in waiting), waiting
    assert all(s.waits >= 12 for s in waiting)  # more tries than MaxReceives (5): waiting consumes none
    assert dead_letters(sb) == dead_before
    for tenant in ("east", "west"):
        assert [
            a
            for a in store.list_attention(tenant)
            if a.request_id in {p[k]["id"] for p in pairs for k in ("borrower", "lender")}
        ] == []

    # When the system is back, Then every step has finished by itself within 15 minutes
    recovery(sb, system)
    back = sb.now()
    while not all(s is not None and s.status == StepStatus.SUCCEEDED for s in steps(pairs)):
        assert (sb.now() - back).total_seconds() <= 15 * 60, [
            (s.step, s.status, s.attempt, s.waits, s.last_error) for s in steps(pairs)
        ]
        sb.advance(60)
        sb.drain()
    sb.drain(wait_invisible=True)
    # and its effects are there once: one temp item per borrowed item, the lent items on loan to the borrower
    temp = [t["barcode"] for t in sim(sb, "wms", "GET", "temp-items?registry_id=128807")]
    assert sorted(b for b in temp if b in {p["hrid"] for p in pairs}) == sorted(p["hrid"] for p in pairs)
    loans = [
        loan["item_barcode"]
        for loan in sim(sb, "wms", "GET", "loans?registry_id=262626")
        if loan["item_barcode"] in items and loan["active"]
    ]
    assert sorted(loans) == sorted(items)
    # with no attention item, every dead-letter queue as it was, and no waiting left on the steps
    ids = {p[k]["id"] for p in pairs for k in ("borrower", "lender")}
    for tenant in ("east", "west"):
        assert [a for a in store.list_attention(tenant) if a.request_id in ids] == []
    assert dead_letters(sb) == dead_before
    assert all(s.waiting_since is None and s.waits == 0 for s in steps(pairs))


@pytest.mark.usefixtures("quick_reshare_client")
def test_an_outage_longer_than_the_library_s_deadline_becomes_one_attention_item_per_step(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    with (
        library_settings(sb, "east", outage_deadline_hours=2),
        library_settings(sb, "west", outage_deadline_hours=2),
    ):
        # Given libraries that wait two hours, and a pair whose two steps are queued
        [pair] = shipped_and_received(sb, ["WEST-ITEM-0931"])
        # When WMS stays down for three hours
        outage(sb, "wms")
        try:
            began = sb.now()
            while (sb.now() - began).total_seconds() < 3 * HOUR:
                sb.drain()
                sb.advance(HOUR)
            sb.drain()
        finally:
            recovery(sb, "wms")
        # Then each step gave up once, with one attention item saying how long it waited and what to do
        store = current_services().store
        assert [s.status for s in steps([pair])] == [StepStatus.FAILED, StepStatus.FAILED]
        for tenant, side in (("east", "borrower"), ("west", "lender")):
            [item] = [a for a in store.list_attention(tenant) if a.request_id == pair[side]["id"]]
            assert item.reason.startswith("still failing after 2 h (the library waits 2 h)"), item.reason
            assert "reachable again" in item.fix and item.retry


@pytest.mark.usefixtures("quick_reshare_client")
def test_a_poll_whose_host_lms_check_falls_due_during_a_reshare_outage_waits_instead_of_failing(
    sandbox: Sandbox,
) -> None:
    """Found by the full suite on a loaded machine: the poller re-reads each tenant's host_lms_integration every
    15 minutes (real time); when that fell due during a ReShare outage, the unreachable ReShare was reported as
    a misconfigured tenant, so the poll failed (retries, ScheduleDeadLetterQueue) instead of waiting."""
    from illbridge.intake import checks

    sb = sandbox
    outage(sb, "reshare")
    try:
        checks._verified.clear()  # the 15-minute re-check of every tenant is due now
        run = sb.run_schedule("ReSharePollerFunction")
        assert run.ok and not run.dead_lettered, run.error
        assert run.result["waiting"] == 4  # both sides of both libraries wait
    finally:
        recovery(sb, "reshare")
    assert sb.run_schedule("ReSharePollerFunction").ok
