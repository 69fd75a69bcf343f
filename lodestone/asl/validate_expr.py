"""Static checks of the expressions inside a state: paths, payload templates with intrinsic
functions, JSONata expressions, Choice rules, Retriers and Catchers. Each check appends
``Problem``s and never raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import choice, errors, intrinsics, jsonata, paths
from .jsonvalues import is_number
from .timestamps import parse_timestamp


@dataclass(frozen=True)
class Problem:
    pointer: str  # JSON pointer (RFC 6901) into the definition
    message: str


def child(pointer: str, key: str | int) -> str:
    return f"{pointer}/" + str(key).replace("~", "~0").replace("/", "~1")


class Sink(list):
    def add(self, pointer: str, message: str) -> None:
        self.append(Problem(pointer, message))


def check_path(
    value: Any, ptr: str, out: Sink, *, reference: bool = False, nullable: bool = False, variables: bool = False
) -> None:
    """`variables`: a Reference Path may read a variable (``$name.field``) as well as the input,
    as Step Functions allows in the fields that take a number or time from a path."""
    if value is None and nullable:
        return
    if not isinstance(value, str):
        out.add(ptr, "must be a JSONPath string" + (" or null" if nullable else ""))
        return
    try:
        path = paths.compile_path(value)
    except paths.PathSyntaxError as exc:
        out.add(ptr, str(exc))
        return
    sources = ("input", "variable") if variables else ("input",)
    if reference and (path.source not in sources or path.segments is None):
        read = "the input or a variable" if variables else "the input"
        out.add(ptr, f"{value!r} is not a Reference Path (a single node of {read}: fields and indexes only)")


def check_dynamic(value: Any, ptr: str, out: Sink) -> None:
    """The value of a ``.$`` key: a path or an intrinsic function call."""
    if not isinstance(value, str):
        out.add(ptr, "the value of a field ending in '.$' must be a string")
    elif intrinsics.looks_like_call(value):
        try:
            _check_call_paths(intrinsics.parse(value), ptr, out)
        except intrinsics.IntrinsicSyntaxError as exc:
            out.add(ptr, str(exc))
    else:
        check_path(value, ptr, out)


def _check_call_paths(call: intrinsics.Call, ptr: str, out: Sink) -> None:
    for arg in call.args:
        if isinstance(arg, intrinsics.Call):
            _check_call_paths(arg, ptr, out)
        elif isinstance(arg, intrinsics.PathArg):
            check_path(arg.path, ptr, out)


def check_payload(template: Any, ptr: str, out: Sink) -> None:
    """Parameters, ItemSelector, ResultSelector, JSONPath Assign."""
    if isinstance(template, dict):
        for key, value in template.items():
            if isinstance(key, str) and key.endswith(".$"):
                check_dynamic(value, child(ptr, key), out)
            else:
                check_payload(value, child(ptr, key), out)
    elif isinstance(template, list):
        for i, value in enumerate(template):
            check_payload(value, child(ptr, i), out)


def check_jsonata(value: Any, ptr: str, out: Sink) -> None:
    """Every ``{% %}`` string inside the value must parse. (A string that merely contains
    ``{%``, such as ``" {% x %} "``, is a literal, as in Step Functions.)"""
    if isinstance(value, str):
        if jsonata.is_expression(value):
            try:
                jsonata.compile_expression(value)
            except jsonata.JSONataSyntaxError as exc:
                out.add(ptr, str(exc))
    elif isinstance(value, dict):
        for key, v in value.items():
            check_jsonata(v, child(ptr, key), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_jsonata(v, child(ptr, i), out)


def _expected_type(op: str) -> tuple[str, Any]:
    if op in choice.TYPE_TESTS:
        return "a boolean", lambda v: isinstance(v, bool)
    if op.endswith("Path"):
        return "a path", None
    if op.startswith("String"):
        return "a string", lambda v: isinstance(v, str)
    if op.startswith("Numeric"):
        return "a number", is_number
    if op.startswith("Boolean"):
        return "a boolean", lambda v: isinstance(v, bool)
    return "a timestamp (RFC 3339, e.g. 2016-03-14T01:59:00Z)", lambda v: parse_timestamp(v) is not None


def check_rule(rule: Any, ptr: str, out: Sink, *, top: bool, language: str) -> None:
    if not isinstance(rule, Mapping):
        out.add(ptr, "a Choice rule must be an object")
        return
    if top and not isinstance(rule.get("Next"), str):
        out.add(ptr, "a Choice rule needs Next (a state name)")
    if language == "JSONata":
        allowed = {"Condition", "Next", "Comment", "Assign", "Output"}
        for key in rule:
            if key not in allowed:
                out.add(child(ptr, key), f"unknown field {key!r} in a JSONata Choice rule")
        if "Condition" not in rule:
            out.add(ptr, "a JSONata Choice rule needs Condition")
        else:
            check_jsonata(rule["Condition"], child(ptr, "Condition"), out)
        check_jsonata(rule.get("Assign"), child(ptr, "Assign"), out)
        check_jsonata(rule.get("Output"), child(ptr, "Output"), out)
        return
    ops = [k for k in rule if k in choice.OPERATORS or k in choice.BOOLEAN]
    extra = {"Next", "Assign", "Comment"} if top else {"Comment"}
    if len(ops) != 1:
        out.add(ptr, f"a Choice rule needs exactly one operator, found {ops or 'none'}")
    for key in rule:
        if key not in ops and key not in extra and key != "Variable":
            out.add(child(ptr, key), f"unknown field {key!r} in a Choice rule")
    if "Assign" in rule:
        check_payload(rule["Assign"], child(ptr, "Assign"), out)
    for op in ops:
        _check_operator(rule, op, ptr, out, language)


def _check_operator(rule: Mapping[str, Any], op: str, ptr: str, out: Sink, language: str) -> None:
    value = rule[op]
    if op in ("And", "Or"):
        if "Variable" in rule:
            out.add(child(ptr, "Variable"), f"{op} takes no Variable")
        if not isinstance(value, list) or not value:
            out.add(child(ptr, op), f"{op} must be a non-empty array of Choice rules")
            return
        for i, sub in enumerate(value):
            check_rule(sub, child(child(ptr, op), i), out, top=False, language=language)
        return
    if op == "Not":
        if "Variable" in rule:
            out.add(child(ptr, "Variable"), "Not takes no Variable")
        check_rule(value, child(ptr, op), out, top=False, language=language)
        return
    if "Variable" not in rule:
        out.add(ptr, f"{op} needs a Variable")
    else:
        check_path(rule["Variable"], child(ptr, "Variable"), out)
    what, test = _expected_type(op)
    if test is None:
        check_path(value, child(ptr, op), out)
    elif not test(value):
        out.add(child(ptr, op), f"{op} needs {what}")


_RETRY_FIELDS = {
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
}
_CATCH_FIELDS = {"ErrorEquals", "Next", "Comment", "Assign"}


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def check_handlers(handlers: Any, ptr: str, out: Sink, *, kind: str, language: str) -> list[tuple[str, str]]:
    """Retry (kind "Retry") or Catch ("Catch"); returns the Catchers' (pointer, Next)."""
    nexts: list[tuple[str, str]] = []
    if not isinstance(handlers, list):
        out.add(ptr, f"{kind} must be an array")
        return nexts
    allowed = set(_RETRY_FIELDS if kind == "Retry" else _CATCH_FIELDS)
    if kind == "Catch":
        allowed.add("Output" if language == "JSONata" else "ResultPath")
    for i, h in enumerate(handlers):
        hp = child(ptr, i)
        if not isinstance(h, Mapping):
            out.add(hp, f"a {kind} entry must be an object")
            continue
        for key in h:
            if key not in allowed:
                out.add(child(hp, key), f"unknown field {key!r} in {kind}")
        names = h.get("ErrorEquals")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            out.add(child(hp, "ErrorEquals"), "ErrorEquals must be a non-empty array of error names")
            names = []
        for j, name in enumerate(names):
            if name.startswith("States.") and name not in errors.PREDEFINED:
                out.add(child(child(hp, "ErrorEquals"), j), f"unknown error name {name!r}")
        if errors.ALL in names:
            if len(names) != 1:
                out.add(child(hp, "ErrorEquals"), "States.ALL must appear alone in ErrorEquals")
            if i != len(handlers) - 1:
                out.add(child(hp, "ErrorEquals"), f"the {kind} entry with States.ALL must be the last one")
        if kind == "Retry":
            _check_retrier(h, hp, out)
        else:
            if not isinstance(h.get("Next"), str):
                out.add(hp, "a Catcher needs Next (a state name)")
            else:
                nexts.append((child(hp, "Next"), h["Next"]))
            if "ResultPath" in h:
                check_path(h["ResultPath"], child(hp, "ResultPath"), out, reference=True, nullable=True)
            if language == "JSONata":
                check_jsonata(h.get("Output"), child(hp, "Output"), out)
                check_jsonata(h.get("Assign"), child(hp, "Assign"), out)
            elif "Assign" in h:
                check_payload(h["Assign"], child(hp, "Assign"), out)
    return nexts


def _check_retrier(h: Mapping[str, Any], hp: str, out: Sink) -> None:
    if "IntervalSeconds" in h and not _positive_int(h["IntervalSeconds"]):
        out.add(child(hp, "IntervalSeconds"), "IntervalSeconds must be a positive integer")
    if "MaxAttempts" in h and not (
        isinstance(h["MaxAttempts"], int) and not isinstance(h["MaxAttempts"], bool) and h["MaxAttempts"] >= 0
    ):
        out.add(child(hp, "MaxAttempts"), "MaxAttempts must be a non-negative integer")
    if "BackoffRate" in h and not (is_number(h["BackoffRate"]) and h["BackoffRate"] >= 1.0):
        out.add(child(hp, "BackoffRate"), "BackoffRate must be a number greater than or equal to 1.0")
    if "MaxDelaySeconds" in h and not _positive_int(h["MaxDelaySeconds"]):
        out.add(child(hp, "MaxDelaySeconds"), "MaxDelaySeconds must be a positive integer")
    if "JitterStrategy" in h and h["JitterStrategy"] not in ("FULL", "NONE"):
        out.add(child(hp, "JitterStrategy"), "JitterStrategy must be FULL or NONE")
