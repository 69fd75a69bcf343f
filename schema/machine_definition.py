"""Checking a state-machine definition whole, so that one answer lists every problem: the
envelope against the definition schema, the input_schema, the ASL document
(lodestone.asl.validate), the resource bindings, and every Task no binding handles. Each
problem carries its JSON pointer into the definition as stored (ASL pointers under
/state_machine, binding pointers under /resources)."""

from collections.abc import Iterator
from typing import Any

import jsonschema

from lodestone.asl.bindings import check_bindings, unbound
from lodestone.asl.sync_mode import unmoded, unmoded_message
from lodestone.asl.validate import validate
from schema.definition_kinds import FieldProblem, definition_schema
from schema.json_schemas import unresolvable_ref

SCHEMA_VIOLATION = "schema_violation"
INVALID_STATE_MACHINE = "invalid_state_machine"
INVALID_BINDING = "invalid_binding"
UNBOUND_RESOURCE = "unbound_resource"
SYNC_MODE_REQUIRED = "sync_mode_required"


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _envelope(definition: dict[str, Any]) -> Iterator[FieldProblem]:
    validator = jsonschema.Draft202012Validator(definition_schema())
    for error in sorted(validator.iter_errors(definition), key=lambda e: [str(p) for p in e.absolute_path]):
        yield FieldProblem(_pointer(error.absolute_path), error.message, SCHEMA_VIOLATION)
    schema = definition.get("input_schema")
    if isinstance(schema, dict):
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            yield FieldProblem("/input_schema", f"input_schema: {e.message}", SCHEMA_VIOLATION)
        else:
            if (ref := unresolvable_ref(schema)) is not None:
                yield FieldProblem(
                    "/input_schema", f"input_schema: {ref!r} does not resolve within the schema", SCHEMA_VIOLATION
                )


def _binding_index(pointer: str) -> int | None:
    """Which binding a /resources/N/... pointer is about (None: the list as a whole)."""
    index = pointer.removeprefix("/resources").split("/")
    return int(index[1]) if len(index) > 1 and index[1].isdigit() else None


def _at(machine: dict[str, Any], pointer: str) -> Any:
    node: Any = machine
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node.get(token) if isinstance(node, dict) else None
    return node


def _unbound_message(machine: dict[str, Any], pointer: str, resource: str) -> str:
    """Names the Lambda function too, for a lambda:invoke (its FunctionName is in the payload)."""
    state = _at(machine, pointer.removesuffix("/Resource"))
    args = state.get("Parameters") or state.get("Arguments") if isinstance(state, dict) else None
    name = args.get("FunctionName") if isinstance(args, dict) else None
    what = f"function {name!r} ({resource})" if isinstance(name, str) else repr(resource)
    return f"no binding in resources handles {what}: bind it by function name or resource"


def machine_problems(definition: dict[str, Any]) -> list[FieldProblem]:
    """Every problem of a state-machine definition, in document order within each check
    (envelope, ASL, bindings, unbound Tasks, run-and-wait Tasks whose binding names no mode);
    [] when it may be stored."""
    problems = list(_envelope(definition))
    machine = definition.get("state_machine")
    resources = definition.get("resources", [])
    if isinstance(machine, dict):
        try:
            found = validate(machine)
        except RecursionError:
            found = []
            problems.append(
                FieldProblem("/state_machine", "the state machine is nested too deeply", INVALID_STATE_MACHINE)
            )
        problems += [FieldProblem("/state_machine" + p.pointer, p.message, INVALID_STATE_MACHINE) for p in found]
    if not isinstance(resources, list):
        return problems  # the envelope said so
    broken: set[int | None] = set()
    for pointer, message in check_bindings(resources):
        pointer = pointer if pointer.startswith("/resources") else "/resources" + pointer
        broken.add(_binding_index(pointer))
        problems.append(FieldProblem(pointer, message, INVALID_BINDING))
    if isinstance(machine, dict) and None not in broken:
        # A Task only a broken binding would match is unbound too: no binding that works handles it.
        usable = [b for i, b in enumerate(resources) if i not in broken]
        for pointer, resource in unbound(machine, usable):
            message = _unbound_message(machine, pointer, resource)
            problems.append(FieldProblem("/state_machine" + pointer, message, UNBOUND_RESOURCE))
        for pointer, resource in unmoded(machine, usable):
            problems.append(FieldProblem("/state_machine" + pointer, unmoded_message(resource), SYNC_MODE_REQUIRED))
    return problems
