"""Real-world state machines from public sample collections, run to their expected end.

Each directory under tests/asl/realworld/ holds one machine and case.json. The machine is
machine.asl.json (verbatim from its source after placeholder substitution), or the published
file named by case.json's ``file`` (an ASL document or a SAM / CloudFormation template, with the
files its DefinitionUri names) read the way `lodestone import stepfunctions` reads it, with
case.json's ``mapping`` for its placeholders and ``machine`` picking a template's machine.
case.json holds its source and license, its
resource bindings, an input, per-route scripted answers and the expected outcome (status,
error/cause, output, the top-level states entered in order, the timers, the request bodies),
plus optional further runs under "also". Every Task goes over real HTTP to a scripted
stand-in endpoint; see realworld/README.md.
"""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.task_service import Reply, TaskService
from lodestone.asl.bindings import check_bindings, unbound
from lodestone.asl.machine import run
from lodestone.asl.templates import parse_document, state_machines
from lodestone.asl.validate import validate
from tests.asl.realworld.scripted_runtime import ScriptedRuntime, context

HERE = Path(__file__).parent / "realworld"
CASES = sorted(p.name for p in HERE.iterdir() if (p / "case.json").is_file())

# Cases that fail because Lodestone departs from the specification (or from Step Functions
# running the published machine): case -> reason. Each is a strict xfail, so a fix shows.
KNOWN_DEPARTURES: dict[str, str] = {}


def _marks(name: str) -> list[Any]:
    reason = KNOWN_DEPARTURES.get(name)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _load(name: str) -> tuple[str, dict[str, Any]]:
    """The machine as JSON text (read through the import path) and the case."""
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


def _runs() -> list[Any]:
    out = []
    for name in CASES:
        case = _load(name)[1]
        runs = [("main", case["input"], case["script"], case["expected"])]
        runs += [(r["name"], r["input"], r["script"], r["expected"]) for r in case.get("also", [])]
        for run_name, input, script, expected in runs:
            out.append(pytest.param(name, input, script, expected, id=f"{name}:{run_name}", marks=_marks(name)))
    return out


def _endpoint(script: dict[str, list[Any]]) -> TaskService:
    """The stand-in service answering each route's entries once each, in order: a reply object
    (``body``, with ``status`` and ``match`` where given) as that Reply, anything else as JSON."""

    def answer(entry: Any) -> Any:
        if isinstance(entry, dict) and "body" in entry and set(entry) <= {"status", "body", "match"}:
            return Reply(int(entry.get("status", 200)), entry["body"], match=entry.get("match"))
        return entry

    routes: dict[str, Any] = {route: [answer(e) for e in entries] for route, entries in script.items()}
    return TaskService(None, routes, repeat_last=False)


def _at(text: str, endpoint: str) -> Any:
    return json.loads(text.replace("{endpoint}", endpoint))


def _same_requests(route: str, actual: list[Any], expected: list[Any]) -> None:
    """Request bodies compared as a multiset (concurrent iterations may arrive in any order);
    None in the expected list stands for any body."""
    assert len(actual) == len(expected), f"/{route}: {len(actual)} requests, expected {len(expected)}: {actual}"
    rest = list(actual)
    for want in expected:
        if want is None:
            continue
        assert want in rest, f"/{route}: no request with body {want}; got {actual}"
        rest.remove(want)


def test_there_are_at_least_fifty_machines() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("name", CASES)
def test_case_names_its_source_and_license(name: str) -> None:
    text, case = _load(name)
    source = case["source"]
    assert source["repo"] and source["path"] and len(source["commit"]) == 40
    assert source["url"] == f"https://github.com/{source['repo']}/blob/{source['commit']}/{source['path']}"
    assert case["license"] == "MIT-0"
    assert "${" not in text, "an unsubstituted template placeholder"
    readme = (HERE / "README.md").read_text()
    assert f"`{name}`" in readme and source["url"] in readme


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in CASES])
def test_machine_passes_validation(name: str) -> None:
    text, case = _load(name)
    definition = _at(text, "http://127.0.0.1:9")
    bindings = _at(json.dumps(case["bindings"]), "http://127.0.0.1:9")
    assert validate(definition) == []
    assert check_bindings(bindings) == []
    assert unbound(definition, bindings) == []


@pytest.mark.parametrize(("name", "input", "script", "expected"), _runs())
async def test_machine_runs_to_its_expected_end(name: str, input: Any, script: Any, expected: Any) -> None:
    text, case = _load(name)
    with _endpoint(script) as endpoint:
        definition = _at(text, endpoint.url)
        bindings = _at(json.dumps(case["bindings"]), endpoint.url)
        async with httpx.AsyncClient(timeout=10) as client:
            runtime = ScriptedRuntime(bindings, client)
            outcome = await run(definition, input, runtime, context(name, input))

    assert runtime.entered() == expected["states"]
    assert (outcome.status, outcome.error, outcome.cause) == (
        expected["status"],
        expected.get("error", outcome.error),
        expected.get("cause", outcome.cause),
    )
    if "output" in expected:
        assert outcome.output == expected["output"]
    if "sleeps" in expected:
        assert runtime.sleeps == expected["sleeps"]
    for route, bodies in expected.get("requests", {}).items():
        _same_requests(route, [c.body for c in endpoint.calls_to(route)], bodies)
    assert endpoint.unanswered == []
    assert endpoint.left() == {}, "scripted answers no request used"
