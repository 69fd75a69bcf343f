"""How a JSONata state computes what it sends and what it outputs: Arguments, Output (and
its defaults), Assign, Wait's Seconds/Timestamp, Task's TimeoutSeconds/HeartbeatSeconds,
Fail's Error/Cause, Map's Items/ItemSelector/tolerances and a Catcher's Output. Each field
may be a literal or hold ``{% %}`` expressions; failures are States.QueryEvaluationError."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import errors
from .jsonata import Scope, evaluate_items, evaluate_template
from .jsonvalues import clone, is_number
from .timestamps import parse_timestamp

_RESULT_STATES = frozenset({"Task", "Parallel", "Map"})


def _bad(field: str, value: Any, expected: str) -> errors.ASLError:
    return errors.ASLError(
        errors.QUERY_EVALUATION_ERROR,
        f"The field '{field}' evaluated to {json.dumps(value)}; expected {expected}.",
    )


def arguments(state: Mapping[str, Any], scope: Scope) -> Any:
    """What a Task (or Parallel/Map) receives: Arguments, or the state input when absent."""
    if "Arguments" in state:
        return evaluate_template(state["Arguments"], scope, "Arguments")
    return clone(scope.states["input"])


def output(state: Mapping[str, Any], scope: Scope) -> Any:
    """A state's output: Output, else the result (Task, Parallel, Map) or the input (others)."""
    if "Output" in state:
        return evaluate_template(state["Output"], scope, "Output")
    if state.get("Type") in _RESULT_STATES and "result" in scope.states:
        return clone(scope.states["result"])
    return clone(scope.states["input"])


def catch_output(catcher: Mapping[str, Any], scope: Scope) -> Any:
    """What a Catcher hands on: its Output, else the error output ``{"Error", "Cause"}``."""
    if "Output" in catcher:
        return evaluate_template(catcher["Output"], scope, "Output")
    return clone(scope.states["errorOutput"])


def assign(holder: Mapping[str, Any], scope: Scope, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The variables after a state's (or a Choice rule's, or a Catcher's) Assign: every value is
    evaluated against the variables as they were before, then all are set at once."""
    if "Assign" not in holder:
        return dict(variables)
    new = evaluate_template(holder["Assign"], scope, "Assign")
    return {**variables, **new}


def _integer(value: Any, field: str, *, minimum: int) -> int:
    if not is_number(value) or (isinstance(value, float) and not value.is_integer()) or value < minimum:
        raise _bad(field, value, f"an integer of at least {minimum}")
    return int(value)


def wait_target(state: Mapping[str, Any], scope: Scope) -> tuple[str, Any]:
    """("seconds", int) or ("timestamp", aware datetime) from Seconds or Timestamp."""
    if "Seconds" in state:
        return "seconds", _integer(evaluate_template(state["Seconds"], scope, "Seconds"), "Seconds", minimum=0)
    value = evaluate_template(state["Timestamp"], scope, "Timestamp")
    when = parse_timestamp(value)
    if when is None:
        raise _bad("Timestamp", value, "an RFC 3339 timestamp such as 2016-03-14T01:59:00Z")
    return "timestamp", when


def task_timeouts(state: Mapping[str, Any], scope: Scope) -> tuple[int | None, int | None]:
    """(TimeoutSeconds, HeartbeatSeconds), each a positive integer or None."""
    out: list[int | None] = []
    for field in ("TimeoutSeconds", "HeartbeatSeconds"):
        if field in state:
            out.append(_integer(evaluate_template(state[field], scope, field), field, minimum=1))
        else:
            out.append(None)
    return out[0], out[1]


def fail_error_cause(state: Mapping[str, Any], scope: Scope) -> tuple[str | None, str | None]:
    """A Fail state's (Error, Cause), each a string or None."""
    out: list[str | None] = []
    for field in ("Error", "Cause"):
        if field not in state:
            out.append(None)
            continue
        value = evaluate_template(state[field], scope, field)
        if not isinstance(value, str):
            raise _bad(field, value, "a string")
        out.append(value)
    return out[0], out[1]


def map_items(state: Mapping[str, Any], scope: Scope) -> list[Any]:
    """The array a JSONata Map iterates: Items, or the state input when absent."""
    return evaluate_items(state.get("Items", "{% $states.input %}"), scope)


def map_item_input(state: Mapping[str, Any], scope: Scope, index: int, item: Any) -> Any:
    """One iteration's input: ItemSelector with ``$states.context.Map.Item`` set, or the item."""
    if "ItemSelector" not in state:
        return clone(item)
    context = dict(scope.states.get("context") or {})
    context["Map"] = {"Item": {"Index": index, "Value": item}}
    item_scope = Scope(scope.states["input"], context, scope.variables, scope.sources)
    return evaluate_template(state["ItemSelector"], item_scope, "ItemSelector")


def map_limits(state: Mapping[str, Any], scope: Scope) -> dict[str, Any]:
    """MaxConcurrency, ToleratedFailureCount and ToleratedFailurePercentage, evaluated
    (only the ones the state sets)."""
    limits: dict[str, Any] = {}
    for field in ("MaxConcurrency", "ToleratedFailureCount"):
        if field in state:
            limits[field] = _integer(evaluate_template(state[field], scope, field), field, minimum=0)
    if "ToleratedFailurePercentage" in state:
        value = evaluate_template(state["ToleratedFailurePercentage"], scope, "ToleratedFailurePercentage")
        if not is_number(value) or not 0 <= value <= 100:
            raise _bad("ToleratedFailurePercentage", value, "a number from 0 to 100")
        limits["ToleratedFailurePercentage"] = value
    return limits


def seconds_until(when: datetime, now: datetime) -> float:
    return max(0.0, (when - now).total_seconds())
