"""An in-memory Runtime for the interpreter's tests (a scripted run_task, a fake clock whose
sleep advances time and records the delay, seeded sources), and the interpreter's contract
with it: what reaches the runtime, what comes back, what is recorded."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lodestone.asl.errors import ASLError
from lodestone.asl.functions import Sources
from lodestone.asl.machine import Event, Outcome, TaskCall, run

START = datetime(2024, 1, 1, tzinfo=UTC)
CONTEXT = {
    "Execution": {"Id": "exec-1", "Name": "job-1", "StartTime": "2024-01-01T00:00:00.000Z", "Input": {}},
    "StateMachine": {"Id": "order-check:3", "Name": "order-check"},
}


class FakeRuntime:
    """``tasks`` maps a Resource to a handler ``(call) -> result`` (sync or async; raise an
    ASLError to fail); an unknown Resource echoes its payload."""

    def __init__(self, tasks: Mapping[str, Callable[[TaskCall], Any]] | None = None, seed: int = 7) -> None:
        self.handlers = dict(tasks or {})
        self.clock = START
        self.calls: list[TaskCall] = []
        self.events: list[Event] = []
        self.sleeps: list[float] = []
        self.cancelled: list[str] = []
        self.active = 0
        self.max_active = 0
        rng = random.Random(seed)
        ids = iter(range(1, 10**6))
        self.sources = Sources(
            random=rng.random,
            uuid=lambda: f"00000000-0000-4000-8000-{next(ids):012d}",
            now_millis=lambda: int(self.clock.timestamp() * 1000),
        )

    def now(self) -> datetime:
        return self.clock

    async def run_task(self, call: TaskCall) -> Any:
        self.calls.append(call)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(0)
            handler = self.handlers.get(call.resource)
            result = handler(call) if handler else call.payload
            if inspect.isawaitable(result):
                result = await result
            return result
        except asyncio.CancelledError:
            self.cancelled.append(call.path)
            raise
        finally:
            self.active -= 1

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    def record(self, event: Event) -> None:
        self.events.append(event)

    def path(self) -> list[tuple[str, str]]:
        return [(e.kind, e.path) for e in self.events]


async def execute(definition: Mapping[str, Any], input: Any = None, rt: FakeRuntime | None = None) -> Outcome:
    return await run(definition, {} if input is None else input, rt or FakeRuntime(), CONTEXT)


def fails(error: str, cause: str = "") -> Callable[[TaskCall], Any]:
    def handler(call: TaskCall) -> Any:
        raise ASLError(error, cause)

    return handler


def script(*steps: Any) -> Callable[[TaskCall], Any]:
    """Answers call after call: an ASLError instance is raised, anything else returned."""
    queue = list(steps)

    def handler(call: TaskCall) -> Any:
        step = queue.pop(0)
        if isinstance(step, ASLError):
            raise step
        return step

    return handler


async def never(call: TaskCall) -> Any:
    await asyncio.Future()


def machine(states: dict[str, Any], start: str | None = None, **top: Any) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states, **top}


# --- the contract with the runtime ----------------------------------------------------------


async def test_a_task_call_carries_state_path_resource_payload_and_attempt():
    rt = FakeRuntime()
    definition = machine(
        {
            "Check": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"n.$": "$.n"},
                "End": True,
            }
        }
    )
    outcome = await execute(definition, {"n": 5}, rt)
    assert rt.calls == [
        TaskCall(
            state="Check",
            path="Check",
            resource="arn:aws:states:::lambda:invoke",
            payload={"n": 5},
            timeout_seconds=None,
            heartbeat_seconds=None,
            attempt=1,
        )
    ]
    assert outcome == Outcome("SUCCEEDED", output={"n": 5})


async def test_without_parameters_the_payload_is_the_effective_input():
    rt = FakeRuntime()
    definition = machine({"T": {"Type": "Task", "Resource": "r", "InputPath": "$.order", "End": True}})
    await execute(definition, {"order": {"id": 1}, "other": 2}, rt)
    assert rt.calls[0].payload == {"id": 1}


async def test_no_state_but_task_calls_the_runtime():
    rt = FakeRuntime()
    definition = machine(
        {
            "P": {"Type": "Pass", "Next": "C"},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": 1, "Next": "W"}]},
            "W": {"Type": "Wait", "Seconds": 1, "Next": "S"},
            "S": {"Type": "Succeed"},
        }
    )
    assert (await execute(definition, {"a": 1}, rt)).status == "SUCCEEDED"
    assert rt.calls == []


async def test_a_runtime_failure_that_is_not_an_asl_error_is_raised_not_turned_into_an_outcome():
    def broken(call: TaskCall) -> Any:
        raise ConnectionError("the host lost its connection")

    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "r",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "X"}],
                "End": True,
            },
            "X": {"Type": "Pass", "End": True},
        }
    )
    with pytest.raises(ConnectionError):
        await execute(definition, {}, FakeRuntime({"r": broken}))


async def test_a_machine_failure_is_an_outcome():
    outcome = await execute(machine({"F": {"Type": "Fail", "Error": "Bad", "Cause": "why"}}))
    assert outcome == Outcome("FAILED", error="Bad", cause="why")
