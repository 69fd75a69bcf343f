"""What a state machine uses, read statically: its states by type, every Task's resource and
how the bindings resolve it, and every feature Lodestone does not run yet, each with its JSON
pointer (relative to the state machine). The import report is made of this.

A Task resource is ``bound`` (a binding handles it), ``native`` (it needs none: http:invoke,
bedrock:invokeModel, ``lodestone:*``), ``unbound`` (nothing handles it; storing refuses it), or
``at_run_time`` (a lambda:invoke whose FunctionName is computed, resolved when it runs).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .bindings import _lambda_arn, _payload_function, _service, _static_payload, resolve
from .machine_distributed import FIELDS, GET_OBJECT, PUT_OBJECT
from .machine_distributed_items import INPUT_TYPES
from .sync_mode import mode, run_and_wait
from .validate_expr import child

__all__ = ["UNSUPPORTED", "Feature", "Inventory", "TaskResource", "inventory", "walk_states"]

BOUND, NATIVE, UNBOUND, AT_RUN_TIME = "bound", "native", "unbound", "at_run_time"

# Every feature Lodestone does not run yet (docs/state-machines.md, "What is supported"):
# its name in the report -> what happens when a machine uses it.
UNSUPPORTED: dict[str, str] = {
    "$$.Task.Token": "read outside a .waitForTaskToken Task, where there is no task token",
    ".sync": 'a run-and-wait (.sync) Task whose binding names no mode ("sync": "answer" or "callback")',
    ".sync:2": 'a run-and-wait (.sync:2) Task whose binding names no mode ("sync": "answer" or "callback")',
    "Map.ItemReader": "an ItemReader other than s3:getObject of a JSON, JSONL or CSV upload fails the Map",
    "Map.ResultWriter": "a ResultWriter other than s3:putObject (WriterConfig too) fails the Map",
    "Map.JSONata": "the distributed Map runs in JSONPath only: in JSONata it fails with States.Runtime",
    "http:invoke.Transform": "http:invoke Transform (URL-encoded bodies) is not applied yet",
    "http:invoke.Authentication": "http:invoke Authentication.ConnectionArn is not used: headers take secrets",
    "activity": "Activities (workers polling Step Functions) are not run",
}

_ACTIVITY = re.compile(r"^arn:[^:]+:states:[^:]*:[^:]*:activity:")
_TASK_TOKEN = "$$.Task.Token"


@dataclass(frozen=True)
class TaskResource:
    pointer: str  # to the Task's Resource field
    resource: str
    status: str  # bound | native | unbound | at_run_time
    handler: str | None = None  # http, llm, render, deliver, when it resolves
    function: str | None = None  # the Lambda function name, when there is one


@dataclass(frozen=True)
class Feature:
    name: str  # a key of UNSUPPORTED
    pointer: str
    detail: str = ""

    @property
    def why(self) -> str:
        return UNSUPPORTED[self.name]


@dataclass
class Inventory:
    states: dict[str, int] = field(default_factory=dict)  # by type, nested machines included
    resources: list[TaskResource] = field(default_factory=list)
    unsupported: list[Feature] = field(default_factory=list)

    def with_status(self, status: str) -> list[TaskResource]:
        return [r for r in self.resources if r.status == status]


def walk_states(machine: Any, ptr: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(pointer, state) of every state, nested Parallel branches and Map processors included,
    in document order."""
    if not isinstance(machine, Mapping) or not isinstance(machine.get("States"), Mapping):
        return
    for name, state in machine["States"].items():
        if not isinstance(state, Mapping):
            continue
        sp = child(child(ptr, "States"), name)
        yield sp, state
        if state.get("Type") == "Parallel" and isinstance(state.get("Branches"), list):
            for i, branch in enumerate(state["Branches"]):
                yield from walk_states(branch, child(child(sp, "Branches"), i))
        if state.get("Type") == "Map":
            for key in ("ItemProcessor", "Iterator"):
                yield from walk_states(state.get(key), child(sp, key))


def _resolution(state: Mapping[str, Any], resource: str, bindings: list[dict[str, Any]]) -> TaskResource:
    """How the bindings resolve one Task's resource (``state`` is the Task)."""
    payload: Any = {}
    if _service(resource) == "lambda:invoke":
        payload = _static_payload(state)
        if payload is None:
            return TaskResource("", resource, AT_RUN_TIME)
    named = _payload_function(payload) or _lambda_arn(resource)
    function = named[0] if named else None
    found = resolve(resource, payload, bindings)
    if found is None:
        return TaskResource("", resource, UNBOUND, None, function)
    status = NATIVE if found == resolve(resource, payload, []) else BOUND
    return TaskResource("", resource, status, found.handler, function)


def _resource_features(resource: str, ptr: str, bindings: list[dict[str, Any]]) -> Iterator[Feature]:
    # Child executions (states:startExecution) run, fire-and-forget, .sync and .sync:2 alike;
    # other run-and-wait Resources run when their binding names a mode (sync_mode.py).
    suffix = run_and_wait(resource)
    if suffix is not None and mode(resource, {}, bindings) is None:
        yield Feature(suffix, ptr, resource)
    if _ACTIVITY.match(resource):
        yield Feature("activity", ptr, resource)


def _token_reads(value: Any, ptr: str) -> Iterator[Feature]:
    if isinstance(value, str):
        if _TASK_TOKEN in value:
            yield Feature(_TASK_TOKEN, ptr, value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _token_reads(item, child(ptr, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _token_reads(item, child(ptr, i))


def _task_features(
    state: Mapping[str, Any], sp: str, resource: str, bindings: list[dict[str, Any]]
) -> Iterator[Feature]:
    yield from _resource_features(resource, child(sp, "Resource"), bindings)
    for key in ("Parameters", "Arguments"):
        args = state.get(key)
        if not resource.endswith(".waitForTaskToken"):  # a callback Task's own token
            yield from _token_reads(args, child(sp, key))
        if _service(resource) == "http:invoke" and isinstance(args, Mapping):
            for field_name in ("Transform", "Authentication"):
                if field_name in args:
                    yield Feature(f"http:invoke.{field_name}", child(child(sp, key), field_name))


def _distributed_features(state: Mapping[str, Any], sp: str, language: Any) -> Iterator[Feature]:
    """What of a distributed Map Lodestone does not run (machine_distributed.py)."""
    reader, writer = state.get("ItemReader"), state.get("ResultWriter")
    if isinstance(reader, Mapping):
        config = reader.get("ReaderConfig") or {}
        kind = config.get("InputType", "JSON") if isinstance(config, Mapping) else None
        if reader.get("Resource") != GET_OBJECT or kind not in INPUT_TYPES:
            yield Feature("Map.ItemReader", child(sp, "ItemReader"))
    if isinstance(writer, Mapping) and (writer.get("Resource", PUT_OBJECT) != PUT_OBJECT or "WriterConfig" in writer):
        yield Feature("Map.ResultWriter", child(sp, "ResultWriter"))
    if any(f in state for f in FIELDS) and state.get("QueryLanguage", language) == "JSONata":
        yield Feature("Map.JSONata", sp)


def inventory(state_machine: Any, bindings: list[dict[str, Any]] | None = None) -> Inventory:
    """The inventory of an ASL document (``state_machine``) with a definition's bindings."""
    usable = [b for b in bindings or [] if isinstance(b, Mapping)]
    types: Counter[str] = Counter()
    out = Inventory()
    top_language = state_machine.get("QueryLanguage") if isinstance(state_machine, Mapping) else None
    for sp, state in walk_states(state_machine):
        kind = state.get("Type")
        types[kind if isinstance(kind, str) else "?"] += 1
        if kind == "Task" and isinstance(state.get("Resource"), str):
            resource = state["Resource"]
            out.resources.append(replace(_resolution(state, resource, usable), pointer=child(sp, "Resource")))
            out.unsupported.extend(_task_features(state, sp, resource, usable))
        elif kind == "Map":
            out.unsupported.extend(_distributed_features(state, sp, top_language))
        else:
            for key in ("Parameters", "Arguments", "Result", "Output"):
                out.unsupported.extend(_token_reads(state.get(key), child(sp, key)))
    out.states = dict(sorted(types.items()))
    return out
