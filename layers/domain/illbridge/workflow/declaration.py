"""What a step declaration says (the declarations themselves are in ``workflow.steps``).

One ``StepDeclaration`` per step names everything about it that used to be spread over five places: its
trigger (the bus detail-type, the side and, for ReShare changes, the states: exactly what its template rule
matches), the function and queue that run it, the steps it waits for, its configuration switch, its
late-delivery guard, its verify-before-re-send hook and its action. The engine (``engine.run_declared``) reads
it and does the waiting, the switch, the late-delivery guard and the verifying; the action does only what is
particular to the step. ``tests/template/test_declarations.py`` checks the template against the
declarations, both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from illbridge.models import MappedItem, Mapping, ReShareRequestChanged, Side, StepName, WmsItemCheckedIn

if TYPE_CHECKING:
    from illbridge.workflow.engine import StepContext, StepResult

RESHARE_CHANGE = ReShareRequestChanged.DETAIL_TYPE
WMS_CHECK_IN = WmsItemCheckedIn.DETAIL_TYPE


@dataclass(frozen=True)
class Trigger:
    """What the step's template rule matches: a detail-type, a side and (ReShare changes) the states."""

    detail_type: str
    side: Side
    states: frozenset[str] = frozenset()

    def pattern(self) -> dict[str, Any]:
        """The ``detail`` part of the EventBridge pattern this trigger is (as the template writes it)."""
        detail: dict[str, Any] = {"side": [self.side.value]}
        if self.states:
            detail["state"] = sorted(self.states)
        return detail


@dataclass(frozen=True)
class Wait:
    """An earlier step this one waits for (transient ``WaitingForEarlierStep``, the record comes back later).

    ``until_done``: wait until the earlier step has finished, even if it has not started yet (``unless_unseen``:
    except when it has not started and the request has no mapping, i.e. the bridge never saw the earlier
    change and nothing was made). Otherwise wait only while the earlier step is going to run (in progress or
    retryable)."""

    step: StepName
    until_done: bool = False
    unless_unseen: bool = False


@dataclass(frozen=True)
class LateGuard:
    """A delivery that comes after ReShare moved on: with the request already in one of ``states`` and no
    mapping yet (nothing was sent), the step is skipped with a history line ``operation``: ``ReShare already
    shows <state>: <consequence>``, so nothing is created in WMS that a later step would never clean up."""

    states: frozenset[str]
    operation: str
    consequence: str


@dataclass(frozen=True)
class Switch:
    """The library's configuration switch (``steps.<name>``). ``skip``: off means the step is skipped by the
    engine. Otherwise the action reads it (the WMS-first steps: off means staff update ReShare by hand)."""

    name: str
    skip: bool = True


@dataclass(frozen=True)
class StepDeclaration:
    name: StepName
    function: str  # functions/<function>/ and its queue; the template's function is its CamelCase + Function
    triggers: tuple[Trigger, ...]
    action: Callable[[StepContext], StepResult]
    summary: str
    waits_for: tuple[Wait, ...] = ()
    switch: Switch | None = None
    late: LateGuard | None = None
    # after an attempt whose outcome is unknown, before re-sending for an item: is it done in WMS already?
    # (the hook records what it found on the item). Run by the engine: ``StepContext.already_done``.
    verify: Callable[[StepContext, Mapping, MappedItem], bool] | None = None
    # a WMS check-in event is first confirmed and marked on the mapping (``workflow.notices``); the entry that
    # does it before the engine runs the step
    entry: Callable[..., StepResult] | None = field(default=None, compare=False)

    def handles(self, detail_type: str) -> bool:
        return any(t.detail_type == detail_type for t in self.triggers)
