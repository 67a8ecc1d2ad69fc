"""Lost WMS answers under the switches only a re-sent message meets (part of the matrix: ``-m wms_matrix``).

WMS applies a CheckOutItem (or AcceptItem) and its answer never arrives. Before sending again the bridge looks
(verify before re-sending): LookupUser shows the item on loan to the partner account (or the temp item held for
the patron), so nothing is sent twice, whatever WMS would answer to a repeat. When WMS answers no look-up, the
bridge has to send again and WMS's answer decides:

- ``repeat_checkout_same_account``: ``problem`` (the bridge cannot tell "already yours" from a refusal: staff
  are asked, a needed item), ``returns_existing_loan`` and ``renews`` (success);
- ``duplicate_temp_barcode``: ``problem_duplicate_item`` (our own temp barcode: success),
  ``problem_other_wording`` (cannot tell: staff are asked).

Under every value WMS ends with exactly one loan (one temp item and hold).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from illbridge.models import StepName, StepStatus
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import create_pair, ship_and_receive, sim
from tests.e2e.test_wms_matrix import EAST, WEST, wms_options

pytestmark = [pytest.mark.e2e, pytest.mark.wms_matrix]
NO_LOOKUPS = {"lookup_user": "unsupported"}  # and lookup_item's default: unsupported


def lose_next_answer(sb: Sandbox, operation: str) -> None:
    sim(sb, "wms", "POST", "faults", operation=operation, kind="drop_response", times=1)


def history(tenant: str, request_id: str) -> list[str]:
    return [f"{h.operation}: {h.summary}" for h in current_services().store.history(tenant, request_id)]


def attention(tenant: str, request_id: str) -> list[Any]:
    return [a for a in current_services().store.list_attention(tenant) if a.request_id == request_id]


@pytest.mark.parametrize("lookups", ["answered", "none"])
@pytest.mark.parametrize("repeat", ["problem", "returns_existing_loan", "renews"])
def test_a_lost_check_out_answer_ends_with_exactly_one_loan(
    sandbox: Sandbox, repeat: str, lookups: str
) -> None:
    sb = sandbox
    item = f"LOST-{uuid.uuid4().hex[:6].upper()}"
    sim(sb, "wms", "POST", "items", registry_id=WEST, barcode=item, branch=WEST)
    options = {"repeat_checkout_same_account": repeat, **(NO_LOOKUPS if lookups == "none" else {})}
    with wms_options(sb, **options):
        pair = create_pair(sb, volumes=[{"item_barcode": item}])
        lose_next_answer(sb, "CheckOutItem")
        ship_and_receive(sb, pair, [item])
    try:
        lender_id = pair["lender"]["id"]
        loans = [
            loan
            for loan in sim(sb, "wms", "GET", f"loans?registry_id={WEST}")
            if loan["item_barcode"] == item
        ]
        assert [(loan["patron_barcode"], loan["active"]) for loan in loans] == [("ILL-EAST", True)]
        step = current_services().store.get_step("west", lender_id, StepName.LEND_SHIPPED)
        lines = history("west", lender_id)
        if lookups == "answered":
            # verified before re-sending: the account's loans show it, CheckOutItem is not sent again
            assert any(line.startswith("LookupUser (verify before re-sending)") for line in lines), lines
            assert sum(line.startswith("CheckOutItem") for line in lines) == 1
            assert step is not None and step.status == StepStatus.SUCCEEDED
            assert attention("west", lender_id) == []
        elif repeat == "problem":
            assert step is not None and step.status == StepStatus.FAILED
            [needed] = attention("west", lender_id)
            assert "Resource Cannot Be Provided" in needed.reason
        else:
            assert step is not None and step.status == StepStatus.SUCCEEDED
            assert attention("west", lender_id) == []
    finally:
        requests.delete(f"{sb.urls['wms']}/_sim/faults", timeout=10)


@pytest.mark.parametrize("lookups", ["answered", "none"])
@pytest.mark.parametrize("wording", ["problem_duplicate_item", "problem_other_wording"])
def test_a_lost_accept_item_answer_ends_with_exactly_one_temp_item(
    sandbox: Sandbox, wording: str, lookups: str
) -> None:
    sb = sandbox
    item = f"LOSTA-{uuid.uuid4().hex[:6].upper()}"
    sim(sb, "wms", "POST", "items", registry_id=WEST, barcode=item, branch=WEST)
    options = {"duplicate_temp_barcode": wording, **(NO_LOOKUPS if lookups == "none" else {})}
    with wms_options(sb, **options):
        pair = create_pair(sb, volumes=[{"item_barcode": item}])
        lose_next_answer(sb, "AcceptItem")
        ship_and_receive(sb, pair, [item])
    try:
        borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
        temps = [t for t in sim(sb, "wms", "GET", f"temp-items?registry_id={EAST}") if t["barcode"] == hrid]
        holds = [h for h in sim(sb, "wms", "GET", f"holds?registry_id={EAST}") if h["item_barcode"] == hrid]
        assert len(temps) == 1 and [h["status"] for h in holds] == ["Pending"]
        step = current_services().store.get_step("east", borrower_id, StepName.BORROW_RECEIVED)
        lines = history("east", borrower_id)
        if lookups == "answered":
            assert any(line.startswith("LookupUser (verify before re-sending)") for line in lines), lines
            assert step is not None and step.status == StepStatus.SUCCEEDED
            assert attention("east", borrower_id) == []
        elif wording == "problem_duplicate_item":
            assert any("Duplicate Item" in line for line in lines), lines
            assert step is not None and step.status == StepStatus.SUCCEEDED
            assert attention("east", borrower_id) == []
        else:
            assert step is not None and step.status == StepStatus.FAILED
            [needed] = attention("east", borrower_id)
            assert "Resource Cannot Be Provided" in needed.reason
    finally:
        requests.delete(f"{sb.urls['wms']}/_sim/faults", timeout=10)
