"""The bridge under every value of every WMS simulator switch (sandbox/wms/options.py): the matrix.

Run it alone with ``pytest -m wms_matrix``; it is part of ``make test`` (and so of CI).

One request pair is two lives at once: east borrows (temp item + hold, the patron picks it up and returns it)
and west lends (check-out to east's account on shipping, check-in on return). A life runs with one return
order on both sides:

- ``reshare-first``: the patron's return is recorded in ReShare first (the bridge checks the temp item in), and
  the lender completes in ReShare first (the bridge checks the lent item in);
- ``wms-first``: staff check the temp item in at east's WMS desk, and the lent item at west's, first; the
  reconciler notices each and updates ReShare (``patronReturnedItem``, ``supplierCheckOutOfReshare``).

Every life must end right in both systems: both requests complete, every temp item checked in, home and
Unavailable with no active hold or loan, every lent item back on the shelf, exactly one temp item per volume and
one loan per lent item (no duplicate), both mappings closed, and no attention item but the ones a person needs.

How the rows were chosen (each switch moved off its default one at a time; the all-defaults row runs every life):
each switch value runs only the lives it can change, so CI stays within a few minutes.

- all defaults: both orders x single/multi-volume with the ``circill`` message profile, both orders with
  multi-volume under ``reshare`` (its messages do not differ per volume count): the baseline;
- ``lookup_item=supported`` (with the library's probe ``lookup_item``): wms-first, multi-volume.
  Only the probe and verify-before-re-send call LookupItem;
- ``lookup_user=unsupported``: wms-first, single. WMS-side returns cannot be noticed: staff get one reminder
  per side when the lender's due date passes, update ReShare, and the life still ends right;
- ``desired_due_date=policy_always``: reshare-first, single, both profiles. Only CheckOutItem's due date moves:
  with ``circill`` MandatedAction makes WMS honour ReShare's date; with ``reshare`` WMS keeps its policy's date
  and staff are told once (a needed item);
- ``due_date_style=utc``: reshare-first, single, both profiles (the calendar-date comparison);
- ``checkin_of_held_temp_item=keeps_hold``: reshare-first, single (temp items checked in while on loan: shown
  unchanged), and the life it can change, under both values: a borrower request closed while its temp item is
  on the hold shelf (WMS kept the hold: the bridge sees it, cancels it with CancelRequestItem and looks again;
  a hold WMS will not cancel goes to staff);
- ``repeat_checkout_same_account`` and ``duplicate_temp_barcode``: only a re-sent message meets them, so they
  run with lost answers (``tests/e2e/test_wms_lost_answers.py``, same marker);
- ``expired_account_when_mandated``: under both values, the life that reaches it: the partner account expires
  today. The bridge's SCIM check lets it through (it refuses an account expired *before* today); WMS counts it
  expired from the start of the day. ``refused``: CheckOutItem's Problem goes to staff; ``honoured``: the loan is
  made, due at the expiry, and staff are told of the different due date once.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from illbridge.models import StepName
from illbridge.wiring import current_services
from sandbox.runtime import Sandbox
from tests.e2e.conftest import library_settings, reconciliation_due, settle, ship_and_receive, sim

pytestmark = [pytest.mark.e2e, pytest.mark.wms_matrix]
EAST, WEST = "128807", "262626"
DUE = (datetime.now(UTC) + timedelta(days=21)).date()  # the lender's due date
DUE_PASSED_HOURS = 24 * 23  # the bridge's clock this far ahead: the lender's due date has passed


@contextlib.contextmanager
def wms_options(sb: Sandbox, **options: str) -> Iterator[None]:
    """WMS simulator switches for one row; the defaults are put back after."""
    defaults = {s["name"]: s["default"] for s in sim(sb, "wms", "GET", "options")["switches"]}
    sim(sb, "wms", "POST", "options", **options)
    try:
        yield
    finally:
        sim(sb, "wms", "POST", "options", **defaults)


@contextlib.contextmanager
def profile(sb: Sandbox, name: str, **wms: str) -> Iterator[None]:
    with (
        library_settings(sb, "east", wms={"message_profile": name, **wms}),
        library_settings(sb, "west", wms={"message_profile": name, **wms}),
    ):
        yield


def attention(tenant: str, request_id: str) -> list[Any]:
    return [a for a in current_services().store.list_attention(tenant) if a.request_id == request_id]


def ever_raised(tenant: str, request_id: str) -> list[str]:
    """Every attention item the bridge raised for the request (history notes), resolved or not."""
    return [
        h.summary
        for h in current_services().store.history(tenant, request_id)
        if h.operation == "attention raised" or h.operation.startswith("reminder")
    ]


def life(sb: Sandbox, *, order: str, volumes: int, expect_unnoticed: bool = False) -> dict[str, Any]:
    """One pair's whole life with this return order; checks that it ends right. Returns the pair."""
    tag = uuid.uuid4().hex[:6].upper()
    items = [f"MX-{tag}-{n:04d}" for n in range(1, volumes + 1)]
    for barcode in items:
        sim(sb, "wms", "POST", "items", registry_id=WEST, barcode=barcode, branch=WEST, title="Matrix")
    pair = borrowed_from_west(
        sb,
        "The Name of the Rose",
        [{"item_barcode": b, "call_number": f"QA76 .M{n}"} for n, b in enumerate(items)],
    )
    borrower_id, lender_id, hrid = pair["borrower"]["id"], pair["lender"]["id"], pair["hrid"]
    east, west = ship_and_receive(sb, pair, items)
    temps = [hrid] if volumes == 1 else [f"{hrid}-{b[-4:]}" for b in items]

    # the patron picks the items up; reconciliation looks while they are on loan
    for barcode in temps:
        sim(sb, "wms", "POST", "checkin", barcode=barcode, branch=EAST, registry_id=EAST)
        sim(
            sb,
            "wms",
            "POST",
            "checkout",
            item_barcode=barcode,
            patron_barcode="EAST-P-0001",
            registry_id=EAST,
        )
    with reconciliation_due():
        settle(sb)

    if order == "reshare-first":
        east.act(borrower_id, "patronReturnedItem")
        settle(sb)
        east.act(borrower_id, "shippedReturn")
        settle(sb)
        west.act(lender_id, "supplierCheckOutOfReshare")
        settle(sb)
    else:
        for barcode in temps:  # the patron brings them back to east's desk
            sim(sb, "wms", "POST", "checkin", barcode=barcode, branch=EAST, registry_id=EAST)
        with reconciliation_due(hours=26):
            settle(sb)
        if expect_unnoticed:
            assert east.state(borrower_id) == "REQ_CHECKED_IN"  # WMS could not tell the bridge
            remind(sb, "east", borrower_id, hrid, StepName.BORROW_WMS_RETURNED)
            east.act(borrower_id, "patronReturnedItem")  # staff do what the reminder says
            settle(sb)
        assert east.state(borrower_id) == "REQ_AWAITING_RETURN_SHIPPING"
        east.act(borrower_id, "shippedReturn")
        settle(sb)
        for barcode in items:  # west's staff check the items in when they arrive
            sim(sb, "wms", "POST", "checkin", barcode=barcode, branch=WEST, registry_id=WEST)
        with reconciliation_due(hours=52):
            settle(sb)
        if expect_unnoticed:
            assert west.state(lender_id) != "RES_COMPLETE"
            remind(sb, "west", lender_id, hrid, StepName.LEND_WMS_RETURNED)
            west.act(lender_id, "supplierCheckOutOfReshare")
            settle(sb)

    # Both requests complete
    assert east.state(borrower_id) == "REQ_REQUEST_COMPLETE"
    assert west.state(lender_id) == "RES_COMPLETE"
    # WMS: exactly one temp item per volume, each checked in, home, Unavailable, no active hold or loan
    made = [
        t for t in sim(sb, "wms", "GET", f"temp-items?registry_id={EAST}") if t["barcode"].startswith(hrid)
    ]
    assert sorted(t["barcode"] for t in made) == sorted(temps)
    assert {(t["status"], t["branch"]) for t in made} == {("Unavailable", EAST)}
    holds = [h for h in sim(sb, "wms", "GET", f"holds?registry_id={EAST}") if h["item_barcode"] in temps]
    assert len(holds) == volumes and not [h for h in holds if h["status"] in ("Pending", "Ready")]
    east_loans = [
        loan for loan in sim(sb, "wms", "GET", f"loans?registry_id={EAST}") if loan["item_barcode"] in temps
    ]
    assert not [loan for loan in east_loans if loan["active"]]
    # the lent items: back on the shelf, one loan each (never a second), none active
    for barcode in items:
        assert sim(sb, "wms", "GET", f"items/{barcode}?registry_id={WEST}")["status"] == "Available"
    west_loans = [
        loan for loan in sim(sb, "wms", "GET", f"loans?registry_id={WEST}") if loan["item_barcode"] in items
    ]
    assert sorted(loan["item_barcode"] for loan in west_loans) == sorted(items)
    assert {loan["patron_barcode"] for loan in west_loans} == {"ILL-EAST"}
    assert not [loan for loan in west_loans if loan["active"]]
    # both mappings closed, every item checked in
    store = current_services().store
    for tenant, request_id in (("east", borrower_id), ("west", lender_id)):
        mapping = store.get_mapping(tenant, request_id)
        assert mapping is not None and not mapping.open and all(i.checked_in for i in mapping.items), tenant
    return pair


def remind(sb: Sandbox, tenant: str, request_id: str, hrid: str, step: StepName) -> None:
    """The lender's due date passes with the request still open: exactly one reminder, the desk's wording."""
    for _ in range(2):  # a second run does not raise it again
        with reconciliation_due(hours=DUE_PASSED_HOURS):
            run = sb.run_schedule("WmsReconcilerFunction")
        assert run.ok, run.error
        sb.drain()
    [item] = attention(tenant, request_id)
    assert (item.step, item.reason) == (step.value, f"Update ReShare request {hrid}")
    assert sum("Update ReShare request" in line for line in ever_raised(tenant, request_id)) == 1


def no_attention(pair: dict[str, Any], *, allowed: tuple[str, ...] = ()) -> None:
    """Nothing on either list at the end, and nothing was ever raised but what a person needed (``allowed``)."""
    for tenant, request_id in (("east", pair["borrower"]["id"]), ("west", pair["lender"]["id"])):
        raised = ever_raised(tenant, request_id)
        assert all(any(a in line for a in allowed) for line in raised), (tenant, raised)
        open_items = attention(tenant, request_id)
        assert all(any(a in i.reason for a in allowed) for i in open_items), (tenant, open_items)


# --- the rows -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_profile", "volumes"),
    [
        ("circill", 1),
        ("circill", 2),
        ("reshare", 2),
    ],  # the reshare profile's messages are the same per volume
    ids=["circill-single", "circill-multi", "reshare-multi"],
)
@pytest.mark.parametrize("order", ["reshare-first", "wms-first"])
def test_all_defaults(sandbox: Sandbox, order: str, volumes: int, message_profile: str) -> None:
    with profile(sandbox, message_profile):
        pair = life(sandbox, order=order, volumes=volumes)
    no_attention(pair)


def test_lookup_item_supported_with_the_lookup_item_probe(sandbox: Sandbox) -> None:
    with (
        wms_options(sandbox, lookup_item="supported"),
        profile(sandbox, "circill", checkin_probe="lookup_item"),
    ):
        pair = life(sandbox, order="wms-first", volumes=2)
    no_attention(pair)
    calls = [e["operation"] for e in sim(sandbox, "wms", "GET", "requests-log")]
    assert "LookupItem" in calls


def test_lookup_user_unsupported_wms_first_returns_end_in_one_reminder_each(sandbox: Sandbox) -> None:
    with wms_options(sandbox, lookup_user="unsupported"):
        pair = life(sandbox, order="wms-first", volumes=1, expect_unnoticed=True)
    no_attention(pair, allowed=("Update ReShare request",))
    for tenant, request_id in (("east", pair["borrower"]["id"]), ("west", pair["lender"]["id"])):
        assert attention(tenant, request_id) == []  # staff updated ReShare: the reminder left the list


@pytest.mark.parametrize("message_profile", ["circill", "reshare"])
def test_desired_due_date_policy_always(sandbox: Sandbox, message_profile: str) -> None:
    with wms_options(sandbox, desired_due_date="policy_always"), profile(sandbox, message_profile):
        pair = life(sandbox, order="reshare-first", volumes=1)
    if message_profile == "circill":
        no_attention(pair)  # MandatedAction: WMS honours ReShare's date
        return
    # ReShare's profile sends no MandatedAction: WMS keeps its policy's date, and staff are told once
    no_attention(pair, allowed=("WMS set a different due date",))
    [item] = attention("west", pair["lender"]["id"])
    assert item.reason.startswith("WMS set a different due date than ReShare")


@pytest.mark.parametrize("message_profile", ["circill", "reshare"])
def test_due_date_style_utc(sandbox: Sandbox, message_profile: str) -> None:
    with wms_options(sandbox, due_date_style="utc"), profile(sandbox, message_profile):
        pair = life(sandbox, order="reshare-first", volumes=1)
    no_attention(pair)


def test_checkin_of_held_temp_item_keeps_hold(sandbox: Sandbox) -> None:
    with wms_options(sandbox, checkin_of_held_temp_item="keeps_hold"):
        pair = life(sandbox, order="reshare-first", volumes=1)
    no_attention(pair)


def borrowed_from_west(sb: Sandbox, title: str, volumes: list[dict[str, Any]]) -> Any:
    """A request pair in the ReShare simulator: EAST-P-0001 borrows ``volumes`` from west (pickup east-main),
    the lender awaiting picking."""
    return sim(
        sb,
        "reshare",
        "POST",
        "requests",
        borrower_tenant="east",
        lender_tenant="west",
        title=title,
        patron_barcode="EAST-P-0001",
        pickup_location_slug="east-main",
        volumes=volumes,
        lender_state="RES_AWAIT_PICKING",
        due_date=DUE.isoformat(),
    )


def on_the_hold_shelf(sb: Sandbox, item: str) -> tuple[Any, Any, Any]:
    """East borrows ``item`` from west, receives it, and its temp item waits on east's hold shelf (checked in at
    the pickup branch, never picked up): east, the borrower request's id, its hrid (the temp item)."""
    pair = borrowed_from_west(sb, "Never picked up", [{"item_barcode": item}])
    east, _ = ship_and_receive(sb, pair, [item])
    borrower_id, hrid = pair["borrower"]["id"], pair["hrid"]
    sim(sb, "wms", "POST", "checkin", barcode=hrid, branch=EAST, registry_id=EAST)  # on the hold shelf
    return east, borrower_id, hrid


@pytest.mark.parametrize("value", ["cancels_hold", "keeps_hold"])
def test_checkin_of_held_temp_item_when_a_request_closes_before_pickup(sandbox: Sandbox, value: str) -> None:
    """The life this switch can change: a temp item on the hold shelf when the borrower request closes."""
    sb = sandbox
    item = f"MX-{uuid.uuid4().hex[:6].upper()}-0001"
    sim(sb, "wms", "POST", "items", registry_id=WEST, barcode=item, branch=WEST, title="Matrix")
    with wms_options(sb, checkin_of_held_temp_item=value):
        east, borrower_id, hrid = on_the_hold_shelf(sb, item)
        east.act(borrower_id, "manualClose", {"terminalState": "REQ_CANCELLED"})
        settle(sb)
    [hold] = [h for h in sim(sb, "wms", "GET", f"holds?registry_id={EAST}") if h["item_barcode"] == hrid]
    mapping = current_services().store.get_mapping("east", borrower_id)
    assert mapping is not None and not mapping.open
    if value == "cancels_hold":
        assert hold["status"] == "Cancelled"
        assert attention("east", borrower_id) == []
    else:  # WMS kept the hold: the bridge saw it (LookupUser), cancelled it (CancelRequestItem), looked again
        assert hold["status"] == "Cancelled"
        assert attention("east", borrower_id) == [] and ever_raised("east", borrower_id) == []
        lines = [
            (h.operation, h.outcome.value, h.summary)
            for h in current_services().store.history("east", borrower_id)
            if h.operation.startswith(("CancelRequestItem", "LookupUser"))
        ]
        assert [line[:2] for line in lines] == [
            ("LookupUser (hold left after check-in?)", "success"),
            ("CancelRequestItem", "success"),
            ("LookupUser (hold left after check-in?)", "success"),
        ], lines
        assert lines[0][2] == f"still held: {hrid}" and lines[-1][2] == "no hold left"
        # and the request WMS was sent validates against NCIP 2.02 (the simulator refuses what does not)
        [sent] = [
            r
            for r in sim(sb, "wms", "GET", f"requests-log?registry_id={EAST}")
            if r.get("operation") == "CancelRequestItem"
        ]
        assert sent["outcome"] == "success", sent


def test_a_hold_wms_will_not_cancel_goes_to_staff(sandbox: Sandbox) -> None:
    """keeps_hold, and WMS refuses the CancelRequestItem: the temp item's hold is left for staff, once."""
    sb = sandbox
    item = f"MX-{uuid.uuid4().hex[:6].upper()}-0001"
    sim(sb, "wms", "POST", "items", registry_id=WEST, barcode=item, branch=WEST, title="Matrix")
    with wms_options(sb, checkin_of_held_temp_item="keeps_hold"):
        east, borrower_id, hrid = on_the_hold_shelf(sb, item)
        sim(
            sb,
            "wms",
            "POST",
            "faults",
            operation="CancelRequestItem",
            kind="problem",
            problem_type="User Not Authorized",
            times=-1,
        )
        try:
            east.act(borrower_id, "manualClose", {"terminalState": "REQ_CANCELLED"})
            settle(sb)
        finally:
            sim(sb, "wms", "DELETE", "faults")
    [hold] = [h for h in sim(sb, "wms", "GET", f"holds?registry_id={EAST}") if h["item_barcode"] == hrid]
    assert hold["status"] == "Ready"
    mapping = current_services().store.get_mapping("east", borrower_id)
    assert mapping is not None and not mapping.open
    [needed] = attention("east", borrower_id)
    assert needed.reason.startswith(f"Temp item(s) {hrid} of request {hrid} still have the patron's hold")
    [refused] = [
        h for h in current_services().store.history("east", borrower_id) if h.operation == "CancelRequestItem"
    ]
    assert refused.outcome.value == "problem" and "User Not Authorized" in refused.summary


@contextlib.contextmanager
def account_expiring_today(sb: Sandbox) -> Iterator[None]:
    """West's account for east (ILL-EAST) expires today: the bridge's SCIM check lets it through (it is not
    expired *before* today), WMS's circulation counts it expired from the start of the day."""
    [account] = [
        p for p in sim(sb, "wms", "GET", f"patrons?registry_id={WEST}") if p["barcode"] == "ILL-EAST"
    ]
    sim(
        sb,
        "wms",
        "POST",
        "patrons",
        registry_id=WEST,
        barcode="ILL-EAST",
        expires=datetime.now(UTC).date().isoformat(),
    )
    try:
        yield
    finally:
        sim(sb, "wms", "POST", "patrons", registry_id=WEST, barcode="ILL-EAST", expires=account["expires"])


@pytest.mark.parametrize("value", ["refused", "honoured"])
def test_expired_account_when_mandated(sandbox: Sandbox, value: str) -> None:
    """The life this switch can change: CheckOutItem with MandatedAction (circill) to an account expiring today."""
    sb = sandbox
    with wms_options(sb, expired_account_when_mandated=value), account_expiring_today(sb):
        if value == "honoured":
            # WMS honours the checkout, its due date capped at the expiry (today): staff are told once
            pair = life(sb, order="reshare-first", volumes=1)
            no_attention(pair, allowed=("WMS set a different due date",))
            [item] = attention("west", pair["lender"]["id"])
            assert item.reason.startswith("WMS set a different due date than ReShare")
            return
        tag = uuid.uuid4().hex[:6].upper()
        item_barcode = f"MX-{tag}-0001"
        sim(sb, "wms", "POST", "items", registry_id=WEST, barcode=item_barcode, branch=WEST, title="Matrix")
        pair = borrowed_from_west(sb, "Expired account", [{"item_barcode": item_barcode}])
        ship_and_receive(sb, pair, [item_barcode])
    # WMS refused the checkout (expired account): nothing is on loan, and staff are told on the lending side
    lender_id = pair["lender"]["id"]
    assert not [
        loan
        for loan in sim(sb, "wms", "GET", f"loans?registry_id={WEST}")
        if loan["item_barcode"] == item_barcode and loan["active"]
    ]
    [needed] = attention("west", lender_id)
    assert needed.step == StepName.LEND_SHIPPED.value
    assert "User Ineligible To Check Out This Item" in needed.reason, needed.reason
