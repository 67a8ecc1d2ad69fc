"""A second copy of an event (SQS and the bus deliver at least once; the poller may put one again) costs little
and changes nothing: for every route of every step, once the step is SUCCEEDED, SKIPPED, FAILED or in progress,
the copy makes no WMS or ReShare call and no write but at most the one refused claim of its step; in progress it
is put off. Staff's retry (``source="ops"``, after the step is released) still runs the step. There is no
separate idempotency record: the step's own record decides (``intake/queue.py``, ``workflow/notices.py``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import illbridge.intake.queue as step_queue
from illbridge.errors import StepAlreadyClaimed, StepAlreadyDone, StepDeferred, WmsProblem
from illbridge.models import ReShareRequestChanged, Side, StepName, StepStatus, WmsItemCheckedIn
from illbridge.workflow.steps import routes
from tests.unit.workflow.fakes import World, check_in_notice
from tests.unit.workflow.test_step_rules import (
    ACCOUNT,
    PATRON,
    borrower_request,
    change,
    lender_request,
    library,
)

STORE_WRITES = (
    "claim_step",
    "complete_step",
    "add_history",
    "create_mapping",
    "save_mapping",
    "raise_attention",
    "resolve_attention",
)


class Outside:
    """What a delivery did outside the step's code: WMS and ReShare calls, store writes (a refused claim
    counted apart), events put on the bus."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.writes: list[str] = []
        self.refused: list[str] = []
        for name in STORE_WRITES:
            self._count(name)
        self.reset()

    def _count(self, name: str) -> None:
        write = getattr(self.world.store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                answer = write(*args, **kwargs)
            except (StepAlreadyDone, StepAlreadyClaimed):
                self.refused.append(name)
                raise
            if name != "resolve_attention" or answer:  # resolving nothing writes nothing
                self.writes.append(name)
            return answer

        setattr(self.world.store, name, counted)

    def reset(self) -> None:
        self.writes.clear()
        self.refused.clear()
        self.wms_calls = len(self.world.wms.faults.calls)
        self.reshare_calls = len(self.world.reshare.faults.calls)
        self.events = len(self.world.bus.events)

    def since_reset(self) -> dict[str, Any]:
        return {
            "wms": self.world.wms.faults.calls[self.wms_calls :],
            "reshare": self.world.reshare.faults.calls[self.reshare_calls :],
            "writes": list(self.writes),
            "refused": list(self.refused),
            "events": self.world.bus.events[self.events :],
        }


NOTHING = {"wms": [], "reshare": [], "writes": [], "events": []}


def nothing_but_one_refused_claim(done: dict[str, Any]) -> None:
    assert {k: v for k, v in done.items() if k != "refused"} == NOTHING
    assert done["refused"] in ([], ["claim_step"])


@pytest.fixture
def world() -> World:
    w = World(library())
    w.wms.patron(PATRON)
    w.wms.patron(ACCOUNT)
    return w


def deliver(world: World, function: str, event: Any) -> Any:
    return routes(function)[event.DETAIL_TYPE](world.services, event)


def reshare_change(world: World, function: str, request: Any) -> Callable[[], Any]:
    """ReShare holds ``request``; the returned callable delivers (a copy of) its change to ``function``."""
    world.reshare.requests[request.id] = request
    event = change(request)
    return lambda: deliver(world, function, event.model_copy())


@dataclass(frozen=True)
class CheckedIn:
    """What a WMS check-in of one side's item names: its request, barcode, step and step function."""

    request_id: str
    barcode: str
    step: StepName
    function: str


CHECKED_IN = {
    Side.BORROWING: CheckedIn("b-1", "EAST-1", StepName.BORROW_WMS_RETURNED, "borrow_returned"),
    Side.LENDING: CheckedIn("l-1", "EAST-ITEM-0001", StepName.LEND_WMS_RETURNED, "lend_returned"),
}


def notice(world: World, side: Side, barcode: str, request_id: str, source: str) -> Callable[[], Any]:
    event = check_in_notice(side.value, barcode, request_id, source)
    return lambda: deliver(world, CHECKED_IN[side].function, event.model_copy())


def received(world: World) -> Callable[[], Any]:
    return reshare_change(world, "borrow_received", borrower_request())


def shipped(world: World) -> Callable[[], Any]:
    return reshare_change(world, "lend_shipped", lender_request())


# Every route reached by a ReShare change, with what comes before it (arrange) and its event (the first copy
# and the duplicate are the same event).
RESHARE_ROUTES: dict[str, tuple[Callable[[World], None], Callable[[World], Callable[[], Any]], StepName]] = {
    "borrow_received": (lambda w: None, received, StepName.BORROW_RECEIVED),
    "borrow_returned": (
        lambda w: received(w)(),
        lambda w: reshare_change(w, "borrow_returned", borrower_request("REQ_SHIPPED_TO_SUPPLIER")),
        StepName.BORROW_RETURNED,
    ),
    "lend_shipped": (lambda w: None, shipped, StepName.LEND_SHIPPED),
    "lend_returned": (
        lambda w: shipped(w)(),
        lambda w: reshare_change(w, "lend_returned", lender_request("RES_COMPLETE")),
        StepName.LEND_RETURNED,
    ),
    "request_closed (borrowing)": (
        lambda w: received(w)(),
        lambda w: reshare_change(w, "request_closed", borrower_request("REQ_CANCELLED")),
        StepName.REQUEST_CLOSED,
    ),
    "request_closed (lending)": (
        lambda w: shipped(w)(),
        lambda w: reshare_change(w, "request_closed", lender_request("RES_CANCELLED")),
        StepName.REQUEST_CLOSED,
    ),
}


def request_of(step: StepName, route: str) -> str:
    lending = route.startswith("lend") or "lending" in route
    return "l-1" if lending else "b-1"


@pytest.mark.parametrize("route", sorted(RESHARE_ROUTES))
def test_a_copy_after_the_step_succeeded_costs_one_refused_claim(world: World, route: str) -> None:
    arrange, event, _ = RESHARE_ROUTES[route]
    arrange(world)
    deliver_it = event(world)
    assert deliver_it().status == StepStatus.SUCCEEDED  # the first copy does the work
    outside = Outside(world)
    result = deliver_it()
    assert result.detail == {"duplicate": True}
    done = outside.since_reset()
    nothing_but_one_refused_claim(done)
    assert done["refused"] == ["claim_step"]


@pytest.mark.parametrize("status", [StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.FAILED])
@pytest.mark.parametrize("route", sorted(RESHARE_ROUTES))
def test_a_copy_of_a_reshare_change_for_a_settled_step_stops_at_its_claim(
    world: World, route: str, status: StepStatus
) -> None:
    # Given the step settled (however it got there) and everything the step would act on in place
    arrange, event, step = RESHARE_ROUTES[route]
    arrange(world)
    deliver_it = event(world)
    world.store.set_step("east", request_of(step, route), step, status)
    outside = Outside(world)
    # When a copy of its event arrives; Then only its claim is tried, and refused
    assert deliver_it().detail == {"duplicate": True}
    done = outside.since_reset()
    nothing_but_one_refused_claim(done)
    assert done["refused"] == ["claim_step"]


@pytest.mark.parametrize("route", sorted(RESHARE_ROUTES))
def test_a_copy_of_a_reshare_change_while_the_step_runs_is_put_off(world: World, route: str) -> None:
    arrange, event, step = RESHARE_ROUTES[route]
    arrange(world)
    deliver_it = event(world)
    world.store.set_step("east", request_of(step, route), step, StepStatus.IN_PROGRESS)
    outside = Outside(world)
    with pytest.raises(StepDeferred) as deferred:
        deliver_it()
    assert deferred.value.delay_seconds == 120  # until the lease could be over
    done = outside.since_reset()
    nothing_but_one_refused_claim(done)


@pytest.mark.parametrize("route", sorted(RESHARE_ROUTES))
def test_a_staff_retry_of_a_failed_step_runs_it(world: World, route: str) -> None:
    # Given the step failed and staff released it (illbridge retry: FAILED -> RETRYABLE)
    arrange, event, step = RESHARE_ROUTES[route]
    arrange(world)
    deliver_it = event(world)
    request_id = request_of(step, route)
    world.store.set_step("east", request_id, step, StepStatus.RETRYABLE)
    first = deliver_it()
    # When staff's event (source "ops") arrives: Then the step runs to its end
    request = world.reshare.requests[request_id]
    retry = ReShareRequestChanged.model_validate({**change(request).model_dump(), "source": "ops"})
    world.store.set_step("east", request_id, step, StepStatus.RETRYABLE)
    outside = Outside(world)
    again = deliver(world, route.split(" ")[0], retry)
    assert first.status == again.status == StepStatus.SUCCEEDED and again.detail != {"duplicate": True}
    done = outside.since_reset()
    assert done["writes"][0] == "claim_step" and "complete_step" in done["writes"]
    assert done["wms"] or done["reshare"] or done["writes"][1:]  # the step did its work again


# --- WMS check-ins (borrow_wms_returned, lend_wms_returned) -----------------------------------------------


def wms_first(world: World, side: Side, source: str) -> Callable[[], Any]:
    """The request in WMS (received, or shipped) and the check-in notice of its item."""
    if side == Side.BORROWING:
        received(world)()
        mapping = world.store.get_mapping("east", "b-1")
        assert mapping is not None
        mapping.items[0].seen_on_loan = True  # reconciliation saw the patron's loan
        world.store.save_mapping(mapping)
        world.wms.temp_items.clear()  # WMS checked the temp item in: the probe confirms it
        world.wms.loans.pop("EAST-1", None)
        return notice(world, side, "EAST-1", "b-1", source)
    shipped(world)()
    world.wms.loans.pop("EAST-ITEM-0001")  # checked in at WMS
    world.reshare.requests["l-1"] = lender_request("RES_ITEM_RETURNED")
    return notice(world, side, "EAST-ITEM-0001", "l-1", source)


SIDES = [Side.BORROWING, Side.LENDING]
SOURCES = ["reconciler", "webhook"]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("side", SIDES)
def test_a_copy_of_a_check_in_after_the_step_succeeded_costs_one_refused_claim(
    world: World, side: Side, source: str
) -> None:
    deliver_it = wms_first(world, side, source)
    assert deliver_it().status == StepStatus.SUCCEEDED
    outside = Outside(world)
    assert deliver_it().detail == {"duplicate": True}
    done = outside.since_reset()
    nothing_but_one_refused_claim(done)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("side", SIDES)
def test_a_copy_of_a_check_in_after_the_step_skipped_changes_nothing(
    world: World, side: Side, source: str
) -> None:
    # Given the first copy ran (ReShare already past the return: nothing to update) and the step's record
    # says SKIPPED (however it got there)
    deliver_it = wms_first(world, side, source)
    request_id, step = CHECKED_IN[side].request_id, CHECKED_IN[side].step
    past = (
        borrower_request("REQ_SHIPPED_TO_SUPPLIER")
        if side == Side.BORROWING
        else lender_request("RES_COMPLETE")
    )
    world.reshare.requests[request_id] = past
    assert "reshare_state" in deliver_it().detail
    world.store.set_step("east", request_id, step, StepStatus.SKIPPED)
    outside = Outside(world)
    assert deliver_it().detail == {"duplicate": True}
    nothing_but_one_refused_claim(outside.since_reset())


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("side", SIDES)
def test_a_copy_of_a_check_in_after_the_step_failed_changes_nothing(
    world: World, side: Side, source: str
) -> None:
    # Given the step failed on ReShare's answer (the item was marked checked in, staff were told)
    deliver_it = wms_first(world, side, source)
    from illbridge.errors import ReShareActionRejected

    world.reshare.faults.fail("perform_action", ReShareActionRejected("action", "not valid"))
    assert deliver_it().status == StepStatus.FAILED
    attention = world.store.open_attention()
    outside = Outside(world)
    deliver_it()
    nothing_but_one_refused_claim(outside.since_reset())
    assert world.store.open_attention() == attention


@pytest.mark.parametrize("side", SIDES)
def test_a_copy_of_an_unconfirmable_webhook_notice_asks_wms_once_and_tells_staff_once(
    world: World, side: Side
) -> None:
    # Given a webhook notice no probe can confirm: the step failed, staff were asked to look in WMS
    deliver_it = wms_first(world, side, "webhook")
    world.with_config(wms=world.config.wms.model_copy(update={"checkin_probe": "none"}))
    assert deliver_it().status == StepStatus.FAILED
    attention = world.store.open_attention()
    assert len(attention) == 1 and "cannot be confirmed" in attention[0].reason
    # When a copy of the notice arrives; Then it reads the step's record and stops there
    outside = Outside(world)
    result = deliver_it()
    assert result.detail["duplicate"] is True
    assert outside.since_reset() == {**NOTHING, "refused": []}
    assert world.store.open_attention() == attention


def later_notice(world: World) -> WmsItemCheckedIn:
    """A webhook notice of EAST-1's check-in (request b-1) at the world's clock: later than the one before."""
    return check_in_notice("borrowing", "EAST-1", "b-1", "webhook", at=world.clock())


def test_a_copy_of_a_webhook_notice_wms_refuted_does_not_ask_wms_again(world: World) -> None:
    # Given a webhook notice WMS refuted (the temp item is still held for the patron): no step record
    received(world)()
    deliver_it = notice(world, Side.BORROWING, "EAST-1", "b-1", "webhook")
    first = deliver_it()
    assert first.status == StepStatus.SKIPPED and "ignored" in first.detail["reason"]
    assert world.store.get_step("east", "b-1", StepName.BORROW_WMS_RETURNED) is None
    # When a copy of it arrives; Then WMS is not asked again and nothing is written
    outside = Outside(world)
    copy = deliver_it()
    assert copy.status == StepStatus.SKIPPED and copy.detail["duplicate"] is True
    assert outside.since_reset() == {**NOTHING, "refused": []}
    # But a notice of a later check-in is asked about
    world.clock.advance(hours=1)
    later = later_notice(world)
    assert "ignored" in deliver(world, "borrow_returned", later).detail["reason"]
    assert outside.since_reset()["wms"] != []


def test_a_later_unconfirmable_notice_is_shown_to_staff_again(world: World) -> None:
    # Given an unconfirmable notice failed the step
    deliver_it = wms_first(world, Side.BORROWING, "webhook")
    world.with_config(wms=world.config.wms.model_copy(update={"checkin_probe": "none"}))
    assert deliver_it().status == StepStatus.FAILED
    # When a new notice arrives, of a check-in after that failure; Then staff are told again (a new attempt)
    world.clock.advance(hours=1)
    later = later_notice(world)
    assert deliver(world, "borrow_returned", later).status == StepStatus.FAILED
    record = world.store.get_step("east", "b-1", StepName.BORROW_WMS_RETURNED)
    assert record is not None and record.attempt == 2


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("side", SIDES)
def test_a_copy_of_a_check_in_while_the_step_runs_is_put_off(world: World, side: Side, source: str) -> None:
    # Given the first copy marked the item checked in and holds the step (its lease is live)
    deliver_it = wms_first(world, side, source)
    request_id, step = CHECKED_IN[side].request_id, CHECKED_IN[side].step
    mapping = world.store.get_mapping("east", request_id)
    assert mapping is not None
    mapping.items[0].checked_in = True
    world.store.save_mapping(mapping)
    world.store.set_step("east", request_id, step, StepStatus.IN_PROGRESS)
    outside = Outside(world)
    with pytest.raises(StepDeferred):
        deliver_it()
    nothing_but_one_refused_claim(outside.since_reset())


@pytest.mark.parametrize("side", SIDES)
def test_a_webhook_notice_while_the_step_runs_is_put_off_before_wms_is_asked(
    world: World, side: Side
) -> None:
    # Given another attempt holds the step and the item is not marked yet (a copy racing the first one)
    deliver_it = wms_first(world, side, "webhook")
    world.store.set_step("east", CHECKED_IN[side].request_id, CHECKED_IN[side].step, StepStatus.IN_PROGRESS)
    outside = Outside(world)
    with pytest.raises(StepDeferred) as deferred:
        deliver_it()
    assert 0 < deferred.value.delay_seconds <= 120
    assert outside.since_reset() == {**NOTHING, "refused": []}


@pytest.mark.parametrize("side", SIDES)
def test_a_staff_retry_of_a_failed_wms_first_step_runs_it(world: World, side: Side) -> None:
    # Given an unconfirmable notice failed the step, and staff confirmed it in WMS and released the step
    deliver_it = wms_first(world, side, "webhook")
    world.with_config(wms=world.config.wms.model_copy(update={"checkin_probe": "none"}))
    assert deliver_it().status == StepStatus.FAILED
    request_id, barcode = CHECKED_IN[side].request_id, CHECKED_IN[side].barcode
    world.store.set_step("east", request_id, CHECKED_IN[side].step, StepStatus.RETRYABLE)
    # When staff's event arrives (source "ops", trusted); Then the step runs and updates ReShare
    outside = Outside(world)
    assert notice(world, side, barcode, request_id, "ops")().status == StepStatus.SUCCEEDED
    done = outside.since_reset()
    assert [call for call, _ in done["reshare"]][-1] == "perform_action"
    assert "claim_step" in done["writes"] and "complete_step" in done["writes"]


def test_wms_refusing_the_step_leaves_a_copy_nothing_to_do(world: World) -> None:
    # a step that failed on WMS's refusal (borrow_received: AcceptItem refused)
    world.wms.faults.fail("accept_item", WmsProblem("Invalid Date", operation="AcceptItem"))
    deliver_it = received(world)
    assert deliver_it().status == StepStatus.FAILED
    outside = Outside(world)
    assert deliver_it().detail == {"duplicate": True}
    nothing_but_one_refused_claim(outside.since_reset())


# --- copies in one SQS batch (the step function's handler, records side by side) ---------------------------


def sqs_record(message_id: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"detail-type": detail_type, "source": "illbridge", "detail": detail})
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:bridge-BorrowReceivedQueue",
        "awsRegion": "eu-west-1",
    }


class Context:
    function_name = "BorrowReceivedFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:BorrowReceivedFunction"
    aws_request_id = "request-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def test_two_copies_in_one_batch_make_one_accept_item_and_one_refused_claim(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the real step handler of borrow_received on the fakes, and a batch holding two copies of one
    # change and another request's change
    monkeypatch.setattr(step_queue, "current_ports", lambda: world.services)
    world.reshare.requests["b-1"] = borrower_request()
    world.reshare.requests["b-2"] = borrower_request(id="b-2", hrid="EAST-2")
    one, other = change(world.reshare.requests["b-1"]), change(world.reshare.requests["b-2"])
    handler = step_queue.step_handler(routes("borrow_received"))
    records = [
        sqs_record("m-1", one.DETAIL_TYPE, one.model_dump(mode="json")),
        sqs_record("m-2", other.DETAIL_TYPE, other.model_dump(mode="json")),
        sqs_record("m-3", one.DETAIL_TYPE, one.model_dump(mode="json")),
    ]
    outside = Outside(world)
    sent_again: list[Any] = []
    monkeypatch.setattr(step_queue, "send_again", lambda record, delay, attributes: sent_again.append(record))
    # (the first copy's AcceptItem gives a copy running alongside it the time to reach the claim: if it did,
    # it would find the step in progress and be put off)
    copy_tried = threading.Event()
    claim, accept = world.store.claim_step, world.wms.accept

    def claim_step(tenant: str, request_id: str, step: StepName, **kwargs: Any) -> Any:
        if request_id == "b-1" and world.store.steps.get((tenant, request_id, step)) is not None:
            copy_tried.set()
        return claim(tenant, request_id, step, **kwargs)

    def accept_item(message: Any) -> Any:
        if message.fields()["temp_item_barcode"] == "EAST-1":
            copy_tried.wait(1)  # a copy alongside would have tried its claim by now; one after waits in vain
        return accept(message)

    monkeypatch.setattr(world.store, "claim_step", claim_step)
    monkeypatch.setattr(world.wms, "accept", accept_item)
    # When the batch is processed
    answer = handler({"Records": records}, Context())
    # Then every record succeeded, none was put off, each request got one temp item, and the copy cost one
    # refused claim
    assert answer == {"batchItemFailures": []} and sent_again == []
    assert sorted(c["temp_item_barcode"] for c in world.wms.faults.called("accept_item")) == [
        "EAST-1",
        "EAST-2",
    ]
    done = outside.since_reset()
    assert done["refused"] == ["claim_step"]
    assert done["writes"].count("claim_step") == 2  # one per request, none for the copy
