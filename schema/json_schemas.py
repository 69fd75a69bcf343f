"""Callers' own JSON Schemas (a workflow's input_schema, a form's field_schema): what
evaluating one raises when it cannot be evaluated, and the check that refuses a $ref that
does not resolve when the schema is stored, not at every use."""

from typing import Any

from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

# What evaluating a caller's JSON Schema raises when a $ref loops ({"$ref": "#"}) or resolves nowhere.
UNEVALUABLE = (RecursionError, Unresolvable)
_DATA_KEYWORDS = {"const", "enum", "default", "examples"}  # their contents are data, not schema


def unresolvable_ref(schema: Any) -> str | None:
    """The first $ref or $dynamicRef a caller's JSON Schema cannot resolve by itself
    (nothing is ever fetched), so that it is refused when stored, not at every use."""
    if not isinstance(schema, dict):
        return None
    resolver = Registry().with_resource("", DRAFT202012.create_resource(schema)).resolver()
    nodes: list[Any] = [schema]
    while nodes:
        node = nodes.pop()
        if isinstance(node, dict):
            for ref in (node.get("$ref"), node.get("$dynamicRef")):
                if isinstance(ref, str):
                    try:
                        resolver.lookup(ref)
                    except Unresolvable:
                        return ref
            nodes.extend(v for k, v in node.items() if k not in _DATA_KEYWORDS)
        elif isinstance(node, list):
            nodes.extend(node)
    return None
