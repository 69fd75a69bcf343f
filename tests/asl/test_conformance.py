"""The ASL conformance suite: every case in tests/asl/conformance/*.yaml runs through
lodestone.asl.machine.run with a scripted in-memory Runtime (fake clock, scripted Tasks,
seeded sources) and is compared with the outcome the spec (states-language.net) or the AWS
Step Functions developer guide states for it. Each case names its source.

Case ids are "<topic>/<name>" (``-k choice/`` runs one topic);
``python -m tests.asl.test_conformance`` prints the count of cases per topic.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import sys
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from lodestone.asl.validate import validate
from tests.asl.conformance.cases import Case, load_all, matches
from tests.asl.conformance.runtime import Clock, Script, ScriptedRuntime, drive

CASES = load_all()
START = "2024-01-01T00:00:00Z"


def default_context(data: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {
        "Execution": {
            "Id": "arn:aws:states:us-east-1:123456789012:execution:ConformanceMachine:run-1",
            "Name": "run-1",
            "StartTime": START,
            "Input": copy.deepcopy(data.get("input", {})),
        },
        "StateMachine": {
            "Id": "arn:aws:states:us-east-1:123456789012:stateMachine:ConformanceMachine",
            "Name": "ConformanceMachine",
        },
    }
    for key, value in (data.get("context") or {}).items():
        both = isinstance(value, dict) and isinstance(context.get(key), dict)
        context[key] = {**context[key], **value} if both else value
    return context


def execute(data: dict[str, Any]) -> tuple[Any, ScriptedRuntime]:
    from lodestone.asl.machine import run

    context = default_context(data)
    start = datetime.fromisoformat(context["Execution"]["StartTime"].replace("Z", "+00:00"))
    runtime = ScriptedRuntime(Script(data.get("tasks") or {}), Clock(start), seed=data.get("seed", 7))
    definition = copy.deepcopy(data["definition"])
    coro = run(definition, copy.deepcopy(data.get("input", {})), runtime, context)
    loop = asyncio.new_event_loop()  # not set as the thread's loop: pytest-asyncio keeps its own
    try:
        outcome = loop.run_until_complete(drive(coro, runtime.clock))
    finally:
        loop.close()
    return outcome, runtime


def _params() -> list[Any]:
    params = []
    for case in CASES:
        marks = []
        if case.data.get("xfail"):
            marks.append(pytest.mark.xfail(strict=True, reason=case.data["xfail"]))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def _by_resource(calls: list[Any], attr: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for call in calls:
        out.setdefault(call.resource, []).append(getattr(call, attr))
    return out


def check(case: Case, outcome: Any, runtime: ScriptedRuntime) -> None:
    expect = case.data["expect"]
    assert not runtime.unscripted, f"Task calls the case does not script: {runtime.unscripted}"
    got = f"status={outcome.status} error={outcome.error!r} cause={outcome.cause!r} output={outcome.output!r}"
    assert outcome.status == expect["status"], got
    if "output" in expect:
        assert matches(expect["output"], outcome.output), f"output: expected {expect['output']!r}, {got}"
    if "error" in expect:
        assert outcome.error == expect["error"], got
    if "cause" in expect:
        assert matches(expect["cause"], outcome.cause), f"cause: expected {expect['cause']!r}, {got}"
    if "sleeps" in expect:
        assert matches(expect["sleeps"], runtime.sleeps), f"sleeps {runtime.sleeps}"
    if "sleep_bounds" in expect:
        bounds = expect["sleep_bounds"]
        assert len(runtime.sleeps) == len(bounds), f"sleeps {runtime.sleeps}"
        for delay, (low, high) in zip(runtime.sleeps, bounds, strict=True):
            assert low <= delay <= high, f"sleeps {runtime.sleeps} outside {bounds}"
    if "max_concurrent" in expect:
        assert runtime.max_in_flight == expect["max_concurrent"]
    if "elapsed" in expect:
        assert matches(expect["elapsed"], runtime.clock.elapsed), f"elapsed {runtime.clock.elapsed}"
    if "entered" in expect:
        entered = [e.state for e in runtime.events if e.kind == "entered" and "/" not in e.path]
        assert entered == expect["entered"]
    if "calls" in expect:
        payloads = _by_resource(runtime.calls, "payload")
        for resource, expected in expect["calls"].items():
            assert matches(expected, payloads.get(resource, [])), f"{resource}: {payloads.get(resource)}"
    if "call_count" in expect:
        counts = Counter(call.resource for call in runtime.calls)
        assert {r: counts.get(r, 0) for r in expect["call_count"]} == expect["call_count"]
    if "attempts" in expect:
        attempts = _by_resource(runtime.calls, "attempt")
        assert {r: attempts.get(r, []) for r in expect["attempts"]} == expect["attempts"]
    if "timeouts" in expect:
        got_t = {
            r: [[c.timeout_seconds, c.heartbeat_seconds] for c in runtime.calls if c.resource == r]
            for r in expect["timeouts"]
        }
        assert matches(expect["timeouts"], got_t), got_t
    if "events" in expect:
        kinds = {e["kind"] for e in expect["events"]}
        seen = [dataclasses.asdict(e) for e in runtime.events if e.kind in kinds]
        trimmed = [{k: s.get(k) for k in e} for s, e in zip(seen, expect["events"], strict=False)]
        assert len(seen) == len(expect["events"]) and all(
            matches(e, t) for e, t in zip(expect["events"], trimmed, strict=True)
        ), seen


@pytest.mark.parametrize("case", _params())
def test_conformance(case: Case) -> None:
    problems = validate(case.data["definition"])
    assert not problems, f"the case's definition is not valid ASL: {problems}"
    outcome, runtime = execute(case.data)
    check(case, outcome, runtime)


def test_the_suite_covers_every_topic_with_enough_cases() -> None:
    counts = Counter(case.topic for case in CASES)
    assert sum(counts.values()) >= 250, counts
    for topic, n in counts.items():
        assert n >= 5, (topic, n)


def counts_table() -> str:
    counts = Counter(case.topic for case in CASES)
    lines = [f"{topic:<14} {n:>4}" for topic, n in sorted(counts.items())]
    return "\n".join([*lines, f"{'total':<14} {sum(counts.values()):>4}"])


if __name__ == "__main__":
    sys.stdout.write(counts_table() + "\n")
