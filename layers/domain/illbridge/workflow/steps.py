"""The steps, one declaration each (docs/architecture.md#the-workflow-steps): what triggers it, which function
and queue run it, what it waits for, its switch, its late-delivery guard, its verify-before-re-send hook and
its action. ``StepName`` names them; the handlers route with ``routes``; the engine runs them with
``run_declared``; ``tests/template/test_declarations.py`` holds the template to them, both ways.

Changing a rule is this file. Adding a step is its declaration here (and its name in ``StepName``), its
handler file (``functions/<function>/app.py``: ``step_handler(routes("<function>"))``) and its template block
(function, queue, rule): the declarations test fails until all three agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from illbridge.models import Side, StepName
from illbridge.workflow import borrowing, closing, lending
from illbridge.workflow.declaration import (
    RESHARE_CHANGE,
    WMS_CHECK_IN,
    LateGuard,
    StepDeclaration,
    Switch,
    Trigger,
    Wait,
)
from illbridge.workflow.engine import StepResult, run_for_change
from illbridge.workflow.notices import on_wms_check_in
from illbridge.workflow.ports import StepPorts

# ReShare states that close a request for the bridge (mod-rs's terminal states, docs/reshare.md): borrowing
# cancelled / end of rota (reviewed or not) / filled locally / complete (not REQ_UNFILLED: mod-rs then sends
# the request to the next lender in the rota); lending cancelled / unfilled / not supplied.
BORROWING_CLOSED = frozenset(
    {
        "REQ_CANCELLED",
        "REQ_END_OF_ROTA",
        "REQ_END_OF_ROTA_REVIEWED",
        "REQ_FILLED_LOCALLY",
        "REQ_REQUEST_COMPLETE",
    }
)
LENDING_CLOSED = frozenset({"RES_CANCELLED", "RES_UNFILLED", "RES_NOT_SUPPLIED"})

STEPS: tuple[StepDeclaration, ...] = (
    StepDeclaration(
        name=StepName.BORROW_RECEIVED,
        function="borrow_received",
        summary="AcceptItem per volume: a temporary item and a hold for the patron at the pickup branch",
        triggers=(Trigger(RESHARE_CHANGE, Side.BORROWING, frozenset({"REQ_CHECKED_IN"})),),
        switch=Switch("create_temp_item_on_received"),
        # Returned, shipped back or ended already: the returned/closed steps may have run and found nothing to
        # check in, so a temp item created now would keep its hold forever.
        late=LateGuard(borrowing.PAST_RECEIVED_STATES, "nothing to create", "no temp item or hold"),
        verify=borrowing.verify_accepted,
        action=borrowing.create_temp_items,
    ),
    StepDeclaration(
        name=StepName.BORROW_RETURNED,
        function="borrow_returned",
        summary="CheckInItem per temp item when ReShare says returned",
        triggers=(
            Trigger(
                RESHARE_CHANGE,
                Side.BORROWING,
                frozenset({"REQ_AWAITING_RETURN_SHIPPING", "REQ_SHIPPED_TO_SUPPLIER"}),
            ),
        ),
        switch=Switch("check_in_on_returned"),
        waits_for=(Wait(StepName.BORROW_RECEIVED, until_done=True, unless_unseen=True),),
        action=borrowing.check_in_temp_items,
    ),
    StepDeclaration(
        name=StepName.BORROW_WMS_RETURNED,
        function="borrow_returned",
        summary="WMS checked the temp item in first: patronReturnedItem in ReShare, or attention",
        triggers=(Trigger(WMS_CHECK_IN, Side.BORROWING),),
        switch=Switch("update_reshare_when_wms_checks_in_first", skip=False),
        action=borrowing.update_reshare_after_wms_check_in,
        entry=on_wms_check_in,
    ),
    StepDeclaration(
        name=StepName.LEND_SHIPPED,
        function="lend_shipped",
        summary="CheckOutItem to the borrowing institution's account",
        # shipped, or first seen already past it: the borrower's "Received" moves mod-rs's lender on to
        # RES_AWAITING_RETURN_SHIPPING (responderISO18626Received), its timer to RES_OVERDUE
        triggers=(
            Trigger(
                RESHARE_CHANGE,
                Side.LENDING,
                frozenset({"RES_ITEM_SHIPPED", "RES_AWAITING_RETURN_SHIPPING", "RES_OVERDUE"}),
            ),
        ),
        switch=Switch("check_out_on_shipped"),
        # Complete or closed already: the complete step may have run and found nothing to check in, so a
        # check-out now would leave the item on loan for good.
        late=LateGuard(lending.CLOSED_STATES, "nothing to check out", "the item is not checked out"),
        verify=lending.verify_checked_out,
        action=lending.check_out_to_borrower,
    ),
    StepDeclaration(
        name=StepName.LEND_RETURNED,
        function="lend_returned",
        summary="CheckInItem when ReShare says complete",
        triggers=(Trigger(RESHARE_CHANGE, Side.LENDING, frozenset({"RES_COMPLETE"})),),
        switch=Switch("check_in_on_complete"),
        waits_for=(Wait(StepName.LEND_SHIPPED),),
        action=lending.check_in_lent_items,
    ),
    StepDeclaration(
        name=StepName.LEND_WMS_RETURNED,
        function="lend_returned",
        summary="WMS checked the lent item in first: supplierCheckOutOfReshare, or attention",
        triggers=(Trigger(WMS_CHECK_IN, Side.LENDING),),
        switch=Switch("update_reshare_when_wms_checks_in_first", skip=False),
        action=lending.complete_after_wms_check_in,
        entry=on_wms_check_in,
    ),
    StepDeclaration(
        name=StepName.REQUEST_CLOSED,
        function="request_closed",
        summary="check in what is left in WMS and close the mapping",
        triggers=(
            Trigger(RESHARE_CHANGE, Side.BORROWING, BORROWING_CLOSED),
            Trigger(RESHARE_CHANGE, Side.LENDING, LENDING_CLOSED),
        ),
        # the step that puts things into WMS for the request's side, while it is still going to run
        waits_for=(Wait(StepName.BORROW_RECEIVED), Wait(StepName.LEND_SHIPPED)),
        action=closing.end_mapping,
    ),
)

BY_NAME: dict[StepName, StepDeclaration] = {step.name: step for step in STEPS}

Route = Callable[[StepPorts, Any], StepResult]


def declaration(name: StepName) -> StepDeclaration:
    return BY_NAME[name]


def _route(step: StepDeclaration) -> Route:
    if step.entry is not None:
        entry = step.entry
        return lambda ports, event: entry(ports, event, step)
    return lambda ports, change: run_for_change(ports, change, step)


def routes(function: str) -> dict[str, Route]:
    """The routing of one step function: bus detail-type -> the step that handles it, from the declarations."""
    owners: dict[str, StepDeclaration] = {}
    for step in STEPS:
        if step.function != function:
            continue
        for trigger in step.triggers:
            if owners.setdefault(trigger.detail_type, step) is not step:
                raise ValueError(f"{function}: {trigger.detail_type} is declared for two steps")
    if not owners:
        raise KeyError(f"no step is declared for function {function!r}")
    return {detail_type: _route(step) for detail_type, step in owners.items()}
