"""Every step rule's branches, run by the real engine against in-memory fakes of WMS, ReShare and the store
(``fakes.py``): no AWS, no HTTP. Each step: the happy path, each refusal, an outcome unknown then verified,
waiting for an earlier step, a late delivery, its switch off. The same rules run end to end in tests/e2e."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from illbridge.config import LibraryConfig
from illbridge.errors import (
    ReShareActionRejected,
    ReShareUnavailable,
    StepDeferred,
    WmsOutcomeUnknown,
    WmsProblem,
    WmsUnavailable,
)
from illbridge.models import (
    AttentionItem,
    MappedItem,
    Mapping,
    PatronRequest,
    ReShareRequestChanged,
    Side,
    StepName,
    StepStatus,
)
from illbridge.wms.ncip import CheckInResult
from illbridge.workflow.steps import declaration, routes
from tests.unit.workflow.fakes import NOW, World, check_in_notice

PATRON = "EAST-P-0001"
ACCOUNT = "ILL-WEST"
LENDER = "RESHARE:WEST"


def library(**update: Any) -> LibraryConfig:
    config = LibraryConfig.model_validate(
        {
            "library_id": "east",
            "name": "East",
            "reshare": {
                "base_url": "http://reshare.invalid",
                "tenant": "east",
                "username": "bridge",
                "password": "pw",
                "symbol": "RESHARE:EAST",
            },
            "wms": {
                "registry_id": "128807",
                "ncip_url": "http://wms.invalid/ncip",
                "oauth_url": "http://wms.invalid/oauth",
                "scim_url": "http://wms.invalid/scim",
                "wskey": "key",
                "wskey_secret": "secret",
            },
            "pickup_branches": {"east-main": "128808"},
            "partner_accounts": {"RESHARE:EAST": ACCOUNT},
            "partner_agency_ids": {LENDER: "262626"},
        }
    )
    return config.model_copy(update=update)


@pytest.fixture
def world() -> World:
    w = World(library())
    w.wms.patron(PATRON)
    w.wms.patron(ACCOUNT)
    return w


def borrower_request(state: str = "REQ_CHECKED_IN", **fields: Any) -> PatronRequest:
    body = {
        "id": "b-1",
        "hrid": "EAST-1",
        "isRequester": True,
        "state": {"code": state},
        "title": "The Name of the Rose",
        "patronIdentifier": PATRON,
        "pickupLocationSlug": "east-main",
        "supplyingInstitutionSymbol": LENDER,
        "dueDateRS": "2026-12-28",
        "volumes": [{"id": "v1", "itemId": "WEST-ITEM-0001"}],
        **fields,
    }
    return PatronRequest.model_validate(body)


def lender_request(state: str = "RES_ITEM_SHIPPED", **fields: Any) -> PatronRequest:
    body = {
        "id": "l-1",
        "hrid": "WEST-1",
        "isRequester": False,
        "state": {"code": state},
        "requestingInstitutionSymbol": "RESHARE:EAST",
        "dueDateRS": "2026-12-28",
        "volumes": [{"id": "v1", "itemId": "EAST-ITEM-0001"}],
        **fields,
    }
    return PatronRequest.model_validate(body)


def change(request: PatronRequest, state: str | None = None) -> ReShareRequestChanged:
    return ReShareRequestChanged(
        library_id="east",
        tenant="east",
        side=request.side,
        request_id=request.id,
        hrid=request.hrid or request.id,
        state=state or request.state.code,
        last_updated=NOW,
        source="poller",
    )


def run(world: World, function: str, event: Any) -> Any:
    return routes(function)[event.DETAIL_TYPE](world.services, event)


def changed(world: World, function: str, request: PatronRequest) -> Any:
    """ReShare now holds ``request`` as it stands, and its change reaches ``function``: the step's result."""
    world.reshare.requests[request.id] = request
    return run(world, function, change(request))


def step_status(world: World, request_id: str, step: StepName) -> StepStatus | None:
    record = world.store.get_step("east", request_id, step)
    return record.status if record else None


# --- borrow_received --------------------------------------------------------------------------------------


def received(world: World, request: PatronRequest | None = None) -> Any:
    return changed(world, "borrow_received", request or borrower_request())


def test_received_creates_a_temp_item_and_hold_and_records_the_mapping(world: World) -> None:
    result = received(world)
    assert result.status == StepStatus.SUCCEEDED
    sent = world.wms.temp_items["EAST-1"]
    assert sent["patron_barcode"] == PATRON and sent["pickup_branch"] == "128808"
    assert sent["lending_agency_id"] == "262626"
    mapping = world.store.get_mapping("east", "b-1")
    assert mapping is not None and mapping.items[0].created_in_wms and mapping.next_check_at is not None
    assert "borrow_received:AcceptItem:success" in world.operations("b-1")


def test_received_with_its_switch_off_is_skipped_and_sends_nothing(world: World) -> None:
    world.with_config(steps=world.config.steps.model_copy(update={"create_temp_item_on_received": False}))
    assert received(world).status == StepStatus.SKIPPED
    assert world.wms.temp_items == {} and world.reshare.faults.called("get_request") == []
    assert "borrow_received:skipped by configuration:skipped" in world.operations("b-1")


def test_a_late_received_is_skipped_when_reshare_has_moved_on_and_nothing_was_made(world: World) -> None:
    result = received(world, borrower_request("REQ_SHIPPED_TO_SUPPLIER"))
    assert result.status == StepStatus.SKIPPED and result.detail == {
        "reshare_state": "REQ_SHIPPED_TO_SUPPLIER"
    }
    assert world.wms.temp_items == {}
    assert "borrow_received:nothing to create:skipped" in world.operations("b-1")


def test_an_unknown_patron_goes_to_staff_without_an_accept_item(world: World) -> None:
    result = received(world, borrower_request(patronIdentifier="NOBODY"))
    assert result.status == StepStatus.FAILED
    assert world.wms.temp_items == {}
    [item] = world.store.open_attention()
    assert "does not know patron" in item.reason and "illbridge retry" in item.fix
    assert "NOBODY" not in item.reason  # masked
    assert world.bus.events and world.bus.events[0].reason == item.reason


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"pickupLocationSlug": "nowhere"}, "has no WMS branch"),
        ({"supplyingInstitutionSymbol": None}, "No WMS agency id"),
        ({"patronIdentifier": None}, "no patron barcode"),
    ],
)
def test_missing_configuration_or_request_data_goes_to_staff(world: World, fields: dict, why: str) -> None:
    assert received(world, borrower_request(**fields)).status == StepStatus.FAILED
    [item] = world.store.open_attention()
    assert why in item.reason


def test_a_wms_refusal_goes_to_staff_and_duplicate_item_of_our_own_barcode_counts_as_done(
    world: World,
) -> None:
    world.wms.faults.fail(
        "accept_item", WmsProblem("Unknown Agency", "no such agency", operation="AcceptItem")
    )
    assert received(world).status == StepStatus.FAILED
    assert "WMS said no to AcceptItem: Unknown Agency" in world.store.open_attention()[0].reason

    other = World(library())
    other.wms.patron(PATRON)
    other.with_config(wms=other.config.wms.model_copy(update={"checkin_probe": "none"}))
    other.wms.faults.fail("accept_item", WmsProblem("Duplicate Item", operation="AcceptItem"))
    assert received(other).status == StepStatus.SUCCEEDED
    mapping = other.store.get_mapping("east", "b-1")
    assert mapping is not None and mapping.items[0].created_in_wms


def test_an_outage_puts_the_step_off_and_the_next_delivery_finishes_it(world: World) -> None:
    world.wms.faults.fail("accept_item", WmsUnavailable("WMS down"))
    with pytest.raises(StepDeferred) as deferred:
        received(world)
    assert deferred.value.delay_seconds == 30
    assert step_status(world, "b-1", StepName.BORROW_RECEIVED) == StepStatus.RETRYABLE
    assert received(world).status == StepStatus.SUCCEEDED
    assert "EAST-1" in world.wms.temp_items


def test_an_outage_past_the_librarys_deadline_goes_to_staff(world: World) -> None:
    world.reshare.faults.fail("get_request", ReShareUnavailable("down"), ReShareUnavailable("still down"))
    with pytest.raises(StepDeferred):
        received(world)
    world.clock.advance(hours=25)
    assert received(world).status == StepStatus.FAILED
    assert "still failing after 25 h" in world.store.open_attention()[0].reason


@pytest.mark.parametrize("probe", ["lookup_user", "lookup_item"])
def test_after_an_unknown_outcome_the_engine_verifies_and_does_not_send_again(
    world: World, probe: str
) -> None:
    world.with_config(wms=world.config.wms.model_copy(update={"checkin_probe": probe}))
    # the AcceptItem arrived, its answer did not; the worker then died holding the step
    world.wms.faults.fail("accept_item", WmsOutcomeUnknown("no answer"))
    with pytest.raises(StepDeferred):
        received(world)
    world.wms.temp_items["EAST-1"] = {"patron_barcode": PATRON}  # WMS did apply it
    assert received(world).status == StepStatus.SUCCEEDED
    assert len(world.wms.faults.called("accept_item")) == 1  # verified, not re-sent
    assert any("(verify before re-sending):success" in line for line in world.operations("b-1"))


def test_after_an_unknown_outcome_that_did_not_apply_the_engine_sends_again(world: World) -> None:
    world.wms.faults.fail("accept_item", WmsOutcomeUnknown("no answer"))
    with pytest.raises(StepDeferred):
        received(world)
    assert received(world).status == StepStatus.SUCCEEDED
    assert len(world.wms.faults.called("accept_item")) == 2
    assert "EAST-1" in world.wms.temp_items


def test_a_first_attempt_never_verifies(world: World) -> None:
    received(world)
    assert world.wms.faults.called("lookup_user") == []


def test_a_duplicate_delivery_of_a_done_step_does_nothing(world: World) -> None:
    received(world)
    result = received(world)
    assert result.detail == {"duplicate": True}
    assert len(world.wms.faults.called("accept_item")) == 1


def test_a_step_claimed_by_a_live_worker_is_put_off_until_its_lease_could_be_over(world: World) -> None:
    world.store.set_step("east", "b-1", StepName.BORROW_RECEIVED, StepStatus.IN_PROGRESS)
    with pytest.raises(StepDeferred) as deferred:
        received(world)
    assert deferred.value.delay_seconds == 120
    assert world.wms.faults.calls == []


def test_a_blocked_patron_is_noted_but_still_served(world: World) -> None:
    world.wms.patron(PATRON, blocked=True, expires=date(2026, 1, 1))
    assert received(world).status == StepStatus.SUCCEEDED
    line = next(h for h in world.store.history("east", "b-1") if h.operation == "SCIM patron look-up")
    assert "blocked, expired" in line.summary


def test_two_volumes_get_one_temp_item_each(world: World) -> None:
    request = borrower_request(volumes=[{"id": "v1", "itemId": "W-0001"}, {"id": "v2", "itemId": "W-0002"}])
    assert received(world, request).status == StepStatus.SUCCEEDED
    assert set(world.wms.temp_items) == {"EAST-1-0001", "EAST-1-0002"}


# --- borrow_returned (ReShare first) ----------------------------------------------------------------------


def received_mapping(**fields: Any) -> Mapping:
    """East's mapping of borrower request b-1 (EAST-1) as the received step starts it."""
    return Mapping(
        library_id="east",
        tenant="east",
        request_id="b-1",
        hrid="EAST-1",
        side=Side.BORROWING,
        registry_id="128807",
        reshare_state="REQ_CHECKED_IN",
        **fields,
    )


def returned(world: World, state: str = "REQ_SHIPPED_TO_SUPPLIER") -> Any:
    return changed(world, "borrow_returned", borrower_request(state))


def test_returned_checks_the_temp_item_in_and_resolves_a_wms_first_attention_item(world: World) -> None:
    received(world)
    world.store.raise_attention(
        AttentionItem(
            library_id="east",
            tenant="east",
            request_id="b-1",
            hrid="EAST-1",
            step="borrow_wms_returned",
            reason="Update ReShare request EAST-1",
            fix="-",
            retry="-",
            raised_at=NOW - timedelta(hours=1),
        )
    )
    result = returned(world)
    assert result.status == StepStatus.SUCCEEDED and result.detail == {"checked_in": ["EAST-1"]}
    assert world.wms.checked_in == ["EAST-1"]
    mapping = world.store.get_mapping("east", "b-1")
    assert mapping is not None and mapping.next_check_at is None and mapping.items[0].checked_in
    assert world.store.open_attention() == []


def test_returned_waits_for_a_received_step_still_running(world: World) -> None:
    world.store.mappings[("east", "b-1")] = received_mapping()
    world.store.set_step("east", "b-1", StepName.BORROW_RECEIVED, StepStatus.RETRYABLE)
    with pytest.raises(StepDeferred):
        returned(world)
    assert step_status(world, "b-1", StepName.BORROW_RETURNED) == StepStatus.RETRYABLE


def test_returned_before_the_bridge_saw_it_received_has_nothing_to_wait_for(world: World) -> None:
    result = returned(world)
    assert result.status == StepStatus.SUCCEEDED and result.detail == {"checked_in": []}
    assert "borrow_returned:nothing to check in:info" in world.operations("b-1")


def test_returned_with_nothing_created_checks_nothing_in(world: World) -> None:
    world.store.set_step("east", "b-1", StepName.BORROW_RECEIVED, StepStatus.SKIPPED)
    world.store.mappings[("east", "b-1")] = received_mapping(items=[MappedItem(barcode="EAST-1")])
    assert returned(world).detail == {"checked_in": []}
    assert world.wms.checked_in == []


def test_returned_with_its_switch_off_is_skipped(world: World) -> None:
    world.with_config(steps=world.config.steps.model_copy(update={"check_in_on_returned": False}))
    assert returned(world).status == StepStatus.SKIPPED


def test_an_item_wms_already_checked_in_counts_as_checked_in(world: World) -> None:
    received(world)
    world.wms.faults.fail("check_in_item", WmsProblem("Item Not Checked Out", operation="CheckInItem"))
    assert returned(world).status == StepStatus.SUCCEEDED
    assert any("already checked in" in h.summary for h in world.store.history("east", "b-1"))


def test_any_other_check_in_refusal_goes_to_staff(world: World) -> None:
    received(world)
    world.wms.faults.fail("check_in_item", WmsProblem("Item Not Checkable", operation="CheckInItem"))
    assert returned(world).status == StepStatus.FAILED


# --- borrow_wms_returned (WMS first) ----------------------------------------------------------------------


def wms_check_in(world: World, side: Side, barcode: str, request_id: str, source: str = "reconciler") -> Any:
    event = check_in_notice(side.value, barcode, request_id, source)
    return run(world, "borrow_returned" if side == Side.BORROWING else "lend_returned", event)


def test_wms_first_marks_the_request_returned_by_the_patron_in_reshare(world: World) -> None:
    received(world)
    result = wms_check_in(world, Side.BORROWING, "EAST-1", "b-1")
    assert result.status == StepStatus.SUCCEEDED
    assert world.reshare.actions == [("b-1", "patronReturnedItem", {})]


def test_wms_first_with_its_switch_off_asks_staff_to_update_reshare(world: World) -> None:
    received(world)
    world.with_config(
        steps=world.config.steps.model_copy(update={"update_reshare_when_wms_checks_in_first": False})
    )
    assert wms_check_in(world, Side.BORROWING, "EAST-1", "b-1").status == StepStatus.FAILED
    assert world.store.open_attention()[0].reason == "Update ReShare request EAST-1"
    assert world.reshare.actions == []


def test_wms_first_when_reshare_is_already_past_it_updates_nothing(world: World) -> None:
    received(world)
    world.reshare.requests["b-1"] = borrower_request("REQ_SHIPPED_TO_SUPPLIER")
    assert wms_check_in(world, Side.BORROWING, "EAST-1", "b-1").detail == {
        "reshare_state": "REQ_SHIPPED_TO_SUPPLIER"
    }
    assert world.reshare.actions == []


def test_wms_first_for_an_unknown_item_is_skipped(world: World) -> None:
    assert wms_check_in(world, Side.BORROWING, "NOPE", "b-1").status == StepStatus.SKIPPED


def test_wms_first_waits_for_every_volume(world: World) -> None:
    received(
        world, borrower_request(volumes=[{"id": "1", "itemId": "W-0001"}, {"id": "2", "itemId": "W-0002"}])
    )
    first = wms_check_in(world, Side.BORROWING, "EAST-1-0001", "b-1")
    assert first.status == StepStatus.SKIPPED and first.detail["waiting"] == ["EAST-1-0002"]
    assert wms_check_in(world, Side.BORROWING, "EAST-1-0002", "b-1").status == StepStatus.SUCCEEDED


def test_a_webhook_notice_wms_refutes_changes_nothing(world: World) -> None:
    received(world)  # the temp item is held for the patron, not checked in
    result = wms_check_in(world, Side.BORROWING, "EAST-1", "b-1", source="webhook")
    assert result.status == StepStatus.SKIPPED and "ignored" in result.detail["reason"]
    assert world.reshare.actions == []


def test_a_webhook_notice_no_probe_can_confirm_goes_to_staff(world: World) -> None:
    received(world)
    world.with_config(wms=world.config.wms.model_copy(update={"checkin_probe": "none"}))
    assert wms_check_in(world, Side.BORROWING, "EAST-1", "b-1", source="webhook").status == StepStatus.FAILED
    assert "cannot be confirmed" in world.store.open_attention()[0].reason


def test_a_rejected_reshare_action_goes_to_staff(world: World) -> None:
    received(world)
    world.reshare.faults.fail("perform_action", ReShareActionRejected("patronReturnedItem", "not valid"))
    assert wms_check_in(world, Side.BORROWING, "EAST-1", "b-1").status == StepStatus.FAILED
    assert "Check request EAST-1 in ReShare" in world.store.open_attention()[0].fix


# --- lend_shipped -----------------------------------------------------------------------------------------


def shipped(world: World, request: PatronRequest | None = None) -> Any:
    return changed(world, "lend_shipped", request or lender_request())


def test_shipped_checks_the_item_out_to_the_partners_account_with_reshares_due_date(world: World) -> None:
    result = shipped(world)
    assert result.status == StepStatus.SUCCEEDED
    user, due = world.wms.loans["EAST-ITEM-0001"]
    assert user == ACCOUNT and due is not None and due.date() == date(2026, 12, 28)
    assert world.store.open_attention() == []


def test_a_different_due_date_set_by_wms_is_reported_to_staff(world: World) -> None:
    world.wms.due_date = NOW + timedelta(days=10)
    assert shipped(world).status == StepStatus.SUCCEEDED
    assert "WMS set a different due date" in world.store.open_attention()[0].reason


@pytest.mark.parametrize(
    ("arrange", "why"),
    [
        (lambda w: w.wms.patron(ACCOUNT, blocked=True), "is blocked"),
        (lambda w: w.wms.patron(ACCOUNT, expires=date(2026, 1, 1)), "expired on"),
        (lambda w: w.wms.patrons.pop(ACCOUNT), "has no borrowing-institution account"),
        (lambda w: w.with_config(partner_accounts={}), "No WMS account for borrowing institution"),
    ],
)
def test_an_account_that_cannot_borrow_goes_to_staff(world: World, arrange: Any, why: str) -> None:
    arrange(world)
    assert shipped(world).status == StepStatus.FAILED
    assert why in world.store.open_attention()[0].reason
    assert world.wms.loans == {}


def test_a_lending_request_without_item_barcodes_goes_to_staff(world: World) -> None:
    assert shipped(world, lender_request(volumes=[])).status == StepStatus.FAILED


def test_a_late_shipped_is_skipped_when_the_request_is_already_complete(world: World) -> None:
    assert shipped(world, lender_request("RES_COMPLETE")).status == StepStatus.SKIPPED
    assert world.wms.loans == {}


def test_shipped_with_its_switch_off_is_skipped(world: World) -> None:
    world.with_config(steps=world.config.steps.model_copy(update={"check_out_on_shipped": False}))
    assert shipped(world).status == StepStatus.SKIPPED


def test_a_check_out_refused_by_wms_goes_to_staff(world: World) -> None:
    world.wms.faults.fail("check_out_item", WmsProblem("User Blocked", operation="CheckOutItem"))
    assert shipped(world).status == StepStatus.FAILED


def test_after_an_unknown_check_out_the_engine_verifies_the_loan_first(world: World) -> None:
    world.wms.faults.fail("check_out_item", WmsOutcomeUnknown("no answer"))
    with pytest.raises(StepDeferred):
        shipped(world)
    world.wms.loans["EAST-ITEM-0001"] = (ACCOUNT, NOW + timedelta(days=28))  # it did arrive
    assert shipped(world).status == StepStatus.SUCCEEDED
    assert len(world.wms.faults.called("check_out_item")) == 1
    mapping = world.store.get_mapping("east", "l-1")
    assert mapping is not None and mapping.items[0].created_in_wms and mapping.items[0].wms_due_date


def test_after_an_unknown_check_out_that_did_not_apply_it_is_sent_again(world: World) -> None:
    world.with_config(wms=world.config.wms.model_copy(update={"checkin_probe": "none"}))
    world.wms.faults.fail("check_out_item", WmsOutcomeUnknown("no answer"))
    with pytest.raises(StepDeferred):
        shipped(world)
    assert shipped(world).status == StepStatus.SUCCEEDED
    assert len(world.wms.faults.called("check_out_item")) == 2


# --- lend_returned and lend_wms_returned -------------------------------------------------------------------


def completed(world: World) -> Any:
    return changed(world, "lend_returned", lender_request("RES_COMPLETE"))


def test_complete_checks_the_lent_item_in_and_closes_the_mapping(world: World) -> None:
    shipped(world)
    assert completed(world).detail == {"checked_in": ["EAST-ITEM-0001"]}
    mapping = world.store.get_mapping("east", "l-1")
    assert mapping is not None and not mapping.open


def test_complete_waits_while_shipped_is_still_going_to_run(world: World) -> None:
    world.store.set_step("east", "l-1", StepName.LEND_SHIPPED, StepStatus.IN_PROGRESS)
    with pytest.raises(StepDeferred):
        completed(world)


def test_complete_of_a_request_never_checked_out_checks_nothing_in(world: World) -> None:
    assert completed(world).detail == {"checked_in": []}


def test_complete_with_its_switch_off_is_skipped(world: World) -> None:
    world.with_config(steps=world.config.steps.model_copy(update={"check_in_on_complete": False}))
    assert completed(world).status == StepStatus.SKIPPED


def test_lent_item_checked_in_at_wms_first_completes_the_request_in_reshare(world: World) -> None:
    shipped(world)
    world.reshare.requests["l-1"] = lender_request("RES_ITEM_RETURNED")
    assert wms_check_in(world, Side.LENDING, "EAST-ITEM-0001", "l-1").status == StepStatus.SUCCEEDED
    assert world.reshare.actions == [("l-1", "supplierCheckOutOfReshare", {})]


def test_lent_item_checked_in_at_wms_before_reshare_shows_it_returned_goes_to_staff(world: World) -> None:
    shipped(world)
    assert wms_check_in(world, Side.LENDING, "EAST-ITEM-0001", "l-1").status == StepStatus.FAILED
    assert world.store.open_attention()[0].reason == "Update ReShare request WEST-1"


def test_lent_item_checked_in_at_wms_when_reshare_is_complete_already_updates_nothing(world: World) -> None:
    shipped(world)
    world.reshare.requests["l-1"] = lender_request("RES_COMPLETE")
    assert wms_check_in(world, Side.LENDING, "EAST-ITEM-0001", "l-1").detail == {
        "reshare_state": "RES_COMPLETE"
    }


def test_a_busy_reshare_is_waited_out(world: World) -> None:
    from illbridge.errors import ReShareBusy

    shipped(world)
    world.reshare.requests["l-1"] = lender_request("RES_ITEM_RETURNED")
    world.reshare.faults.fail("perform_action", ReShareBusy("waiting for the partner"))
    with pytest.raises(StepDeferred):
        wms_check_in(world, Side.LENDING, "EAST-ITEM-0001", "l-1")
    assert world.store.open_attention() == []


# --- request_closed ---------------------------------------------------------------------------------------


def closed(world: World, request: PatronRequest) -> Any:
    return changed(world, "request_closed", request)


def test_a_cancelled_borrowing_request_checks_its_temp_item_in_and_closes(world: World) -> None:
    received(world)
    world.wms.temp_items.clear()  # WMS cancelled the hold at the check-in
    result = closed(world, borrower_request("REQ_CANCELLED"))
    assert result.detail == {"checked_in": ["EAST-1"], "final_state": "REQ_CANCELLED", "held": []}
    mapping = world.store.get_mapping("east", "b-1")
    assert mapping is not None and not mapping.open and mapping.reshare_state == "REQ_CANCELLED"


def test_a_hold_wms_kept_after_closing_is_cancelled(world: World) -> None:
    received(world)
    world.wms.check_in = lambda message: CheckInResult(item_barcode=message.item_barcode)  # type: ignore[method-assign]
    assert closed(world, borrower_request("REQ_CANCELLED")).detail["held"] == []
    assert "request_closed:CancelRequestItem:success" in world.operations("b-1")
    assert world.store.open_attention() == []


def test_a_hold_wms_kept_and_would_not_cancel_goes_to_staff(world: World) -> None:
    received(world)
    world.wms.check_in = lambda message: CheckInResult(item_barcode=message.item_barcode)  # type: ignore[method-assign]
    world.wms.faults.fail(
        "cancel_request_item", WmsProblem("Request Not Cancellable", operation="CancelRequestItem")
    )
    assert closed(world, borrower_request("REQ_CANCELLED")).detail["held"] == ["EAST-1"]
    assert "still have the patron's hold" in world.store.open_attention()[0].reason
    assert "request_closed:CancelRequestItem:problem" in world.operations("b-1")


def test_closing_waits_while_the_creating_step_is_going_to_run(world: World) -> None:
    world.store.set_step("east", "l-1", StepName.LEND_SHIPPED, StepStatus.RETRYABLE)
    with pytest.raises(StepDeferred):
        closed(world, lender_request("RES_CANCELLED"))


def test_closing_a_request_with_nothing_in_wms_only_notes_it(world: World) -> None:
    assert closed(world, lender_request("RES_UNFILLED")).detail == {"checked_in": []}
    assert "request_closed:request closed:info" in world.operations("l-1")


def test_every_step_is_declared_with_its_action() -> None:
    for name in StepName:
        assert declaration(name).action is not None
