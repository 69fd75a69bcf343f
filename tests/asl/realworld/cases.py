"""The real-world cases on disk and the checks every runner of them makes.

A case is a directory here with machine.asl.json and case.json (see README.md). A run is the
case's main input or one of its "also" runs; whichever runtime performs it (the interpreter
with the scripted test runtime, or the Temporal workflow), the run must end as its
``expected`` says: the top-level states entered, status, error and cause, the output where
given, the request bodies each route received, and every scripted answer used.
"""

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from devstack.task_service import Reply, TaskService
from lodestone.asl.templates import parse_document, state_machines

HERE = Path(__file__).parent
CASES = sorted(p.name for p in HERE.iterdir() if (p / "case.json").is_file())


def load(name: str) -> tuple[str, dict[str, Any]]:
    """A case's machine as JSON text (``{endpoint}`` still in it), read through the import path
    (an ASL file, or a CloudFormation/SAM template with its mapping), and its case.json."""
    case = json.loads((HERE / name / "case.json").read_text())
    folder = HERE / name
    source = folder / case.get("file", "machine.asl.json")
    found = state_machines(
        parse_document(source.read_text()),
        source.name.split(".")[0],
        case.get("mapping", {}),
        lambda uri: (folder / uri).read_text(),
    )
    [machine] = [f for f in found if f.name == case.get("machine", f.name)]
    assert machine.problem is None and machine.unresolved == [], (machine.problem, machine.unresolved)
    return json.dumps(machine.state_machine), case


def runs(departures: Mapping[str, str]) -> list[Any]:
    """Every run of every case as pytest params (name, input, script, expected), id
    ``case:run``. A run named in ``departures`` (by ``case`` or ``case:run``) is a strict xfail
    with that reason."""
    out = []
    for name in CASES:
        case = load(name)[1]
        all_runs = [("main", case["input"], case["script"], case["expected"])]
        all_runs += [(r["name"], r["input"], r["script"], r["expected"]) for r in case.get("also", [])]
        for run_name, input, script, expected in all_runs:
            ident = f"{name}:{run_name}"
            reason = departures.get(ident) or departures.get(name)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(name, input, script, expected, id=ident, marks=marks))
    return out


def endpoint(script: dict[str, list[Any]]) -> TaskService:
    """The stand-in service answering each route's entries once each, in order: a reply object
    (``body``, with ``status`` and ``match`` where given) as that Reply, anything else as JSON."""

    def answer(entry: Any) -> Any:
        if isinstance(entry, dict) and "body" in entry and set(entry) <= {"status", "body", "match"}:
            return Reply(int(entry.get("status", 200)), entry["body"], match=entry.get("match"))
        return entry

    routes: dict[str, Any] = {route: [answer(e) for e in entries] for route, entries in script.items()}
    return TaskService(None, routes, repeat_last=False)


def at(text: str, url: str) -> Any:
    """JSON text with the scripted endpoint's address put in for ``{endpoint}``."""
    return json.loads(text.replace("{endpoint}", url))


def entered(events: Iterable[tuple[str, str, str]]) -> list[str]:
    """The top-level states entered, in order, from (kind, state, path) events: a top-level
    path is the state's name, or name@n when a loop enters it again."""
    return [state for kind, state, path in events if kind == "entered" and path.split("@")[0] == state]


def same_requests(route: str, actual: list[Any], expected: list[Any]) -> None:
    """Request bodies compared as a multiset (concurrent iterations may arrive in any order);
    None in the expected list stands for any body."""
    assert len(actual) == len(expected), f"/{route}: {len(actual)} requests, expected {len(expected)}: {actual}"
    rest = list(actual)
    for want in expected:
        if want is None:
            continue
        assert want in rest, f"/{route}: no request with body {want}; got {actual}"
        rest.remove(want)


def check_run(
    expected: dict[str, Any],
    service: TaskService,
    *,
    states: list[str],
    status: str,
    error: str | None,
    cause: str | None,
    output: Any,
    rename: Callable[[Any], Any] = lambda value: value,
) -> None:
    """The run ended as ``expected`` says (all but its timers, which each runner checks in its
    own terms). ``rename`` maps the run's values (output, request bodies) onto the names the
    case uses, where a runtime's own sources (UUIDs) differ from the scripted runtime's."""
    assert states == expected["states"]
    assert (status, error, cause) == (
        expected["status"],
        expected.get("error", error),
        expected.get("cause", cause),
    )
    if "output" in expected:
        assert rename(output) == expected["output"]
    for route, bodies in expected.get("requests", {}).items():
        same_requests(route, [rename(c.body) for c in service.calls_to(route)], bodies)
    assert service.unanswered == []
    assert service.left() == {}, "scripted answers no request used"
