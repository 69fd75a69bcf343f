"""How a JSONPath state turns its raw input into its output, and how it reads its time and
count fields: InputPath → Parameters → (the state's work) → ResultSelector → ResultPath →
OutputPath; Pass's Result; Catch's error output; Wait's Seconds/Timestamp(Path); Task's
TimeoutSeconds(Path)/HeartbeatSeconds(Path); Fail's Error(Path)/Cause(Path); Map's items,
per-item input and failure tolerance. Causes follow the ones Step Functions reports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import errors, intrinsics
from .jsonvalues import clone, is_number
from .paths import (
    MISSING,
    Scope,
    apply_input_path,
    apply_output_path,
    apply_result_path,
    find,
)
from .payload import evaluate_payload, resolver
from .timestamps import parse_timestamp


def _shown(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))[:200]


def effective_input(state: Mapping[str, Any], raw_input: Any, scope: Scope) -> Any:
    """InputPath, then Parameters (or a Map's ItemSelector is per item: see ``map_item_input``)."""
    value = apply_input_path(state.get("InputPath", "$"), scope.with_input(raw_input), present="InputPath" in state)
    if "Parameters" in state and state.get("Type") != "Map":
        value = evaluate_payload(state["Parameters"], scope.with_input(value), "Parameters")
    return value


def state_output(state: Mapping[str, Any], raw_input: Any, result: Any, scope: Scope) -> Any:
    """ResultSelector on the result, ResultPath into the raw input, then OutputPath."""
    if "ResultSelector" in state:
        result = evaluate_payload(state["ResultSelector"], scope.with_input(result), "ResultSelector")
    combined = apply_result_path(raw_input, result, state.get("ResultPath", "$"), present="ResultPath" in state)
    return apply_output_path(state.get("OutputPath", "$"), combined, scope, present="OutputPath" in state)


def pass_output(state: Mapping[str, Any], raw_input: Any, scope: Scope) -> Any:
    """A Pass state's output: its Result, or else its effective input, placed by ResultPath."""
    result = clone(state["Result"]) if "Result" in state else effective_input(state, raw_input, scope)
    return state_output({k: v for k, v in state.items() if k != "ResultSelector"}, raw_input, result, scope)


def passthrough_output(state: Mapping[str, Any], raw_input: Any, scope: Scope) -> Any:
    """Choice, Wait and Succeed: InputPath then OutputPath."""
    value = apply_input_path(state.get("InputPath", "$"), scope.with_input(raw_input), present="InputPath" in state)
    return apply_output_path(state.get("OutputPath", "$"), value, scope, present="OutputPath" in state)


def catch_output(catcher: Mapping[str, Any], raw_input: Any, error: errors.ASLError) -> Any:
    """What a Catcher hands to its Next: the error output placed in the raw input by the
    Catcher's ResultPath (default ``$``: the error output replaces the input)."""
    return apply_result_path(
        raw_input, error.as_output(), catcher.get("ResultPath", "$"), present="ResultPath" in catcher
    )


def _reference(state: Mapping[str, Any], field: str, scope: Scope) -> Any:
    value = find(state[field], scope)
    if value is MISSING:
        cause = f"The {field} parameter does not reference an input value: {state[field]}"
        raise errors.ASLError(errors.RUNTIME, cause)
    return value


def wait_target(state: Mapping[str, Any], scope: Scope) -> tuple[str, Any]:
    """A Wait state's target: ("seconds", int) or ("timestamp", aware datetime)."""
    if "Seconds" in state:
        return "seconds", state["Seconds"]
    if "Timestamp" in state:
        return "timestamp", parse_timestamp(state["Timestamp"])
    if "SecondsPath" in state:
        return "seconds", _seconds_from_path(state, "SecondsPath", scope, allow_zero=True)
    value = _reference(state, "TimestampPath", scope)
    when = parse_timestamp(value)
    if when is None:
        raise errors.ASLError(
            errors.RUNTIME,
            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format "
            f"string: {state['TimestampPath']} == {value}",
        )
    return "timestamp", when


def _seconds_from_path(state: Mapping[str, Any], field: str, scope: Scope, *, allow_zero: bool) -> int:
    value = _reference(state, field, scope)
    path = state[field]
    if not is_number(value) or (isinstance(value, float) and not value.is_integer()):
        cause = f"The {field} parameter cannot be parsed as a long value: {path} == {value}"
        raise errors.ASLError(errors.RUNTIME, cause)
    if value < 0 or (value == 0 and not allow_zero):
        raise errors.ASLError(errors.RUNTIME, f"The {field} parameter references a negative value: {path} == {value}")
    return int(value)


def task_timeouts(state: Mapping[str, Any], scope: Scope) -> tuple[int | None, int | None]:
    """A Task's (TimeoutSeconds, HeartbeatSeconds), from literals or their Path fields."""
    out: list[int | None] = []
    for field in ("TimeoutSeconds", "HeartbeatSeconds"):
        if field in state:
            out.append(int(state[field]))
        elif f"{field}Path" in state:
            out.append(_seconds_from_path(state, f"{field}Path", scope, allow_zero=False))
        else:
            out.append(None)
    return out[0], out[1]


def fail_error_cause(state: Mapping[str, Any], scope: Scope) -> tuple[str | None, str | None]:
    """A Fail state's (Error, Cause): literals, or paths / intrinsic functions on its input."""
    out: list[str | None] = []
    for field in ("Error", "Cause"):
        path_field = f"{field}Path"
        if field in state:
            out.append(state[field])
        elif path_field in state:
            expr = state[path_field]
            if intrinsics.looks_like_call(expr):
                value = intrinsics.evaluate(expr, resolver(scope), scope.sources)
            else:
                value = find(expr, scope)
                if value is MISSING:
                    raise errors.ASLError(
                        errors.RUNTIME,
                        f"The JSONPath '{expr}' specified for the field '{path_field}' could not be found in the "
                        f"input '{_shown(scope.input)}'",
                    )
            out.append(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))
        else:
            out.append(None)
    return out[0], out[1]


def map_items(state: Mapping[str, Any], effective: Any, scope: Scope) -> list[Any]:
    """The array a Map state iterates over: ItemsPath (default ``$``) on its effective input."""
    path = state.get("ItemsPath", "$")
    value = find(path, scope.with_input(effective))
    if value is MISSING:
        raise errors.ASLError(errors.RUNTIME, f"Invalid path '{path}' : No results for path")
    if not isinstance(value, list):
        raise errors.ASLError(
            errors.RUNTIME, f"Map state input must be an array, but ItemsPath '{path}' selects {_shown(value)}"
        )
    return value


def map_item_input(state: Mapping[str, Any], effective: Any, index: int, item: Any, scope: Scope) -> Any:
    """One iteration's input: ItemSelector (or the legacy Parameters) evaluated on the Map's
    effective input with ``$$.Map.Item.Index``/``Value`` set, or else the item itself."""
    template = state.get("ItemSelector", state.get("Parameters"))
    if template is None:
        return clone(item)
    context = dict(scope.context)
    context["Map"] = {"Item": {"Index": index, "Value": item}}
    return evaluate_payload(template, Scope(effective, context, scope.variables, scope.sources), "ItemSelector")


def exceeds_tolerance(state: Mapping[str, Any], failed: int, total: int) -> bool:
    """Whether ``failed`` of ``total`` iterations is more than the Map tolerates
    (ToleratedFailureCount and ToleratedFailurePercentage; both default to 0)."""
    if failed == 0:
        return False
    count = state.get("ToleratedFailureCount")
    percentage = state.get("ToleratedFailurePercentage")
    if count is None and percentage is None:
        return True
    # With both set, going over either fails the Map (our reading of the developer guide).
    over_count = count is not None and failed > count
    over_percentage = percentage is not None and total > 0 and failed * 100 / total > percentage
    return over_count or over_percentage


def seconds_until(when: datetime, now: datetime) -> float:
    """Seconds from ``now`` to a Wait timestamp; 0 when it is already past."""
    return max(0.0, (when - now).total_seconds())


def assign(holder: Mapping[str, Any], scope: Scope, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The variables after a JSONPath Assign (a state's, a Choice rule's or a Catcher's): a
    payload template whose ``.$`` values read ``$`` (which the caller sets to what the state
    exposes to Assign), ``$$`` and the variables as they were before; all are set at once."""
    if "Assign" not in holder:
        return dict(variables)
    new = evaluate_payload(holder["Assign"], scope, "Assign")
    return {**variables, **new}
