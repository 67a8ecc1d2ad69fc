"""Lending under refusals and faults, end to end in the sandbox (issue 15, points 2, 6 and 7).

2. Each refusal a lender meets on shipping is one clear attention item (what is wrong, what to fix, how to
   retry) with nothing half-done: an item barcode WMS does not know, an item on loan to someone else, an
   account WMS does not know, a blocked account, an expired account, a partner with no account mapped. After
   staff fix the cause, ``illbridge retry`` completes the step, once.
6. Multi-volume: one volume refused while the others go out leaves the loans that were made, one attention
   item for the one refused, and a retry that sends only that volume; the volumes come back together.
7. Never twice: every event delivered twice and shuffled while WMS applies one CheckOutItem and its answer is
   lost: exactly one loan per item, checked in at the end, and the history shows the verification (LookupUser:
   the account's loans) before anything could be sent again - under each value of the WMS simulator's switches
   for repeated check-outs and due dates.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from illbridge.models import HistoryEntry, Outcome, StepName, StepStatus
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import Library, create_pair, library_settings, other_library, settle, sim
from tests.e2e.test_borrowing_faults import (
    Interceptor,
    attention_for,
    dead_letters,
    history,
    step_queue_depth,
)
from tests.e2e.test_lending import (
    DUE,
    assert_back_on_the_shelf,
    bring_back,
    complete,
    lend,
    loans,
    new_items,
    step_status,
)
from tests.e2e.test_wms_matrix import WEST, wms_options
from tests.staff_cli import illbridge

pytestmark = pytest.mark.e2e


def wms_account(sb: Sandbox, **fields: Any) -> str:
    """A borrowing-institution account in west's WMS (fresh barcode); ``fields``: expires, blocked."""
    barcode = f"ILL-EAST-{uuid.uuid4().hex[:6].upper()}"
    sim(sb, "wms", "POST", "patrons", registry_id=WEST, barcode=barcode, borrower_category="ILL", **fields)
    return barcode


def check_outs(tenant: str, request_id: str) -> list[HistoryEntry]:
    """The request's CheckOutItem history lines, in order."""
    return [h for h in current_services().store.history(tenant, request_id) if h.operation == "CheckOutItem"]


# --- 2. refusals ----------------------------------------------------------------------------------------

# Each case: how to set it up (an account mapped for east, an item on loan elsewhere, ...), what the attention
# item must say, and the fix staff make before the retry.
REFUSALS: dict[str, dict[str, Any]] = {
    "unknown-item": {"reason": ["WMS would not check out", "Unknown Item"], "fix": ["add the item to WMS"]},
    "on-loan-to-someone-else": {
        "reason": ["WMS would not check out", "Resource Cannot Be Provided"],
        "fix": ["check the item in at WMS"],
    },
    "unknown-account": {
        "reason": ["WMS has no borrowing-institution account"],
        "fix": ["map the partner to another account"],
    },
    "blocked-account": {"reason": ["is blocked in WMS"], "fix": ["unblock the account in WMS"]},
    "expired-account": {"reason": ["expired on 2021-06-30"], "fix": ["renew"]},
    "no-account-for-partner": {
        "reason": ["No WMS account for borrowing institution", "RESHARE:NORTH"],
        "fix": ["partner_accounts"],
    },
}


@contextlib.contextmanager
def fixed_in_wms(change: Callable[[], object]) -> Iterator[None]:
    """Staff correct something in WMS (for good: nothing is put back)."""
    change()
    yield


@contextlib.contextmanager
def refusal(sb: Sandbox, case: str, item: str) -> Iterator[dict[str, Any]]:
    """Set the case up for a request that ships ``item``. Yields the account the item should end up on loan to,
    the words the attention item must name, extra fields of the pair, and ``fix``: staff's correction (a
    context manager the retry runs in)."""
    if case == "unknown-item":
        yield {
            "account": "ILL-EAST",
            "named": item,
            "fix": lambda: fixed_in_wms(lambda: new_item_named(sb, item)),
        }
    elif case == "on-loan-to-someone-else":
        sim(sb, "wms", "POST", "checkout", item_barcode=item, patron_barcode="WEST-P-0001", registry_id=WEST)

        def checked_in() -> None:
            sim(sb, "wms", "POST", "checkin", barcode=item, branch=WEST)

        yield {"account": "ILL-EAST", "named": item, "fix": lambda: fixed_in_wms(checked_in)}
    elif case == "no-account-for-partner":
        north = other_library(sb)
        with library_settings(sb, "west", default_partner_account=None):
            yield {
                "account": "ILL-DEFAULT",
                "named": "RESHARE:NORTH",
                "pair": {"borrower_tenant": "north", "pickup_location_slug": "north-main"},
                "fix": lambda: library_settings(
                    sb, "west", partner_accounts={"RESHARE:NORTH": "ILL-DEFAULT"}
                ),
            }
        north.close()
    elif case == "unknown-account":
        account = f"ILL-NOBODY-{uuid.uuid4().hex[:6].upper()}"
        with library_settings(sb, "west", partner_accounts={"RESHARE:EAST": account}):
            yield {  # staff map the partner to the account it should have had
                "account": "ILL-EAST",
                "named": account,
                "fix": lambda: library_settings(sb, "west", partner_accounts={"RESHARE:EAST": "ILL-EAST"}),
            }
    else:
        blocked = case == "blocked-account"
        account = wms_account(sb, **({"blocked": True} if blocked else {"expires": "2021-06-30"}))
        change = {"blocked": False} if blocked else {"expires": "2030-12-31"}

        def renewed() -> None:
            sim(sb, "wms", "POST", "patrons", registry_id=WEST, barcode=account, **change)

        with library_settings(sb, "west", partner_accounts={"RESHARE:EAST": account}):
            yield {"account": account, "named": account, "fix": lambda: fixed_in_wms(renewed)}


def new_item_named(sb: Sandbox, barcode: str) -> None:
    sim(sb, "wms", "POST", "items", registry_id=WEST, barcode=barcode, collection_type="circulating")


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_check_out_is_one_clear_attention_item_and_the_retry_completes_it_once(
    sandbox: Sandbox, case: str
) -> None:
    sb = sandbox
    spec = REFUSALS[case]
    item = (
        f"NEW-{uuid.uuid4().hex[:6].upper()}" if case == "unknown-item" else new_items(sb, "circulating")[0]
    )
    with refusal(sb, case, item) as setup:
        # When west ships the item
        pair = lend(sb, [item], **setup.get("pair", {}))
        lender_id, hrid = pair["lender"]["id"], pair["hrid"]
        # Then exactly one attention item, saying what is wrong (naming the item or account), what to fix, and
        # how to retry
        [needed] = attention_for("west", lender_id)
        assert needed.step == StepName.LEND_SHIPPED.value and needed.hrid == hrid
        for words in [*spec["reason"], setup["named"]]:
            assert words.lower() in needed.reason.lower(), needed.reason
        for words in spec["fix"]:
            assert words.lower() in needed.fix.lower(), needed.fix
        retry = ["retry", hrid, "--library", "west", "--step", "lend_shipped"]
        assert needed.retry == "illbridge " + " ".join(retry)
        assert "Traceback" not in needed.reason + needed.fix
        # and nothing half-done: no loan to the partner, the step FAILED (handled), nothing dead or in flight
        assert [loan["patron_barcode"] for loan in loans(sb, item) if loan["active"]] == (
            ["WEST-P-0001"] if case == "on-loan-to-someone-else" else []
        )
        assert step_status(pair, StepName.LEND_SHIPPED) == StepStatus.FAILED
        assert dead_letters(sb) == {} and step_queue_depth(sb) == 0
        assert Library(sb, "west").state(lender_id) == "RES_ITEM_SHIPPED"

        # When staff fix the cause and run the retry
        with setup["fix"]():
            code, said = illbridge(*retry, "--wait", "0")
            assert code == 0 and "lend_shipped released" in said, said
            settle(sb)

    # Then the item is on loan to the partner's account, once; the attention item has left the list
    assert [(loan["patron_barcode"], loan["active"]) for loan in loans(sb, item)][-1:] == [
        (setup["account"], True)
    ]
    assert [loan["active"] for loan in loans(sb, item)].count(True) == 1
    assert step_status(pair, StepName.LEND_SHIPPED) == StepStatus.SUCCEEDED
    assert attention_for("west", lender_id) == []
    assert [h.outcome for h in check_outs("west", lender_id)][-1:] == [Outcome.SUCCESS]
    assert history("west", lender_id).count("lend_shipped:CheckOutItem:success") == 1


# --- 6. multi-volume: one volume refused ------------------------------------------------------------------


def test_one_volume_refused_leaves_the_others_on_loan_and_the_retry_sends_only_it(sandbox: Sandbox) -> None:
    sb = sandbox
    first, last = new_items(sb, "circulating", "circulating")
    missing = f"NEW-{uuid.uuid4().hex[:6].upper()}"  # not in WMS yet
    items = [first, missing, last]
    pair = lend(sb, items)
    lender_id = pair["lender"]["id"]
    # Then the volumes WMS knows are on loan to east's account, and one attention item names the one refused
    for barcode in (first, last):
        assert [(loan["patron_barcode"], loan["active"]) for loan in loans(sb, barcode)] == [
            ("ILL-EAST", True)
        ]
    assert loans(sb, missing) == []
    [needed] = attention_for("west", lender_id)
    assert f"1 of 3 item(s) of request {pair['hrid']}" in needed.reason, needed.reason
    assert f"{missing}: Unknown Item" in needed.reason and f"checked out: {first}, {last}" in needed.reason
    assert step_status(pair, StepName.LEND_SHIPPED) == StepStatus.FAILED
    mapping = current_services().store.get_mapping("west", lender_id)
    assert mapping is not None and [i.created_in_wms for i in mapping.items] == [True, False, True]

    # When staff add the item to WMS and retry, Then only that volume is sent
    new_item_named(sb, missing)
    code, said = illbridge(
        "retry", pair["hrid"], "--library", "west", "--step", "lend_shipped", "--wait", "0"
    )
    assert code == 0, said
    settle(sb)
    sent = [(h.request["item_barcode"], h.outcome) for h in check_outs("west", lender_id)]
    assert sent == [
        (first, Outcome.SUCCESS),
        (missing, Outcome.PROBLEM),
        (last, Outcome.SUCCESS),
        (missing, Outcome.SUCCESS),
    ], sent
    for barcode in items:
        assert [(loan["patron_barcode"], loan["active"]) for loan in loans(sb, barcode)] == [
            ("ILL-EAST", True)
        ]
    assert attention_for("west", lender_id) == []
    assert step_status(pair, StepName.LEND_SHIPPED) == StepStatus.SUCCEEDED

    # When the volumes come back together and west completes, Then all three are back on the shelf
    bring_back(sb, pair)
    complete(sb, pair)
    assert_back_on_the_shelf(sb, pair, items)
    assert history("west", lender_id).count("lend_returned:CheckInItem:success") == 3


# --- 7. never twice ------------------------------------------------------------------------------------------

# Under the WMS simulator's defaults (single- and multi-volume), then under each other value of its switches for
# repeated check-outs and due dates (multi-volume). A re-sent CheckOutItem would show under every one of them:
# a second loan or a renewal in WMS, a refusal for staff, or a second CheckOutItem in the history.
NEVER_TWICE = [
    pytest.param({}, 1, id="defaults-single-volume"),
    pytest.param({}, 2, id="defaults-multi-volume"),
    pytest.param(
        {"repeat_checkout_same_account": "returns_existing_loan"}, 2, id="repeat-returns-existing-loan"
    ),
    pytest.param({"repeat_checkout_same_account": "renews"}, 2, id="repeat-renews"),
    pytest.param({"desired_due_date": "policy_always"}, 2, id="due-date-policy-always"),
    pytest.param({"due_date_style": "utc"}, 2, id="due-date-style-utc"),
]


@pytest.mark.parametrize(("options", "volumes"), NEVER_TWICE)
def test_every_event_twice_shuffled_and_a_lost_check_out_answer_make_exactly_one_loan_per_item(
    sandbox: Sandbox, options: dict[str, str], volumes: int
) -> None:
    sb = sandbox
    items = new_items(sb, *["circulating"] * volumes)
    pair = create_pair(sb, volumes=[{"item_barcode": b} for b in items], due_date=DUE.isoformat())
    borrower_id, lender_id = pair["borrower"]["id"], pair["lender"]["id"]
    east, west = Library(sb, "east"), Library(sb, "west")
    bridge = Interceptor(sb, seed=1500 + volumes + len(str(options)))
    settle(sb)  # nothing of earlier tests is left on the queues
    try:
        with wms_options(sb, **options):
            # When west ships, WMS applies the first CheckOutItem but its answer is lost, and every event comes
            # twice, shuffled
            west.act(
                lender_id,
                "supplierCheckInToReshareAndSupplierMarkShipped",
                {"itemBarcodes": [{"itemId": b} for b in items]},
            )
            bridge.capture()
            assert ("LendShippedQueue", "lending", "RES_ITEM_SHIPPED") in bridge.states()
            sim(sb, "wms", "POST", "faults", operation="CheckOutItem", kind="drop_response", times=1)
            bridge.deliver_twice_shuffled()
            assert not [f for f in sim(sb, "wms", "GET", "faults") if f["operation"] == "CheckOutItem"], (
                "unused"
            )
            # Then each item is on loan to east's account exactly once
            for barcode in items:
                assert [(loan["patron_barcode"], loan["active"]) for loan in loans(sb, barcode)] == [
                    ("ILL-EAST", True)
                ]
            # When it comes back and west completes, every event again twice and shuffled
            east.act(borrower_id, "requesterReceived")
            east.act(borrower_id, "patronReturnedItemAndShippedReturn")
            bridge.capture()
            west.act(lender_id, "supplierCheckOutOfReshare")
            bridge.capture()
            assert ("LendReturnedQueue", "lending", "RES_COMPLETE") in bridge.states()
            bridge.deliver_twice_shuffled()
            settle(sb)
    finally:
        requests.delete(f"{sb.urls['wms']}/_sim/faults", timeout=10)

    # Then exactly one loan per item, never renewed, ended: every item back on the shelf; nothing for staff
    for barcode in items:
        [loan] = loans(sb, barcode)
        assert (loan["patron_barcode"], loan["renewals"], loan["active"]) == ("ILL-EAST", 0, False)
    assert_back_on_the_shelf(sb, pair, items)
    assert west.state(lender_id) == "RES_COMPLETE"
    assert attention_for("west", lender_id) == [] and attention_for("east", borrower_id) == []
    assert dead_letters(sb) == {} and step_queue_depth(sb) == 0
    # And the history: the lost answer, then a look-up of the account's loans before anything was sent again;
    # the item whose answer was lost is never sent again, the others once
    entries = current_services().store.history("west", lender_id)
    [lost] = [
        n for n, h in enumerate(entries) if h.operation == "CheckOutItem" and h.outcome == Outcome.UNKNOWN
    ]
    lost_item = entries[lost].request["item_barcode"]
    verified = [
        n
        for n, h in enumerate(entries)
        if h.operation == "LookupUser (verify before re-sending)"
        and h.request.get("item_barcode") == lost_item
    ]
    assert verified and verified[0] > lost, [f"{h.operation}: {h.summary}" for h in entries]
    assert "already on loan" in entries[verified[0]].summary
    sent = [h.request["item_barcode"] for h in entries if h.operation == "CheckOutItem"]
    assert sorted(sent) == sorted(items), sent  # one CheckOutItem per item: the lost one's was never re-sent
    assert history("west", lender_id).count("lend_returned:CheckInItem:success") == volumes
