"""All of the template's timings scaled by one factor, so the sandbox can run faster (or slower) than AWS while
every relation between them still holds (issue 12, deliverable 5; docs/reliability.md, "Timings").

``scale_timings(template, factor)`` returns a copy of the loaded template in which every figure of time is
multiplied by ``factor``: each function's ``Timeout`` (Globals and per function), every timing variable of the
functions' environments (``TIMING_VARIABLES``: the step lease, the connect and read timeouts, the pauses between
tries), and every queue's ``VisibilityTimeout`` (rounded up to whole seconds, as SQS wants them; rounding up
keeps "timeout x 6 <= visibility" and "lease < visibility"). Try counts are not times and stay as they are.
API Gateway's 29 s integration limit scales with them (``api_gateway_limit``). Because every relation is
linear in these figures, a template whose timings fit together still fits at any factor:
``tests/template/test_timings.py`` checks every relation at several factors. ``Sandbox(time_scale=...)`` and
``python -m sandbox up --time-scale`` use it.
"""

from __future__ import annotations

import copy
import math
from typing import Any

TIMING_VARIABLES = (
    "STEP_LEASE_SECONDS",
    "RESHARE_CONNECT_TIMEOUT",
    "RESHARE_READ_TIMEOUT",
    "RESHARE_BACKOFF_SECONDS",
    "WMS_CONNECT_TIMEOUT",
    "WMS_MAX_READ_TIMEOUT",
    "AWS_CONNECT_TIMEOUT",
    "AWS_READ_TIMEOUT",
    "BUS_BACKOFF_SECONDS",
)
API_GATEWAY_LIMIT_SECONDS = 29.0


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where}: a timing must be a number to be scaled, not {value!r}")
    return float(value)


def _scale_environment(properties: dict[str, Any], factor: float, where: str) -> None:
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    for name in TIMING_VARIABLES:
        if name in variables:
            variables[name] = _number(variables[name], f"{where}.{name}") * factor


def scale_timings(template: dict[str, Any], factor: float) -> dict[str, Any]:
    """A copy of ``template`` with every timing multiplied by ``factor`` (> 0)."""
    if not isinstance(factor, int | float) or isinstance(factor, bool) or not factor > 0:
        raise ValueError("the time scale must be a number greater than 0")
    scaled = copy.deepcopy(template)
    function_globals = (scaled.get("Globals") or {}).get("Function") or {}
    if "Timeout" in function_globals:
        function_globals["Timeout"] = _number(function_globals["Timeout"], "Globals.Timeout") * factor
    _scale_environment(function_globals, factor, "Globals")
    for logical_id, resource in (scaled.get("Resources") or {}).items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function":
            if "Timeout" in properties:
                properties["Timeout"] = _number(properties["Timeout"], f"{logical_id}.Timeout") * factor
            _scale_environment(properties, factor, logical_id)
        elif resource.get("Type") == "AWS::SQS::Queue" and "VisibilityTimeout" in properties:
            seconds = _number(properties["VisibilityTimeout"], f"{logical_id}.VisibilityTimeout") * factor
            properties["VisibilityTimeout"] = max(1, math.ceil(seconds))
    return scaled


def api_gateway_limit(factor: float) -> float:
    """API Gateway's integration timeout at this scale."""
    return API_GATEWAY_LIMIT_SECONDS * factor
