"""Choice rules for JSONPath state machines: comparison operators, And/Or/Not, Default and
States.NoChoiceMatched. (JSONata Choice rules, ``Condition``, are in jsonata.py.)"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from . import errors, paths
from .jsonvalues import is_number
from .timestamps import parse_timestamp

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}
_KINDS = ("String", "Numeric", "Boolean", "Timestamp")


def _typed(kind: str, value: Any) -> Any:
    """The value as the kind compares it, or None when it is not of that kind."""
    if kind == "String":
        return value if isinstance(value, str) else None
    if kind == "Numeric":
        return value if is_number(value) else None
    if kind == "Boolean":
        return value if isinstance(value, bool) else None
    return parse_timestamp(value)


def _comparison(name: str) -> tuple[str, str, bool] | None:
    """``NumericLessThanPath`` → ("Numeric", "LessThan", True)."""
    for kind in _KINDS:
        if name.startswith(kind):
            rest = name[len(kind) :]
            is_path = rest.endswith("Path")
            if is_path:
                rest = rest[: -len("Path")]
            if rest in _ORDER and not (kind == "Boolean" and rest != "Equals"):
                return kind, rest, is_path
    return None


COMPARISONS = frozenset(
    f"{kind}{op}{suffix}"
    for kind in _KINDS
    for op in _ORDER
    for suffix in ("", "Path")
    if kind != "Boolean" or op == "Equals"
)
TYPE_TESTS = frozenset({"IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"})
OPERATORS = COMPARISONS | TYPE_TESTS | {"StringMatches"}
BOOLEAN = frozenset({"And", "Or", "Not"})


def string_matches(value: str, pattern: str) -> bool:
    """``*`` matches any run of characters (even none); ``\\*`` is a literal star and ``\\\\`` a
    literal backslash."""
    tokens: list[str | None] = []  # None is the wildcard
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*\\":
            tokens.append(pattern[i + 1])
            i += 2
        elif ch == "*":
            tokens.append(None)
            i += 1
        else:
            tokens.append(ch)
            i += 1
    # classic wildcard matching with backtracking over the last star
    v = t = 0
    star_t, star_v = -1, 0
    while v < len(value):
        if t < len(tokens) and tokens[t] is not None and tokens[t] == value[v]:
            v += 1
            t += 1
        elif t < len(tokens) and tokens[t] is None:
            star_t, star_v = t, v
            t += 1
        elif star_t >= 0:
            t = star_t + 1
            star_v += 1
            v = star_v
        else:
            return False
    while t < len(tokens) and tokens[t] is None:
        t += 1
    return t == len(tokens)


def _operator(rule: Mapping[str, Any]) -> str:
    found = [k for k in rule if k in OPERATORS or k in BOOLEAN]
    if len(found) != 1:
        raise errors.ASLError(errors.RUNTIME, f"a Choice rule needs exactly one operator, found {found or 'none'}")
    return found[0]


def evaluate_rule(rule: Mapping[str, Any], scope: paths.Scope) -> bool:
    """Evaluate one Choice rule (with or without Next) against the state's effective input."""
    op = _operator(rule)
    if op == "And":
        return all(evaluate_rule(r, scope) for r in rule["And"])
    if op == "Or":
        return any(evaluate_rule(r, scope) for r in rule["Or"])
    if op == "Not":
        return not evaluate_rule(rule["Not"], scope)
    variable = rule.get("Variable")
    if not isinstance(variable, str):
        raise errors.ASLError(errors.RUNTIME, f"the {op} rule has no Variable")
    expected = rule[op]
    if op == "IsPresent":
        return paths.is_present(variable, scope) is bool(expected)
    value = paths.get(variable, scope, "Variable")
    if op in TYPE_TESTS:
        actual = {
            "IsNull": value is None,
            "IsNumeric": is_number(value),
            "IsString": isinstance(value, str),
            "IsBoolean": isinstance(value, bool),
            "IsTimestamp": parse_timestamp(value) is not None,
        }[op]
        return actual is bool(expected)
    if op == "StringMatches":
        return isinstance(value, str) and string_matches(value, expected)
    kind, comparison, is_path = _comparison(op)  # type: ignore[misc]
    if is_path:
        expected = paths.get(expected, scope, op)
    left, right = _typed(kind, value), _typed(kind, expected)
    if left is None or right is None:
        return False
    return _ORDER[comparison](left, right)


def choose(state: Mapping[str, Any], scope: paths.Scope) -> str:
    """The name of the next state: the Next of the first rule that matches, else Default, else
    States.NoChoiceMatched."""
    for rule in state.get("Choices", ()):
        if evaluate_rule(rule, scope):
            return rule["Next"]
    if "Default" in state:
        return state["Default"]
    raise errors.ASLError(errors.NO_CHOICE_MATCHED, "No Matches!")
