"""Redrive from the failed state, in memory: a run given the failed run's checkpoint serves the
Tasks that succeeded from it (no call), skips the Waits that ended, and does its first real
work at the state that failed, with the input and variables it had then."""

from __future__ import annotations

from typing import Any

from lodestone.asl.errors import ASLError
from lodestone.asl.machine import TaskCall
from lodestone.asl.machine_resume import Checkpoint, resume
from tests.asl.test_machine_runtime import CONTEXT, FakeRuntime

CHAIN = {
    "StartAt": "One",
    "States": {
        "One": {
            "Type": "Task",
            "Resource": "svc:one",
            "ResultPath": "$.one",
            "Assign": {"seen.$": "$"},
            "Next": "Pause",
        },
        "Pause": {"Type": "Wait", "Seconds": 30, "Next": "Two"},
        "Two": {"Type": "Task", "Resource": "svc:two", "ResultPath": "$.two", "Next": "Three"},
        "Three": {
            "Type": "Task",
            "Resource": "svc:three",
            "Parameters": {"one.$": "$.one", "two.$": "$.two", "seen.$": "$seen"},
            "End": True,
        },
    },
}


def _three(broken: bool):  # type: ignore[no-untyped-def]
    def answer(call: TaskCall) -> Any:
        if broken:
            raise ASLError("Service.Down", "not yet")
        return {"got": call.payload}

    return answer


async def _run(runtime: FakeRuntime, machine: dict[str, Any], done: Checkpoint) -> tuple[Any, Checkpoint]:
    into = Checkpoint()
    outcome = await resume(machine, {"n": 1}, runtime, CONTEXT, done, into)
    return outcome, into


async def test_a_redriven_chain_runs_only_from_the_failed_state() -> None:
    first = FakeRuntime({"svc:one": lambda c: 1, "svc:two": lambda c: 2, "svc:three": _three(True)})
    outcome, saved = await _run(first, CHAIN, Checkpoint())
    assert (outcome.status, outcome.error) == ("FAILED", "Service.Down")
    assert saved.results == {"One": 1, "Two": 2} and saved.waited == ["Pause"]
    assert first.sleeps == [30]

    again = FakeRuntime({"svc:one": lambda c: 10, "svc:two": lambda c: 20, "svc:three": _three(False)})
    outcome, resaved = await _run(again, CHAIN, Checkpoint.from_json(saved.as_json()))
    assert outcome.status == "SUCCEEDED"
    assert [c.state for c in again.calls] == ["Three"]  # One and Two were not called again
    assert again.sleeps == []  # nor the Wait waited again
    # Three got the data and the variable (One's Assign reads its result as $) it had before
    assert outcome.output == {"got": {"one": 1, "two": 2, "seen": 1}}
    assert resaved.results == {"One": 1, "Two": 2, "Three": outcome.output}


MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemProcessor": {
                "StartAt": "Work",
                "States": {"Work": {"Type": "Task", "Resource": "svc:work", "End": True}},
            },
            "End": True,
        }
    },
}


async def test_a_redriven_map_runs_only_the_item_that_failed() -> None:
    def work(fixed: bool):  # type: ignore[no-untyped-def]
        def answer(call: TaskCall) -> Any:
            if call.payload == 3 and not fixed:
                raise ASLError("Item.Bad", "item 3")
            return call.payload * 100

        return answer

    items = [1, 2, 3, 4, 5]
    first = FakeRuntime({"svc:work": work(False)})
    saved = Checkpoint()
    outcome = await resume(MAP, items, first, CONTEXT, Checkpoint(), saved)
    assert outcome.error == "Item.Bad"
    assert "Each/2/Work" not in saved.results and saved.results["Each/0/Work"] == 100

    again = FakeRuntime({"svc:work": work(True)})
    into = Checkpoint()
    outcome = await resume(MAP, items, again, CONTEXT, saved, into)
    assert outcome.status == "SUCCEEDED" and outcome.output == [100, 200, 300, 400, 500]
    ran = sorted(c.path for c in again.calls)
    # item 3 (index 2) runs again, and any item the failure cancelled before it finished
    assert "Each/2/Work" in ran
    assert not set(ran) & set(saved.results)
