"""What a state machine that is well formed would still certainly fail on when it runs
(schema/run_checks.py says why and against which settings): an llm Task's model this
deployment cannot call, a deliver Task's webhook URL the outbound guard refuses. A value
is taken from the Task's Parameters (or Arguments) when written there, else from its
binding; one computed at run time (`model.$`, a JSONata expression) is not judged. A problem
points where the value is written, once however many Tasks use it."""

from collections.abc import Iterator, Mapping
from typing import Any

from lodestone.asl.bindings import resolve
from lodestone.asl.inventory import walk_states
from lodestone.asl.validate_expr import child
from schema.definition_kinds import FieldProblem
from schema.run_checks import RunTimeFacts

_COMPUTED = object()  # the value exists but is known only at run time


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("{%")


def _args(state: Mapping[str, Any], sp: str) -> tuple[Any, str]:
    for key in ("Parameters", "Arguments"):
        if key in state:
            return state[key], child(sp, key)
    return {}, sp


def _value(data: Any, ptr: str, key: str) -> tuple[Any, str] | None:
    """data[key] and its pointer; _COMPUTED when it is evaluated at run time; None when absent."""
    if not isinstance(data, Mapping):
        return (_COMPUTED, ptr) if data is not None and data != {} else None
    if f"{key}.$" in data or _is_expression(data.get(key)):
        return _COMPUTED, child(ptr, key)
    return (data[key], child(ptr, key)) if key in data else None


def _binding_pointer(bindings: list[Any], settings: dict[str, Any], handler: str) -> str:
    index = next(i for i, b in enumerate(bindings) if isinstance(b, Mapping) and b.get(handler) == settings)
    return f"/resources/{index}/{handler}"


def _task_values(machine: Mapping[str, Any], bindings: list[Any]) -> Iterator[tuple[str, Any, str]]:
    """(handler, value, pointer) of every llm Task's model and deliver Task's target."""
    for sp, state in walk_states(machine):
        if state.get("Type") != "Task" or not isinstance(state.get("Resource"), str):
            continue
        args, ptr = _args(state, "/state_machine" + sp)
        resolved = resolve(state["Resource"], args if isinstance(args, Mapping) else {}, bindings)
        if resolved is None or resolved.handler not in ("llm", "deliver") or resolved.shape == "bedrock":
            continue
        if resolved.shape == "lambda_invoke" and isinstance(args, Mapping) and "Payload" in args:
            args, ptr = args["Payload"], child(ptr, "Payload")
        key = "model" if resolved.handler == "llm" else "target"
        found = _value(args, ptr, key)
        if found is None and key in resolved.settings:
            found = resolved.settings[key], child(_binding_pointer(bindings, resolved.settings, resolved.handler), key)
        if found is None and resolved.handler == "llm":
            found = None, child("/state_machine" + sp, "Resource")  # the deployment's default model
        if found is not None and found[0] is not _COMPUTED:
            yield resolved.handler, found[0], found[1]


def machine_run_problems(definition: dict[str, Any], facts: RunTimeFacts) -> list[FieldProblem]:
    """Every run-time problem of a state machine that passed machine_problems."""
    bindings = definition.get("resources", [])
    problems: dict[str, FieldProblem] = {}
    for handler, value, pointer in _task_values(definition["state_machine"], bindings):
        if handler == "llm":
            found = facts.model_problem(value, pointer)
        elif isinstance(value, Mapping) and value.get("type") == "webhook":
            found = facts.url_problem(value.get("url"), child(pointer, "url"))
        else:
            found = None
        if found is not None:
            problems.setdefault(found.pointer, found)
    return list(problems.values())
