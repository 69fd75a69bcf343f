"""Loading the conformance cases (``*.yaml`` beside this file) and matching expected values.

YAML is read without its implicit timestamps and yes/no booleans: a timestamp stays the
string the definition gives, as in JSON.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
CASE_KEYS = {"name", "source", "definition", "input", "tasks", "context", "expect", "xfail", "seed"}
EXPECT_KEYS = {
    "status",
    "output",
    "error",
    "cause",
    "sleeps",
    "sleep_bounds",
    "max_concurrent",
    "entered",
    "calls",
    "call_count",
    "attempts",
    "timeouts",
    "events",
    "elapsed",
}


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class Case:
    topic: str
    name: str
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.topic}/{self.name}"


def load_all() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(HERE.glob("*.yaml")):
        doc = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        topic = doc["topic"]
        for data in doc["cases"]:
            unknown = set(data) - CASE_KEYS
            assert not unknown, f"{path.name}: {data.get('name')}: unknown keys {unknown}"
            unknown = set(data["expect"]) - EXPECT_KEYS
            assert not unknown, f"{path.name}: {data.get('name')}: unknown expect keys {unknown}"
            assert data.get("source"), f"{path.name}: {data.get('name')}: no source"
            cases.append(Case(topic, data["name"], data))
    ids = [c.id for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate case ids: {dupes}"
    return cases


def matches(expected: Any, actual: Any) -> bool:
    """JSON equality (1 == 1.0, but true is not 1), with matchers for values a case cannot fix:
    {"$match": "int", "min": a, "max": b}, {"$match": "uuid4"}, {"$match": "regex", "pattern": p},
    {"$match": "number", "min": a, "max": b}, {"$match": "any"}."""
    if isinstance(expected, dict) and "$match" in expected:
        return _matcher(expected, actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and set(expected) == set(actual)
            and all(matches(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return type(expected) is type(actual) and expected == actual


_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _matcher(spec: dict[str, Any], actual: Any) -> bool:
    kind = spec["$match"]
    if kind == "any":
        return True
    if kind == "uuid4":
        return isinstance(actual, str) and bool(_UUID4.match(actual))
    if kind == "regex":
        return isinstance(actual, str) and re.fullmatch(spec["pattern"], actual) is not None
    if kind in ("int", "number"):
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        if kind == "int" and not float(actual).is_integer():
            return False
        return spec.get("min", -math.inf) <= actual <= spec.get("max", math.inf)
    raise ValueError(f"unknown matcher {kind!r}")
