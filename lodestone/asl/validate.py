"""Static validation of a state machine definition: every problem at once, each with the JSON
pointer where it is and a message. Also lists every Task Resource with its pointer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .validate_expr import Problem, Sink, child
from .validate_state import check_state

__all__ = ["Problem", "validate", "task_resources"]

_TOP_FIELDS = {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}
_SUB_FIELDS = {"StartAt", "States", "Comment", "ProcessorConfig", "QueryLanguage"}
_MAX_NAME = 80


def validate(definition: Any) -> list[Problem]:
    """All problems of a definition (an empty list when it is valid)."""
    out = Sink()
    _machine(definition, "", out, "JSONPath", top=True)
    return list(out)


def _machine(machine: Any, ptr: str, out: Sink, inherited: str, *, top: bool) -> None:
    if not isinstance(machine, Mapping):
        out.add(ptr, "a state machine must be an object")
        return
    allowed = _TOP_FIELDS if top else _SUB_FIELDS
    for key in machine:
        if key not in allowed:
            out.add(child(ptr, key), f"unknown field {key!r} in a state machine")
    language = machine.get("QueryLanguage", inherited)
    if language not in ("JSONPath", "JSONata"):
        out.add(child(ptr, "QueryLanguage"), "QueryLanguage must be JSONPath or JSONata")
        language = inherited
    elif inherited == "JSONata" and language == "JSONPath":
        out.add(child(ptr, "QueryLanguage"), "a sub-machine cannot use JSONPath inside a JSONata state")
    if top and "TimeoutSeconds" in machine:
        t = machine["TimeoutSeconds"]
        if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
            out.add(child(ptr, "TimeoutSeconds"), "TimeoutSeconds must be a positive integer")
    states = machine.get("States")
    if not isinstance(states, Mapping) or not states:
        out.add(ptr if states is None else child(ptr, "States"), "States must be a non-empty object")
        states = {}
    start = machine.get("StartAt")
    if not isinstance(start, str):
        out.add(ptr if start is None else child(ptr, "StartAt"), "StartAt must name a state")
    elif states and start not in states:
        out.add(child(ptr, "StartAt"), f"StartAt names {start!r}, which is not a state of this machine")

    def submachine(sub: Any, sub_ptr: str, lang: str) -> None:
        _machine(sub, sub_ptr, out, lang, top=False)

    edges: dict[str, list[str]] = {}
    terminal: set[str] = set()
    states_ptr = child(ptr, "States")
    for name, state in states.items():
        sp = child(states_ptr, name)
        if len(name) > _MAX_NAME:
            out.add(sp, f"a state name is at most {_MAX_NAME} characters")
        _, nexts = check_state(state, sp, out, language, submachine)
        edges[name] = []
        for next_ptr, target in nexts:
            if target not in states:
                out.add(next_ptr, f"{target!r} is not a state of this machine")
            else:
                edges[name].append(target)
        if isinstance(state, Mapping) and (state.get("End") is True or state.get("Type") in ("Succeed", "Fail")):
            terminal.add(name)
    if not isinstance(start, str) or start not in states:
        return
    seen, todo = {start}, [start]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    for name in states:
        if name not in seen:
            out.add(child(states_ptr, name), f"state {name!r} is unreachable from StartAt")
    if not seen & terminal:
        out.add(states_ptr, "no terminal state (End: true, Succeed or Fail) is reachable from StartAt")


def task_resources(definition: Any) -> list[tuple[str, str]]:
    """Every Task's Resource in the definition, nested machines included: [(pointer, resource)],
    pointer to the Resource field, in document order."""
    found: list[tuple[str, str]] = []
    _resources(definition, "", found)
    return found


def _resources(machine: Any, ptr: str, found: list[tuple[str, str]]) -> None:
    if not isinstance(machine, Mapping) or not isinstance(machine.get("States"), Mapping):
        return
    for name, state in machine["States"].items():
        if not isinstance(state, Mapping):
            continue
        sp = child(child(ptr, "States"), name)
        if state.get("Type") == "Task" and isinstance(state.get("Resource"), str):
            found.append((child(sp, "Resource"), state["Resource"]))
        for i, branch in enumerate(state.get("Branches") or () if state.get("Type") == "Parallel" else ()):
            _resources(branch, child(child(sp, "Branches"), i), found)
        if state.get("Type") == "Map":
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    _resources(state[key], child(sp, key), found)
