"""JSONPath for ASL: Paths, Reference Paths, the context object ``$$``, variables ``$name``,
InputPath / OutputPath / ResultPath / ItemsPath. (Payload templates are in payload.py.)

Paths are parsed once and cached. jsonpath-ng's ``ext`` parser is imported here, eagerly, so
that importing this module inside a workflow sandbox pass-through block brings it in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonpath_ng.ext.parser  # noqa: F401  (eager: the sandbox cannot import it lazily)
from jsonpath_ng import jsonpath as jp
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as _parse
from jsonpath_ng.ext.iterable import Len

from . import errors
from .functions import Sources
from .jsonvalues import clone

_VARIABLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)(.*)$", re.S)
_DEFINITE = (jp.Root, jp.This, jp.Child, jp.Fields, jp.Index)


class PathSyntaxError(ValueError):
    """A string that is not a valid ASL path."""


class CompiledPath:
    """A parsed path: which document it reads (``input``, ``context`` or a variable name),
    the jsonpath-ng expression, and whether it is definite (selects at most one node)."""

    __slots__ = ("text", "source", "variable", "expr", "definite", "segments")

    def __init__(self, text: str, source: str, variable: str | None, expr: Any) -> None:
        self.text = text
        self.source = source
        self.variable = variable
        self.expr = expr
        self.segments = _segments(expr)
        self.definite = self.segments is not None or _is_length(expr)

    def find(self, doc: Any) -> list[Any]:
        return [m.value for m in self.expr.find(doc)]


def _segments(expr: Any) -> list[str | int] | None:
    """The field names and indexes of a definite path, or None when it may select many nodes."""
    if isinstance(expr, jp.Root | jp.This):
        return []
    if isinstance(expr, jp.Fields):
        if len(expr.fields) != 1 or expr.fields[0] == "*":
            return None
        return [expr.fields[0]]
    if isinstance(expr, jp.Index):
        return [expr.indices[0]] if len(expr.indices) == 1 else None
    if type(expr) is jp.Child:
        left, right = _segments(expr.left), _segments(expr.right)
        if left is None or right is None:
            return None
        return left + right
    return None


def _is_length(expr: Any) -> bool:
    """``<definite path>.length()``: a single number (Jayway's length() on an array)."""
    return type(expr) is jp.Child and isinstance(expr.right, Len) and _segments(expr.left) is not None


_LENGTH_SUFFIX = ".length()"


def _bracket_after_dot(text: str) -> str:
    """``$.[...]`` as ``$[...]``: Jayway's JSONPath (the one Step Functions runs) reads a dot
    before a bracket as nothing, jsonpath-ng refuses it. Quoted text and ``..`` stay as they are."""
    if ".[" not in text:
        return text
    out: list[str] = []
    quote: str | None = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "." and text[i + 1 : i + 2] == "[" and text[i - 1 : i] != ".":
            continue
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=8192)
def compile_path(text: str) -> CompiledPath:
    """Parse an ASL path: ``$...`` (input), ``$$...`` (context object) or ``$var...`` (variable)."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise PathSyntaxError(f"a path must start with '$': {text!r}")
    source, variable, rest = "input", None, text
    if text.startswith("$$"):
        source, rest = "context", text[1:]
    else:
        m = _VARIABLE.match(text)
        if m:
            source, variable, rest = "variable", m.group(1), "$" + m.group(2)
    if rest.endswith(_LENGTH_SUFFIX):
        rest = rest[: -len(_LENGTH_SUFFIX)] + ".`len`"
    rest = _bracket_after_dot(rest)
    try:
        expr = _parse(rest)
    except (JsonPathParserError, JsonPathLexerError, Exception) as exc:  # ply raises plain Exceptions too
        raise PathSyntaxError(f"invalid JSONPath {text!r}: {exc}") from None
    return CompiledPath(text, source, variable, expr)


def is_reference_path(text: str) -> bool:
    """A Reference Path selects a single node: fields and indexes only, on ``$`` (not ``$$``)."""
    try:
        path = compile_path(text)
    except PathSyntaxError:
        return False
    return path.source == "input" and path.segments is not None


class Scope:
    """What paths read: the state's input (``$``), the context object (``$$``) and variables."""

    __slots__ = ("input", "context", "variables", "sources")

    def __init__(
        self,
        input: Any,
        context: Any = None,
        variables: Mapping[str, Any] | None = None,
        sources: Sources | None = None,
    ) -> None:
        self.input = input
        self.context = context if context is not None else {}
        self.variables = variables or {}
        self.sources = sources

    def with_input(self, value: Any) -> Scope:
        return Scope(value, self.context, self.variables, self.sources)


MISSING = object()


def find(path_text: str, scope: Scope) -> Any:
    """Evaluate a path; returns ``MISSING`` when a definite path selects nothing. An indefinite
    path (wildcards, filters, slices, ``..``) returns the list of what it selects."""
    path = compile_path(path_text)
    if path.source == "context":
        doc = scope.context
    elif path.source == "variable":
        if path.variable not in scope.variables:
            return MISSING
        doc = scope.variables[path.variable]
    else:
        doc = scope.input
    values = path.find(doc)
    if path.definite:
        return values[0] if values else MISSING
    return values


def get(path_text: str, scope: Scope, field: str = "path") -> Any:
    """Evaluate a path that must select something; States.Runtime when it does not."""
    value = find(path_text, scope)
    if value is MISSING:
        raise errors.ASLError(
            errors.RUNTIME, f"Invalid path '{path_text}' : No results for path: {_normalized(path_text)}"
        )
    return value


def _normalized(path_text: str) -> str:
    """``$.a.b[0]`` → ``$['a']['b'][0]``, as Step Functions prints a path in its errors."""
    path = compile_path(path_text)
    if path.segments is None:
        return path_text
    root = "$$" if path.source == "context" else "$" + (path.variable or "")
    return root + "".join(f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in path.segments)


def is_present(path_text: str, scope: Scope) -> bool:
    return find(path_text, scope) is not MISSING


def apply_input_path(input_path: str | None, scope: Scope, *, present: bool = True) -> Any:
    """InputPath: ``$`` (the default) passes the whole input; null passes ``{}``."""
    if present and input_path is None:
        return {}
    return get(input_path or "$", scope, "InputPath")


def apply_output_path(output_path: str | None, value: Any, scope: Scope, *, present: bool = True) -> Any:
    """OutputPath: ``$`` (the default) passes everything; null passes ``{}``."""
    if present and output_path is None:
        return {}
    return get(output_path or "$", scope.with_input(value), "OutputPath")


def apply_result_path(raw_input: Any, result: Any, result_path: str | None, *, present: bool = True) -> Any:
    """ResultPath: where the result goes in the raw input.

    ``$`` (default) replaces the input with the result; null discards the result and passes the
    input on; a Reference Path overwrites the node it names or creates it, with intervening
    objects constructed as needed. The raw input is never mutated. Applying a path below a
    value that is not an object or array (or an index outside an array) is
    States.ResultPathMatchFailure.
    """
    if present and result_path is None:
        return clone(raw_input)
    path_text = result_path or "$"
    try:
        path = compile_path(path_text)
    except PathSyntaxError as exc:
        raise errors.ASLError(errors.RESULT_PATH_MATCH_FAILURE, str(exc)) from None
    if path.source != "input" or path.segments is None:
        raise errors.ASLError(errors.RESULT_PATH_MATCH_FAILURE, f"ResultPath '{path_text}' is not a Reference Path")
    segs = path.segments or []
    if not segs:
        return clone(result)
    out = clone(raw_input)
    node = out
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if isinstance(seg, int):
            if not isinstance(node, list) or not -len(node) <= seg < len(node):
                raise _result_path_failure(path_text, raw_input)
            if last:
                node[seg] = clone(result)
            else:
                node = node[seg]
            continue
        if not isinstance(node, dict):
            raise _result_path_failure(path_text, raw_input)
        if last:
            node[seg] = clone(result)
        else:
            if seg not in node:
                node[seg] = {}
            elif not isinstance(node[seg], dict | list):  # a value in the way: not replaced
                raise _result_path_failure(path_text, raw_input)
            node = node[seg]
    return out


def _result_path_failure(path_text: str, raw_input: Any) -> errors.ASLError:
    shown = json.dumps(raw_input, separators=(",", ":"))[:200]
    cause = f"Unable to apply ResultPath '{path_text}' to input {shown}"
    return errors.ASLError(errors.RESULT_PATH_MATCH_FAILURE, cause)
