"""Step dependency resolution: pure and deterministic, so workflows and the API share it."""

from collections.abc import Iterable, Mapping
from typing import Any


class DagError(ValueError):
    code = "invalid_dag"


class UnknownStepRef(DagError):
    code = "unknown_ref"


class DependencyCycle(DagError):
    code = "dependency_cycle"


def step_dependencies(steps: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Each step's prerequisites: `depends_on` plus every `steps.X` input it reads."""
    steps = list(steps)
    ids = [s["id"] for s in steps]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise DagError(f"duplicate step id(s): {', '.join(dupes)}")
    deps: dict[str, list[str]] = {}
    for step in steps:
        wanted = list(step.get("depends_on", []))
        for ref in step.get("inputs", {}).values():
            kind, _, name = ref.partition(".")
            if kind == "steps" and name not in wanted:
                wanted.append(name)
        for name in wanted:
            if name not in ids:
                raise UnknownStepRef(f"step {step['id']!r} refers to unknown step {name!r}")
            if name == step["id"]:
                raise DependencyCycle(f"step {name!r} depends on itself")
        deps[step["id"]] = wanted
    topological_order(deps)
    return deps


def topological_order(deps: Mapping[str, list[str]]) -> list[str]:
    """Kahn's algorithm in definition order, so the result is stable."""
    remaining = {k: set(v) for k, v in deps.items()}
    order: list[str] = []
    while remaining:
        ready = [k for k, v in remaining.items() if not v]
        if not ready:
            cycle = " -> ".join(_find_cycle(remaining))
            raise DependencyCycle(f"steps form a cycle: {cycle}")
        for k in ready:
            order.append(k)
            del remaining[k]
        for v in remaining.values():
            v.difference_update(ready)
    return order


def _find_cycle(remaining: Mapping[str, set[str]]) -> list[str]:
    start = next(iter(remaining))
    path, seen = [start], {start}
    node = start
    while True:
        node = sorted(remaining[node])[0]
        if node in seen:
            return path[path.index(node) :] + [node]
        path.append(node)
        seen.add(node)
