"""Payload templates: Parameters, ItemSelector, ResultSelector and JSONPath Assign. Keys
ending in ``.$`` take the value of the path or intrinsic function they hold."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import errors, intrinsics
from .jsonvalues import clone
from .paths import MISSING, PathSyntaxError, Scope, find


def evaluate_payload(template: Any, scope: Scope, field: str = "Parameters") -> Any:
    """Evaluate a payload template: keys ending in ``.$`` lose the suffix and take the value of
    the path or intrinsic function they hold; other values are copied, nested objects and arrays
    are evaluated recursively. A path that selects nothing is States.Runtime (as Step Functions
    does; the specification names it States.ParameterPathFailure)."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if isinstance(key, str) and key.endswith(".$") and isinstance(value, str):
                out[key[:-2]] = _dynamic(value, scope, f"{key}")
            else:
                out[key] = evaluate_payload(value, scope, field)
        return out
    if isinstance(template, list):
        return [evaluate_payload(v, scope, field) for v in template]
    return clone(template)


def _dynamic(expr: str, scope: Scope, key: str) -> Any:
    if intrinsics.looks_like_call(expr):
        return intrinsics.evaluate(expr, resolver(scope), scope.sources)
    try:
        value = find(expr, scope)
    except PathSyntaxError as exc:
        raise errors.ASLError(errors.RUNTIME, str(exc)) from None
    if value is MISSING:
        shown = json.dumps(scope.context if expr.startswith("$$") else scope.input, separators=(",", ":"))[:200]
        raise errors.ASLError(
            errors.RUNTIME,
            f"The JSONPath '{expr}' specified for the field '{key}' could not be found in the input '{shown}'",
        )
    return clone(value)


def resolver(scope: Scope) -> Callable[[str], Any]:
    def resolve(path_text: str) -> Any:
        try:
            value = find(path_text, scope)
        except PathSyntaxError as exc:
            raise errors.ASLError(errors.INTRINSIC_FAILURE, str(exc)) from None
        if value is MISSING:
            raise errors.ASLError(errors.RUNTIME, f"Invalid path '{path_text}' : No results for path")
        return clone(value)

    return resolve
