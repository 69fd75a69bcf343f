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
from typing import Any

import httpx
import pytest

from lodestone.asl.bindings import check_bindings, unbound
from lodestone.asl.machine import run
from lodestone.asl.validate import validate
from tests.asl.realworld.cases import CASES, HERE, at, check_run, endpoint, load, runs
from tests.asl.realworld.scripted_runtime import ScriptedRuntime, context

# Cases that fail because Lodestone departs from the specification (or from Step Functions
# running the published machine): case -> reason. Each is a strict xfail, so a fix shows.
KNOWN_DEPARTURES: dict[str, str] = {}


def _marks(name: str) -> list[Any]:
    reason = KNOWN_DEPARTURES.get(name)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def test_there_are_at_least_fifty_machines() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("name", CASES)
def test_case_names_its_source_and_license(name: str) -> None:
    text, case = load(name)
    source = case["source"]
    assert source["repo"] and source["path"] and len(source["commit"]) == 40
    assert source["url"] == f"https://github.com/{source['repo']}/blob/{source['commit']}/{source['path']}"
    assert case["license"] == "MIT-0"
    assert "${" not in text, "an unsubstituted template placeholder"
    readme = (HERE / "README.md").read_text()
    assert f"`{name}`" in readme and source["url"] in readme


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in CASES])
def test_machine_passes_validation(name: str) -> None:
    text, case = load(name)
    definition = at(text, "http://127.0.0.1:9")
    bindings = at(json.dumps(case["bindings"]), "http://127.0.0.1:9")
    assert validate(definition) == []
    assert check_bindings(bindings) == []
    assert unbound(definition, bindings) == []


@pytest.mark.parametrize(("name", "input", "script", "expected"), runs(KNOWN_DEPARTURES))
async def test_machine_runs_to_its_expected_end(name: str, input: Any, script: Any, expected: Any) -> None:
    text, case = load(name)
    with endpoint(script) as service:
        definition = at(text, service.url)
        bindings = at(json.dumps(case["bindings"]), service.url)
        async with httpx.AsyncClient(timeout=10) as client:
            runtime = ScriptedRuntime(bindings, client)
            outcome = await run(definition, input, runtime, context(name, input))

    check_run(
        expected,
        service,
        states=runtime.entered(),
        status=outcome.status,
        error=outcome.error,
        cause=outcome.cause,
        output=outcome.output,
    )
    if "sleeps" in expected:
        assert runtime.sleeps == expected["sleeps"]
