"""The ways a borrower's request ends besides a completed loan, as mod-rs's default requester model has them
(issue 13): filled locally, cancelled locally, end of rota (reviewed), and a lender that cannot supply
followed by the next lender in the rota, which must not be mistaken for the end of the request.
"""

from __future__ import annotations

from typing import Any

import pytest

from illbridge.models import StepName, StepStatus
from illbridge.workflow.services import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import Library, create_pair, other_library, settle, sim

pytestmark = pytest.mark.e2e


def mapping_of(request_id: str) -> Any:
    return current_services().store.get_mapping("east", request_id)


def attention_for(tenant: str, request_id: str) -> list[Any]:
    return [a for a in current_services().store.list_attention(tenant) if a.request_id == request_id]


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
    mapping = mapping_of(borrower_id)
    assert mapping is not None and mapping.open and [i.barcode for i in mapping.items] == [hrid]
    east.act(borrower_id, "patronReturnedItemAndShippedReturn")
    settle(sb)
    west.act(west_copy["id"], "supplierCheckOutOfReshare")
    settle(sb)

    # Then the borrower's request is complete and its mapping closed (the earlier REQ_UNFILLED did not use
    # up the closing step), the temp item checked in, the lent item back on the shelf, nothing for staff
    assert east.state(borrower_id) == "REQ_REQUEST_COMPLETE"
    mapping = mapping_of(borrower_id)
    assert mapping is not None and not mapping.open and all(i.checked_in for i in mapping.items)
    assert sim(sb, "wms", "GET", f"items/{item}?registry_id=262626")["status"] == "Available"
    assert attention_for("east", borrower_id) == [] and attention_for("west", west_copy["id"]) == []
