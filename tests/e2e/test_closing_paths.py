"""The ways a borrower's request ends besides a completed loan, as mod-rs's default requester model has them
(issue 13): filled locally, cancelled locally, end of rota (reviewed), and a lender that cannot supply
followed by the next lender in the rota, which must not be mistaken for the end of the request.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from illbridge.models import StepName, StepStatus
from illbridge.wiring import current_services
from sandbox.demo import WEBHOOK_SECRETS
from sandbox.reshare.relay import signed_headers
from sandbox.runtime import Sandbox
from tests.e2e.conftest import Library, create_pair, other_library, settle, sim

pytestmark = pytest.mark.e2e


def mapping_of(request_id: str) -> Any:
    return current_services().store.get_mapping("east", request_id)


def attention_for(tenant: str, request_id: str) -> list[Any]:
    return [a for a in current_services().store.list_attention(tenant) if a.request_id == request_id]


def west_ships_and_east_receives(
    sb: Sandbox, east: Library, west: Library, hrid: str, borrower_id: str, item: str
) -> Any:
    """West, the next lender in the rota, fills east's request and ships ``item``; east receives it. The id of
    west's copy of the request."""
    [west_copy] = [
        r
        for r in sim(sb, "reshare", "GET", "requests?tenant=west")
        if r["hrid"] == hrid and not r["isRequester"]
    ]
    west.act(west_copy["id"], "supplierPrintPullSlip")
    west.act(
        west_copy["id"],
        "supplierCheckInToReshareAndSupplierMarkShipped",
        {"itemBarcodes": [{"itemId": item}]},
    )
    settle(sb)
    east.act(borrower_id, "requesterReceived")
    settle(sb)
    return west_copy["id"]


@pytest.mark.parametrize(
    ("action", "final"), [("fillLocally", "REQ_FILLED_LOCALLY"), ("cancelLocal", "REQ_CANCELLED")]
)
def test_a_request_ended_in_local_review_leaves_nothing_in_wms(
    sandbox: Sandbox, action: str, final: str
) -> None:
    sb = sandbox
    # Given a borrower request stopped for local review (a local copy may be on the shelf)
    pair = create_pair(sb, borrower_state="REQ_LOCAL_REVIEW", lender_state=None)
    east = Library(sb, "east")
    borrower_id = pair["borrower"]["id"]
    settle(sb)
    # When staff fill it from the local copy, or cancel it locally
    east.act(borrower_id, action)
    settle(sb)
    # Then the request has ended, the bridge noticed and closed its step, and nothing waits for staff
    assert east.state(borrower_id) == final
    step = current_services().store.get_step("east", borrower_id, StepName.REQUEST_CLOSED)
    assert step is not None and step.status == StepStatus.SUCCEEDED
    assert mapping_of(borrower_id) is None
    assert attention_for("east", borrower_id) == []


def test_end_of_rota_then_reviewed_ends_once(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a request whose only lender cannot supply: the rota ends
    pair = create_pair(sb, lender_state="RES_NEW_AWAIT_PULL_SLIP")
    east, west = Library(sb, "east"), Library(sb, "west")
    borrower_id = pair["borrower"]["id"]
    west.act(pair["lender"]["id"], "supplierCannotSupply")
    settle(sb)
    assert east.state(borrower_id) == "REQ_END_OF_ROTA"
    # When staff mark the end of rota reviewed
    east.act(borrower_id, "markEndOfRotaReviewed")
    settle(sb)
    # Then it is REQ_END_OF_ROTA_REVIEWED, closed once, nothing for staff
    assert east.state(borrower_id) == "REQ_END_OF_ROTA_REVIEWED"
    step = current_services().store.get_step("east", borrower_id, StepName.REQUEST_CLOSED)
    assert step is not None and step.status == StepStatus.SUCCEEDED
    assert attention_for("east", borrower_id) == []


def test_a_lender_that_cannot_supply_hands_over_to_the_next_and_the_loan_ends_right(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a rota of north (a ReShare library that is not a bridge library), then west
    north = other_library(sb)  # north's staff, through ReShare's API
    item = "WEST-ITEM-0004"
    pair = create_pair(sb, volumes=[{"item_barcode": item}], lender_tenant="north", next_lenders=["west"])
    east, west = Library(sb, "east"), Library(sb, "west")
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    settle(sb)

    # When north cannot supply
    north.perform_action(pair["lender"]["id"], "supplierCannotSupply", {})
    north.close()
    settle(sb)
    # Then the borrower went through REQ_UNFILLED to the next lender, and its request is not closed
    borrower = sim(sb, "reshare", "GET", f"requests/east/{borrower_id}")
    states = [entry["toStatus"]["code"] for entry in borrower["audit"]]
    assert states[-2:] == ["REQ_UNFILLED", "REQ_REQUEST_SENT_TO_SUPPLIER"]
    assert borrower["supplyingInstitutionSymbol"] == "RESHARE:WEST"
    assert current_services().store.get_step("east", borrower_id, StepName.REQUEST_CLOSED) is None

    # When west fills and ships, east receives, the patron returns it and it goes back, and west completes
    west_copy = west_ships_and_east_receives(sb, east, west, hrid, borrower_id, item)
    mapping = mapping_of(borrower_id)
    assert mapping is not None and mapping.open and [i.barcode for i in mapping.items] == [hrid]
    east.act(borrower_id, "patronReturnedItemAndShippedReturn")
    settle(sb)
    west.act(west_copy, "supplierCheckOutOfReshare")
    settle(sb)

    # Then the borrower's request is complete and its mapping closed (the earlier REQ_UNFILLED did not use
    # up the closing step), the temp item checked in, the lent item back on the shelf, nothing for staff
    assert east.state(borrower_id) == "REQ_REQUEST_COMPLETE"
    mapping = mapping_of(borrower_id)
    assert mapping is not None and not mapping.open and all(i.checked_in for i in mapping.items)
    assert sim(sb, "wms", "GET", f"items/{item}?registry_id=262626")["status"] == "Available"
    assert attention_for("east", borrower_id) == [] and attention_for("west", west_copy) == []


def webhook(sb: Sandbox, library: str, tenant: str, request_id: str, state: str) -> dict[str, Any]:
    """What a site's relay posts for one mod-rs status event (AppListenerService's shape), signed."""
    body = json.dumps(
        {
            "event": f"STATUS_{state}_ind",
            "tenant": f"{tenant}_mod_rs",
            "oid": f"org.olf.rs.PatronRequest:{request_id}",
            "payload": {"id": request_id, "title": "The Name of the Rose", "state": state, "dueDate": None},
        }
    )
    answer = requests.post(
        f"{sb.urls['gateway']}/webhooks/reshare",
        data=body,
        headers=signed_headers(WEBHOOK_SECRETS[library], body),
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    result: dict[str, Any] = answer.json()
    return result


def closed_step(tenant: str, request_id: str) -> Any:
    return current_services().store.get_step(tenant, request_id, StepName.REQUEST_CLOSED)


def test_a_cancel_the_lender_answers_itself_ends_both_sides_once_through_the_relay(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a request the lender (west) is picking, and the relay pushing every status event to the bridge
    pair = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0005"}], lender_state="RES_AWAIT_PICKING")
    borrower_id, lender_id = pair["borrower"]["id"], pair["lender"]["id"]
    east, west = Library(sb, "east"), Library(sb, "west")
    settle(sb)
    sb.connect_relay()
    relay = sb.reshare.relay
    try:
        assert relay.wait_idle()
        done = len(relay.deliveries())
        # When the borrower's staff cancel, and west's auto_responder_cancel (on by default) answers yes itself
        east.act(borrower_id, "requesterCancel", {"reason": "patron no longer needs it"})
        assert relay.wait_idle()
        deliveries = relay.deliveries()[done:]
    finally:
        relay.clear()
    # Then mod-rs's status events went out for both sides, REQ_CANCELLED_WITH_SUPPLIER included, each answered
    # 202 by the bridge's webhook
    events = [(d["tenant"], d["event"]) for d in deliveries]
    assert events == [
        ("east", "STATUS_REQ_CANCEL_PENDING_ind"),
        ("west", "STATUS_RES_CANCEL_REQUEST_RECEIVED_ind"),
        ("west", "STATUS_RES_CANCELLED_ind"),
        ("east", "STATUS_REQ_CANCELLED_WITH_SUPPLIER_ind"),
        ("east", "STATUS_REQ_CANCELLED_ind"),
    ]
    assert all(d["delivered"] and d["statuses"][-1] == 202 for d in deliveries), deliveries
    settle(sb)
    # And both requests ended cancelled, each closed by the bridge exactly once, nothing for staff
    assert east.state(borrower_id) == "REQ_CANCELLED"
    assert west.state(lender_id) == "RES_CANCELLED"
    for tenant, request_id in (("east", borrower_id), ("west", lender_id)):
        step = closed_step(tenant, request_id)
        assert step is not None and step.status == StepStatus.SUCCEEDED and step.attempt == 1, step
        assert attention_for(tenant, request_id) == []
    assert mapping_of(borrower_id) is None
    # And the item never left west's shelf in WMS
    assert sim(sb, "wms", "GET", "items/WEST-ITEM-0005?registry_id=262626")["status"] == "Available"


def test_a_relayed_cancelled_with_supplier_event_is_read_as_the_request_stands_and_closes_nothing(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    # Given a cancel waiting for the lender's answer (west's auto-responder off, so staff answer)
    sim(sb, "reshare", "POST", "settings", tenant="west", key="auto_responder_cancel", value="off")
    try:
        pair = create_pair(sb, volumes=[{"item_barcode": "WEST-ITEM-0006"}], lender_state="RES_AWAIT_PICKING")
        borrower_id, lender_id = pair["borrower"]["id"], pair["lender"]["id"]
        east, west = Library(sb, "east"), Library(sb, "west")
        east.act(borrower_id, "requesterCancel")
        settle(sb)
        assert (east.state(borrower_id), west.state(lender_id)) == (
            "REQ_CANCEL_PENDING",
            "RES_CANCEL_REQUEST_RECEIVED",
        )
        # When the webhook hears STATUS_REQ_CANCELLED_WITH_SUPPLIER_ind while mod-rs still has the request in
        # that state (between the lender's Cancelled message and the status event that moves it on)
        store = sb.reshare.store
        with store.lock:
            borrower = store.tenants["east"].requests[borrower_id]
            held = borrower.state
            borrower.state = "REQ_CANCELLED_WITH_SUPPLIER"
            borrower.last_updated_ms = store.tenants["east"].tick()
        answer = webhook(sb, "east", "east", borrower_id, "REQ_CANCELLED_WITH_SUPPLIER")
        # Then it is a transition the bridge records, and no step runs for it: it is not an end
        assert (answer["state"], answer["transition"]) == ("REQ_CANCELLED_WITH_SUPPLIER", True)
        settle(sb)
        assert closed_step("east", borrower_id) is None
        with store.lock:
            borrower.state = held
        # When the lender's staff say yes, and the request moves on to REQ_CANCELLED
        west.act(lender_id, "supplierRespondToCancel", {"cancelResponse": "yes"})
        answer = webhook(sb, "east", "east", borrower_id, "REQ_CANCELLED_WITH_SUPPLIER")  # a late copy
        # Then the webhook reads the request as it stands now (REQ_CANCELLED) and the close runs once
        assert answer["state"] == "REQ_CANCELLED" and answer["transition"] is True
        webhook(sb, "east", "east", borrower_id, "REQ_CANCELLED")
        settle(sb)
        step = closed_step("east", borrower_id)
        assert step is not None and step.status == StepStatus.SUCCEEDED and step.attempt == 1, step
        assert attention_for("east", borrower_id) == [] and attention_for("west", lender_id) == []
    finally:
        sim(sb, "reshare", "POST", "settings", tenant="west", key="auto_responder_cancel", value="on")


def test_conditions_rejected_cancel_with_the_lender_and_continue_with_the_next_one(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a rota of north (a ReShare library outside the bridge), then west; north offers the loan on a
    # condition
    north = other_library(sb)
    item = "WEST-ITEM-0007"
    pair = create_pair(
        sb,
        volumes=[{"item_barcode": item}],
        lender_tenant="north",
        next_lenders=["west"],
        lender_state="RES_IDLE",
    )
    east, west = Library(sb, "east"), Library(sb, "west")
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    north.perform_action(
        pair["lender"]["id"],
        "supplierConditionalSupply",
        {"loanCondition": "LibraryUseOnly", "note": "in house"},
    )
    settle(sb)
    assert east.state(borrower_id) == "REQ_CONDITIONAL_ANSWER_RECEIVED"

    # When the borrower rejects the conditions (a Cancel with requestToContinue) and north answers yes itself
    east.act(borrower_id, "requesterRejectConditions", {"note": "patron needs to take it home"})
    settle(sb)
    north_copy = north.get_request(pair["lender"]["id"])
    north.close()
    # Then north's copy is cancelled, and the borrower went through REQ_CANCELLED_WITH_SUPPLIER and
    # REQ_UNFILLED to the next lender, without the bridge closing anything
    assert north_copy.state.code == "RES_CANCELLED"
    borrower = sim(sb, "reshare", "GET", f"requests/east/{borrower_id}")
    states = [entry["toStatus"]["code"] for entry in borrower["audit"]]
    assert states[-4:] == [
        "REQ_CANCEL_PENDING",
        "REQ_CANCELLED_WITH_SUPPLIER",
        "REQ_UNFILLED",
        "REQ_REQUEST_SENT_TO_SUPPLIER",
    ]
    assert borrower["supplyingInstitutionSymbol"] == "RESHARE:WEST" and borrower["requestToContinue"] is True
    assert closed_step("east", borrower_id) is None

    # When west lends it, east receives, the patron returns it, and west completes
    west_copy = west_ships_and_east_receives(sb, east, west, hrid, borrower_id, item)
    east.act(borrower_id, "patronReturnedItemAndShippedReturn")
    settle(sb)
    west.act(west_copy, "supplierCheckOutOfReshare")
    settle(sb)
    # Then the loan ended right in both systems, and nothing waits for staff
    assert east.state(borrower_id) == "REQ_REQUEST_COMPLETE"
    assert west.state(west_copy) == "RES_COMPLETE"
    mapping = mapping_of(borrower_id)
    assert mapping is not None and not mapping.open and all(i.checked_in for i in mapping.items)
    assert sim(sb, "wms", "GET", f"items/{item}?registry_id=262626")["status"] == "Available"
    assert attention_for("east", borrower_id) == [] and attention_for("west", west_copy) == []


def test_a_rerequest_at_end_of_rota_reviews_it_and_the_new_request_lives_on_its_own(sandbox: Sandbox) -> None:
    sb = sandbox
    # Given a request whose only lender could not supply: end of rota, closed by the bridge once
    item = "WEST-ITEM-0008"
    pair = create_pair(sb, volumes=[{"item_barcode": item}], lender_state="RES_NEW_AWAIT_PULL_SLIP")
    east, west = Library(sb, "east"), Library(sb, "west")
    borrower_id = pair["borrower"]["id"]
    west.act(pair["lender"]["id"], "supplierCannotSupply")
    settle(sb)
    assert east.state(borrower_id) == "REQ_END_OF_ROTA"
    # When staff re-request it with changes (mod-rs: requesterRerequestEndOfRotaOK)
    east.act(borrower_id, "rerequest", {"isRequester": "true", "title": "The Name of the Rose (2nd ed.)"})
    settle(sb)
    # Then the old request is REQ_END_OF_ROTA_REVIEWED and was closed once; nothing waits for staff
    old = sim(sb, "reshare", "GET", f"requests/east/{borrower_id}")
    assert old["state"]["code"] == "REQ_END_OF_ROTA_REVIEWED" and old["succeededBy"] is not None
    step = closed_step("east", borrower_id)
    assert step is not None and step.status == StepStatus.SUCCEEDED and step.attempt == 1, step
    assert attention_for("east", borrower_id) == []
    # And the new request, linked to it, goes its own way: lent, received, returned, complete
    new_id = old["succeededBy"]["id"]
    new = sim(sb, "reshare", "GET", f"requests/east/{new_id}")
    assert new["precededBy"] == {"id": borrower_id} and new["title"] == "The Name of the Rose (2nd ed.)"
    [lender] = [
        r
        for r in sim(sb, "reshare", "GET", "requests?tenant=west")
        if r["hrid"] == new["hrid"] and not r["isRequester"]
    ]
    west.act(lender["id"], "supplierPrintPullSlip")
    west.act(
        lender["id"], "supplierCheckInToReshareAndSupplierMarkShipped", {"itemBarcodes": [{"itemId": item}]}
    )
    settle(sb)
    east.act(new_id, "requesterReceived")
    settle(sb)
    east.act(new_id, "patronReturnedItemAndShippedReturn")
    settle(sb)
    west.act(lender["id"], "supplierCheckOutOfReshare")
    settle(sb)
    assert east.state(new_id) == "REQ_REQUEST_COMPLETE" and west.state(lender["id"]) == "RES_COMPLETE"
    mapping = mapping_of(new_id)
    assert mapping is not None and not mapping.open and all(i.checked_in for i in mapping.items)
    assert sim(sb, "wms", "GET", f"items/{item}?registry_id=262626")["status"] == "Available"
    assert attention_for("east", new_id) == [] and attention_for("west", lender["id"]) == []
