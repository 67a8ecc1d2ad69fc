"""The step declarations (``illbridge.workflow.steps``) and the template agree, both ways.

Every step rule on the bridge's bus is one declared trigger (detail-type, side, states) of a declared step, and
targets the queue of the function that step is declared for; every declared trigger has such a rule; every
queue-fed function is a declared step function whose handler routes the declarations of its own name;
``StepName`` names exactly the declared steps. Adding a step is its declaration, its handler file and its
template block: until all three agree, this fails.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from illbridge.models import StepName
from illbridge.models.events import EVENT_SOURCE
from illbridge.workflow.declaration import RESHARE_CHANGE, WMS_CHECK_IN
from illbridge.workflow.steps import BY_NAME, STEPS, routes
from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
RESOURCES: dict[str, dict[str, Any]] = load_template(ROOT / "template.yaml")["Resources"]
STEP_EVENTS = {RESHARE_CHANGE, WMS_CHECK_IN}


def _queue_of(arn: Any) -> str:
    assert isinstance(arn, dict) and "Fn::GetAtt" in arn, arn
    return str(arn["Fn::GetAtt"][0])


def queue_functions() -> dict[str, str]:
    """queue resource -> the function directory (``functions/<dir>/``) it feeds."""
    found = {}
    for resource in RESOURCES.values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        for event in (props.get("Events") or {}).values():
            if event["Type"] == "SQS":
                found[_queue_of(event["Properties"]["Queue"])] = props["CodeUri"].strip("/").split("/")[-1]
    return found


def template_triggers() -> list[tuple[str, str, str, frozenset[str]]]:
    """(function, detail-type, side, states) of every rule that routes a bridge event to a step queue."""
    functions = queue_functions()
    found = []
    for name, resource in RESOURCES.items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        pattern = resource["Properties"].get("EventPattern") or {}
        kinds = set(pattern.get("detail-type", []))
        if not kinds & STEP_EVENTS:
            continue
        assert pattern.get("source") == [EVENT_SOURCE], name
        assert len(kinds) == 1, f"{name}: one detail-type per rule"
        detail = pattern.get("detail") or {}
        assert set(detail) <= {"side", "state"}, f"{name} matches on more than side and state: {detail}"
        sides = detail.get("side", [])
        assert len(sides) == 1, f"{name}: one side per rule"
        targets = resource["Properties"]["Targets"]
        assert len(targets) == 1, f"{name}: one target per rule"
        queue = _queue_of(targets[0]["Arn"])
        assert queue in functions, f"{name} targets {queue}, which feeds no function"
        found.append((functions[queue], kinds.pop(), sides[0], frozenset(detail.get("state", []))))
    return found


def declared_triggers() -> list[tuple[str, str, str, frozenset[str]]]:
    return [
        (step.function, trigger.detail_type, trigger.side.value, trigger.states)
        for step in STEPS
        for trigger in step.triggers
    ]


def test_every_template_rule_is_a_declared_trigger_and_every_trigger_has_its_rule() -> None:
    in_template = Counter(template_triggers())
    declared = Counter(declared_triggers())
    assert in_template == declared, {
        "rules with no declaration": sorted(map(str, in_template - declared)),
        "declarations with no rule": sorted(map(str, declared - in_template)),
    }


def test_no_two_declarations_match_the_same_event() -> None:
    seen: dict[tuple[str, str, str], str] = {}
    for step in STEPS:
        for trigger in step.triggers:
            states = trigger.states or frozenset({"*"})
            for state in states:
                key = (trigger.detail_type, trigger.side.value, state)
                assert key not in seen, f"{step.name} and {seen[key]} both take {key}"
                seen[key] = step.name


def test_step_name_names_exactly_the_declared_steps() -> None:
    assert set(StepName) == set(BY_NAME)
    assert len(STEPS) == len(BY_NAME)


def test_every_queue_fed_function_is_a_declared_step_function_and_back() -> None:
    assert set(queue_functions().values()) == {step.function for step in STEPS}


@pytest.mark.parametrize("function", sorted({step.function for step in STEPS}))
def test_each_step_handler_routes_the_declarations_of_its_own_name(function: str) -> None:
    source = (ROOT / "functions" / function / "app.py").read_text()
    assert re.search(rf"step_handler\(routes\(\"{function}\"\)\)", source), function
    declared = {t.detail_type for step in STEPS if step.function == function for t in step.triggers}
    assert set(routes(function)) == declared


def test_a_function_with_no_declared_step_has_no_routes() -> None:
    with pytest.raises(KeyError):
        routes("reshare_poller")


def test_switches_name_library_settings() -> None:
    from illbridge.config.library import StepSwitches

    for step in STEPS:
        if step.switch is not None:
            assert step.switch.name in StepSwitches.model_fields, step.name
