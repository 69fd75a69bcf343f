"""Static checks of one state: its type, its fields for its query language, and the values of
those fields. Sub-machines (Parallel branches, Map's ItemProcessor) are handed back to the
machine walker through ``submachine``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from . import jsonata
from .jsonvalues import is_number
from .timestamps import parse_timestamp
from .validate_expr import (
    Sink,
    check_dynamic,
    check_handlers,
    check_jsonata,
    check_path,
    check_payload,
    check_rule,
    child,
)

_COMMON = {"Type", "Comment", "QueryLanguage", "Assign"}
_FLOW = {"Next", "End"}
_JSONPATH_IO = {"InputPath", "OutputPath"}
_FIELDS: dict[str, tuple[set[str], set[str], set[str]]] = {
    # type: (both languages, JSONPath only, JSONata only)
    "Pass": (_FLOW, _JSONPATH_IO | {"Parameters", "Result", "ResultPath"}, {"Output"}),
    "Task": (
        _FLOW | {"Resource", "Retry", "Catch", "TimeoutSeconds", "HeartbeatSeconds", "Credentials"},
        _JSONPATH_IO | {"Parameters", "ResultSelector", "ResultPath", "TimeoutSecondsPath", "HeartbeatSecondsPath"},
        {"Arguments", "Output"},
    ),
    "Choice": ({"Choices", "Default"}, _JSONPATH_IO, {"Output"}),
    "Wait": (_FLOW | {"Seconds", "Timestamp"}, _JSONPATH_IO | {"SecondsPath", "TimestampPath"}, {"Output"}),
    "Succeed": (set(), _JSONPATH_IO, {"Output"}),
    "Fail": ({"Error", "Cause"}, {"ErrorPath", "CausePath"}, set()),
    "Parallel": (
        _FLOW | {"Branches", "Retry", "Catch"},
        _JSONPATH_IO | {"Parameters", "ResultSelector", "ResultPath"},
        {"Arguments", "Output"},
    ),
    "Map": (
        _FLOW
        | {
            "ItemProcessor",
            "Iterator",
            "ItemSelector",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "MaxConcurrency",
            "ToleratedFailureCount",
            "ToleratedFailurePercentage",
            "Label",
            "Retry",
            "Catch",
        },
        _JSONPATH_IO
        | {
            "ItemsPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "MaxConcurrencyPath",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentagePath",
        },
        {"Items", "Arguments", "Output"},
    ),
}
STATE_TYPES = frozenset(_FIELDS)
HAS_FLOW = frozenset({"Pass", "Task", "Wait", "Parallel", "Map"})


_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")


def check_variable_names(assign: Mapping[str, Any], ptr: str, out: Sink, language: str) -> None:
    """Assign's keys name variables: a letter or underscore, then letters, digits or
    underscores (80 at most); ``states`` is reserved for ``$states``."""
    for key in assign:
        name = key[:-2] if language == "JSONPath" and key.endswith(".$") else key
        if not _VARIABLE_NAME.match(name) or name == "states":
            out.add(child(ptr, key), f"{name!r} is not a valid variable name")


def _non_negative_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_state(
    state: Any,
    ptr: str,
    out: Sink,
    language: str,
    submachine: Callable[[Any, str, str], None],
) -> tuple[str, list[tuple[str, str]]]:
    """Check one state. Returns its query language and its transitions [(pointer, target)]."""
    nexts: list[tuple[str, str]] = []
    if not isinstance(state, Mapping):
        out.add(ptr, "a state must be an object")
        return language, nexts
    kind = state.get("Type")
    if kind not in _FIELDS:
        out.add(child(ptr, "Type"), f"unknown state type {kind!r}; one of {', '.join(sorted(_FIELDS))}")
        return language, nexts
    own = state.get("QueryLanguage", language)
    if own not in ("JSONPath", "JSONata"):
        out.add(child(ptr, "QueryLanguage"), "QueryLanguage must be JSONPath or JSONata")
        own = language
    elif language == "JSONata" and own == "JSONPath":
        out.add(child(ptr, "QueryLanguage"), "a state cannot use JSONPath when the machine's QueryLanguage is JSONata")
    both, jsonpath_only, jsonata_only = _FIELDS[kind]
    for key in state:
        if key in _COMMON or key in both:
            continue
        if key in jsonpath_only and own == "JSONPath" or key in jsonata_only and own == "JSONata":
            continue
        if key in jsonpath_only or key in jsonata_only:
            out.add(child(ptr, key), f"{key} is not allowed in a {own} state")
        else:
            out.add(child(ptr, key), f"unknown field {key!r} in a {kind} state")
    if kind in HAS_FLOW:
        has_next, end = "Next" in state, state.get("End") is True
        if "End" in state and not isinstance(state["End"], bool):
            out.add(child(ptr, "End"), "End must be a boolean")
        if has_next == end:
            out.add(ptr, f"a {kind} state needs exactly one of Next or End: true")
        if has_next:
            if isinstance(state["Next"], str):
                nexts.append((child(ptr, "Next"), state["Next"]))
            else:
                out.add(child(ptr, "Next"), "Next must be a state name")
    _check_fields(state, kind, own, ptr, out, nexts, submachine)
    return own, nexts


def _check_fields(state, kind, own, ptr, out, nexts, submachine) -> None:
    for key in ("InputPath", "OutputPath", "ItemsPath"):
        if key in state:
            check_path(state[key], child(ptr, key), out, nullable=key != "ItemsPath")
    if "ResultPath" in state:
        check_path(state["ResultPath"], child(ptr, "ResultPath"), out, reference=True, nullable=True)
    for key in (
        "SecondsPath",
        "TimestampPath",
        "TimeoutSecondsPath",
        "HeartbeatSecondsPath",
        "MaxConcurrencyPath",
        "ToleratedFailureCountPath",
        "ToleratedFailurePercentagePath",
    ):
        if key in state:
            check_path(state[key], child(ptr, key), out, reference=True, variables=True)
    for key in ("ErrorPath", "CausePath"):
        if key in state:
            check_dynamic(state[key], child(ptr, key), out)
    for key in ("Parameters", "ResultSelector", "ItemSelector"):
        if key in state:
            if own == "JSONPath" and not isinstance(state[key], dict):
                out.add(child(ptr, key), f"{key} must be an object")
            (check_payload if own == "JSONPath" else check_jsonata)(state[key], child(ptr, key), out)
    if "Assign" in state:
        if not isinstance(state["Assign"], dict):
            out.add(child(ptr, "Assign"), "Assign must be an object")
        else:
            check_variable_names(state["Assign"], child(ptr, "Assign"), out, own)
        (check_payload if own == "JSONPath" else check_jsonata)(state["Assign"], child(ptr, "Assign"), out)
    for key in ("Arguments", "Output", "Items"):
        if key in state and own == "JSONata":
            check_jsonata(state[key], child(ptr, key), out)
    for key in ("Retry", "Catch"):
        if key in state:
            nexts += check_handlers(state[key], child(ptr, key), out, kind=key, language=own)
    _check_kind(state, kind, own, ptr, out, nexts, submachine)


def _number_or_expr(value: Any, ptr: str, out: Sink, own: str, test: Callable[[Any], bool], what: str) -> None:
    if own == "JSONata" and jsonata.is_expression(value):
        check_jsonata(value, ptr, out)
    elif not test(value):
        out.add(ptr, f"must be {what}")


def _check_kind(state, kind, own, ptr, out, nexts, submachine) -> None:
    if kind == "Task":
        resource = state.get("Resource")
        if not isinstance(resource, str) or not resource:
            out.add(ptr if resource is None else child(ptr, "Resource"), "a Task needs Resource (a string)")
        for key in ("TimeoutSeconds", "HeartbeatSeconds"):
            if key in state:
                _number_or_expr(
                    state[key],
                    child(ptr, key),
                    out,
                    own,
                    lambda v: _non_negative_int(v) and v > 0,
                    "a positive integer",
                )
            if key in state and f"{key[:-7]}SecondsPath" in state:
                out.add(ptr, f"{key} and {key}Path cannot both be set")
        t, h = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
        if is_number(t) and is_number(h) and h >= t:
            out.add(child(ptr, "HeartbeatSeconds"), "HeartbeatSeconds must be smaller than TimeoutSeconds")
    elif kind == "Wait":
        given = [k for k in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath") if k in state]
        if len(given) != 1:
            out.add(ptr, "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath")
        if "Seconds" in state:
            _number_or_expr(
                state["Seconds"], child(ptr, "Seconds"), out, own, _non_negative_int, "a non-negative integer"
            )
        if "Timestamp" in state:
            _number_or_expr(
                state["Timestamp"],
                child(ptr, "Timestamp"),
                out,
                own,
                lambda v: parse_timestamp(v) is not None,
                "an RFC 3339 timestamp",
            )
    elif kind == "Fail":
        for a, b in (("Error", "ErrorPath"), ("Cause", "CausePath")):
            if a in state and b in state:
                out.add(ptr, f"{a} and {b} cannot both be set")
            if a in state and own == "JSONata":
                check_jsonata(state[a], child(ptr, a), out)
            elif a in state and not isinstance(state[a], str):
                out.add(child(ptr, a), f"{a} must be a string")
    elif kind == "Choice":
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            out.add(ptr if choices is None else child(ptr, "Choices"), "Choices must be a non-empty array")
            choices = []
        for i, rule in enumerate(choices):
            rp = child(child(ptr, "Choices"), i)
            check_rule(rule, rp, out, top=True, language=own)
            if isinstance(rule, Mapping) and isinstance(rule.get("Next"), str):
                nexts.append((child(rp, "Next"), rule["Next"]))
        if "Default" in state:
            if isinstance(state["Default"], str):
                nexts.append((child(ptr, "Default"), state["Default"]))
            else:
                out.add(child(ptr, "Default"), "Default must be a state name")
    elif kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            out.add(ptr if branches is None else child(ptr, "Branches"), "Branches must be a non-empty array")
        else:
            for i, branch in enumerate(branches):
                submachine(branch, child(child(ptr, "Branches"), i), own)
    elif kind == "Map":
        _check_map(state, own, ptr, out, submachine)


def _check_map(state, own, ptr, out, submachine) -> None:
    given = [k for k in ("ItemProcessor", "Iterator") if k in state]
    if len(given) != 1:
        out.add(ptr, "a Map state needs exactly one of ItemProcessor or Iterator")
    for key in given:
        submachine(state[key], child(ptr, key), own)
    if "MaxConcurrency" in state:
        _number_or_expr(
            state["MaxConcurrency"], child(ptr, "MaxConcurrency"), out, own, _non_negative_int, "a non-negative integer"
        )
    if "ToleratedFailureCount" in state:
        _number_or_expr(
            state["ToleratedFailureCount"],
            child(ptr, "ToleratedFailureCount"),
            out,
            own,
            _non_negative_int,
            "a non-negative integer",
        )
    if "ToleratedFailurePercentage" in state:
        _number_or_expr(
            state["ToleratedFailurePercentage"],
            child(ptr, "ToleratedFailurePercentage"),
            out,
            own,
            lambda v: is_number(v) and 0 <= v <= 100,
            "a number from 0 to 100",
        )
    if "Parameters" in state and "ItemSelector" in state:
        out.add(ptr, "Parameters (deprecated) and ItemSelector cannot both be set")
