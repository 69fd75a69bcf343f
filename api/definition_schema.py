"""The workflow definition's JSON Schema (schema/workflow_definition.schema.json) as the
OpenAPI document shows it for a request body, so /docs and /redoc show the format.

Two rewrites, neither changing what is valid: each `#/$defs/...` reference is replaced by
what it names (in an OpenAPI document `#/` is the document's root), and the top-level
`if kind is state_machine then … else …` becomes the `oneOf` it amounts to (a state machine
requires `kind: state_machine`, a pipeline allows only `pipeline` or no `kind`), which
Swagger UI and ReDoc show as the two choices. The API still validates a definition against
the file itself (schema.definitions), with every problem's pointer."""

import copy
from functools import lru_cache
from typing import Any

from schema.definition_kinds import definition_schema

_DEFS = "#/$defs/"
_DROPPED = ("$schema", "$id", "$defs", "if", "then", "else")


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        name = ref.removeprefix(_DEFS)
        if name in seen:
            raise ValueError(f"{ref} refers to itself: it cannot be inlined")
        target = _inline(defs[name], defs, (*seen, name))
        rest = {k: _inline(v, defs, seen) for k, v in node.items() if k != "$ref"}
        return {**target, **rest}
    return {k: _inline(v, defs, seen) for k, v in node.items()}


@lru_cache
def openapi_definition_schema() -> dict[str, Any]:
    source = copy.deepcopy(definition_schema())
    defs = source["$defs"]
    then, otherwise = (_inline(source[k], defs) for k in ("then", "else"))
    if source["if"] != {"required": ["kind"], "properties": {"kind": {"const": "state_machine"}}}:
        raise ValueError("the definition schema's top-level if is no longer `kind is state_machine`")
    schema = {k: _inline(v, defs) for k, v in source.items() if k not in _DROPPED}
    schema["oneOf"] = [
        {"title": "pipeline", **otherwise},
        {"title": "state machine", **then},
    ]
    return schema
