"""The JSONata query language side of ASL: ``{% ... %}`` expressions in Arguments, Output,
Assign, Condition, Items, Seconds, Timestamp, ... evaluated with jsonata-python, with
``$states`` (input, result, errorOutput, context) and the workflow variables bound.

Step Functions' own functions ($partition, $range, $hash, $random, $uuid, $parse) are provided,
and $now/$millis read the injected clock, so evaluation is deterministic. Every failure, and
an expression that returns nothing, is States.QueryEvaluationError.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonata as _jsonata
from jsonata import functions as _jfunctions
from jsonata.utils import Utils as _Utils

from . import errors, functions
from .functions import Sources

_JLambda = _jsonata.Jsonata.JLambda


class JSONataSyntaxError(ValueError):
    pass


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}") and len(value) >= 4


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> _jsonata.Jsonata:
    """Parse ``{% expr %}`` (or a bare expression) once; JSONataSyntaxError when malformed."""
    body = text[2:-2] if is_expression(text) else text
    if not body.strip():
        raise JSONataSyntaxError("empty JSONata expression")
    try:
        expr = _jsonata.Jsonata(body)
    except Exception as exc:  # jsonata-python raises JException for syntax errors
        raise JSONataSyntaxError(f"invalid JSONata expression {body.strip()!r}: {exc}") from None
    expr.set_output_convert_nulls(False)
    return expr


class Scope:
    """What ``$states`` holds in this phase of a state, the variables, and the sources."""

    __slots__ = ("states", "variables", "sources")

    def __init__(
        self,
        input: Any,
        context: Any = None,
        variables: Mapping[str, Any] | None = None,
        sources: Sources | None = None,
        **phase: Any,
    ) -> None:
        self.states: dict[str, Any] = {"input": input, "context": context if context is not None else {}}
        for key in ("result", "errorOutput"):
            if key in phase:
                self.states[key] = phase[key]
        unknown = set(phase) - {"result", "errorOutput"}
        if unknown:
            raise TypeError(f"unknown $states fields {sorted(unknown)}")
        self.variables = dict(variables or {})
        self.sources = sources or Sources()


def _plain(value: Any) -> Any:
    if value is _Utils.NULL_VALUE:
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _bound(value: Any) -> Any:
    return _Utils.NULL_VALUE if value is None else value


def _builtin(name: str, impl: Any, sources: Sources) -> Any:
    def call(*args: Any) -> Any:
        return impl([_plain(a) for a in args], [None] * len(args), sources)

    return _JLambda(call)


def _bindings(scope: Scope) -> dict[str, Any]:
    s = scope.sources
    b: dict[str, Any] = {name: _bound(value) for name, value in scope.variables.items()}
    b["states"] = scope.states
    b["partition"] = _builtin("partition", functions.FUNCTIONS["States.ArrayPartition"][0], s)
    b["range"] = _builtin("range", functions.FUNCTIONS["States.ArrayRange"][0], s)
    b["hash"] = _builtin("hash", functions.FUNCTIONS["States.Hash"][0], s)
    b["uuid"] = _builtin("uuid", functions.FUNCTIONS["States.UUID"][0], s)

    def random(seed: Any = None) -> float:
        if seed is not None and not isinstance(seed, _jsonata.Jsonata.Frame):
            import random as _r

            return _r.Random(int(seed)).random()
        if s.random is None:
            raise errors.ASLError(errors.QUERY_EVALUATION_ERROR, "$random: no random source")
        return s.random()

    def parse(text: Any) -> Any:
        try:
            return json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise errors.ASLError(errors.QUERY_EVALUATION_ERROR, f"$parse: {exc}") from None

    def millis() -> int:
        if s.now_millis is None:
            raise errors.ASLError(errors.QUERY_EVALUATION_ERROR, "$now/$millis: no clock")
        return int(s.now_millis())

    def now(picture: Any = None, tz: Any = None) -> str:
        return _jfunctions.Functions.datetime_from_millis(millis(), picture, tz)

    b["random"] = _JLambda(random)
    b["parse"] = _JLambda(parse)
    b["millis"] = _JLambda(millis)
    b["now"] = _JLambda(now)
    return b


def evaluate(text: str, scope: Scope, field: str = "expression") -> Any:
    """Evaluate one ``{% ... %}`` expression; States.QueryEvaluationError on any failure, and
    when the expression returns nothing (undefined)."""
    try:
        expr = compile_expression(text)
    except JSONataSyntaxError as exc:
        raise errors.ASLError(errors.QUERY_EVALUATION_ERROR, str(exc)) from None
    try:
        result = expr.evaluate(None, _bindings(scope))
    except errors.ASLError as exc:
        raise errors.ASLError(errors.QUERY_EVALUATION_ERROR, exc.cause) from None
    except Exception as exc:  # jsonata-python's JException and Python errors from functions
        raise errors.ASLError(
            errors.QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{text[2:-2].strip()}' specified for the field '{field}' failed: {exc}",
        ) from None
    if result is None:
        raise errors.ASLError(
            errors.QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{text[2:-2].strip()}' specified for the field '{field}' "
            "returned nothing (undefined).",
        )
    if _Utils.is_function(result) or _jfunctions.Functions.is_lambda(result) or callable(result):
        raise errors.ASLError(
            errors.QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{text[2:-2].strip()}' specified for the field '{field}' "
            "returned an unsupported result type.",
        )
    return _plain(result)


def evaluate_template(value: Any, scope: Scope, field: str) -> Any:
    """Arguments, Output, Assign values, ...: a whole ``{% %}`` string is evaluated; objects and
    arrays are walked and every ``{% %}`` string inside is evaluated; other values are copied."""
    if is_expression(value):
        return evaluate(value, scope, field)
    if isinstance(value, dict):
        return {k: evaluate_template(v, scope, f"{field}/{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate_template(v, scope, f"{field}/{i}") for i, v in enumerate(value)]
    return value


def condition(text: Any, scope: Scope) -> bool:
    """A JSONata Choice rule's Condition: must evaluate to a boolean."""
    result = evaluate_template(text, scope, "Condition")
    if not isinstance(result, bool):
        raise errors.ASLError(
            errors.QUERY_EVALUATION_ERROR,
            f"The Condition evaluated to {json.dumps(result)}; expected a boolean.",
        )
    return result


def choose(state: Mapping[str, Any], scope: Scope) -> tuple[str, Mapping[str, Any] | None]:
    """JSONata Choice: the first rule whose Condition is true gives (Next, the rule); else
    (Default, None); else States.NoChoiceMatched."""
    for rule in state.get("Choices", ()):
        if condition(rule.get("Condition"), scope):
            return rule["Next"], rule
    if "Default" in state:
        return state["Default"], None
    raise errors.ASLError(errors.NO_CHOICE_MATCHED, "No Matches!")


def evaluate_items(value: Any, scope: Scope) -> list[Any]:
    """A Map state's Items: must be an array."""
    result = evaluate_template(value, scope, "Items")
    if not isinstance(result, list):
        kind = {bool: "boolean", str: "string", dict: "object", type(None): "null"}.get(type(result), "number")
        raise errors.ASLError(
            errors.QUERY_EVALUATION_ERROR,
            f"The field 'Items' returned an unexpected result type. Expected 'array', but was '{kind}' "
            f"for value: {json.dumps(result)}",
        )
    return result
