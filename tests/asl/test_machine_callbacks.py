"""Callback Tasks (`.waitForTaskToken`) in the interpreter, on the in-memory runtime: the token
reaches `$$.Task.Token` before Parameters are evaluated, the runtime is told the Task is a
callback, and the wait (lodestone/asl/callback.py) ends with the outside's output, its
failure, States.Timeout after TimeoutSeconds or States.HeartbeatTimeout after HeartbeatSeconds
without a heartbeat (Step Functions developer guide: "Wait for a Callback with Task Token")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from lodestone.asl.callback import CallbackWait, wait_for_callback
from lodestone.asl.machine import TaskCall
from tests.asl.test_machine_runtime import START, FakeRuntime, execute

SQS = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
# What the outside does after the request went out: (seconds after the Task started, kind, value)
Script = list[tuple[float, str, Any]]


class CallbackRuntime(FakeRuntime):
    def __init__(self, outside: Mapping[str, Callable[[TaskCall], Script]], **kw: Any) -> None:
        super().__init__(**kw)
        self.outside = outside
        self.minted: list[tuple[str, str, int]] = []

    async def task_token(self, state: str, path: str, attempt: int) -> str:
        self.minted.append((state, path, attempt))
        return f"tok:{path}#{attempt}"

    async def run_task(self, call: TaskCall) -> Any:
        if not call.callback:
            return await super().run_task(call)
        self.calls.append(call)
        wait = CallbackWait(self.clock, call.timeout_seconds, call.heartbeat_seconds)
        changed = asyncio.Event()

        async def act(at: float, kind: str, value: Any) -> None:
            await self.sleep(at)
            if kind == "success":
                wait.succeed(value)
            elif kind == "failure":
                wait.fail(*value)
            else:
                wait.beat(self.clock)
            changed.set()

        async def until(moved: Callable[[], bool], seconds: float | None) -> None:
            changed.clear()
            racers = [asyncio.ensure_future(changed.wait())]
            if seconds is not None:
                racers.append(asyncio.ensure_future(self.sleep(seconds)))
            await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
            for r in racers:
                r.cancel()

        actors = [asyncio.ensure_future(act(*step)) for step in self.outside[call.state](call)]
        try:
            return await wait_for_callback(wait, self.now, until)
        finally:
            for a in actors:
                a.cancel()


def machine(task: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    states: dict[str, Any] = {"Ask": {"Type": "Task", "Resource": SQS, **task}, **extra}
    return {"StartAt": "Ask", "States": states}


ASK = {"Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token", "order.$": "$.order"}}}


async def test_the_token_is_in_the_parameters_and_the_output_is_what_the_outside_sent():
    rt = CallbackRuntime({"Ask": lambda call: [(30, "success", {"approved": True})]})
    out = await execute(machine({**ASK, "ResultPath": "$.decision", "End": True}), {"order": 7}, rt)
    assert out.status == "SUCCEEDED"
    assert out.output == {"order": 7, "decision": {"approved": True}}
    (call,) = rt.calls
    assert call.callback is True and call.token == "tok:Ask#1"
    assert call.payload == {"QueueUrl": "q", "MessageBody": {"token": "tok:Ask#1", "order": 7}}
    assert rt.minted == [("Ask", "Ask", 1)]
    assert rt.clock == START + timedelta(seconds=30)


async def test_a_plain_task_gets_no_token():
    rt = CallbackRuntime({})
    out = await execute({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "fn", "End": True}}}, {}, rt)
    assert out.status == "SUCCEEDED"
    assert rt.calls[0].callback is False and rt.calls[0].token is None and rt.minted == []


async def test_a_failure_the_outside_sends_is_caught_like_any_task_error():
    rt = CallbackRuntime({"Ask": lambda call: [(1, "failure", ("Rejected", "no budget"))]})
    catch = [{"ErrorEquals": ["Rejected"], "ResultPath": "$.why", "Next": "Declined"}]
    definition = machine({**ASK, "Catch": catch, "End": True}, Declined={"Type": "Pass", "End": True})
    out = await execute(definition, {"order": 1}, rt)
    assert out.output == {"order": 1, "why": {"Error": "Rejected", "Cause": "no budget"}}


async def test_timeout_seconds_bounds_the_wait():
    rt = CallbackRuntime({"Ask": lambda call: [(120, "success", {})]})
    out = await execute(machine({**ASK, "TimeoutSeconds": 60, "End": True}), {"order": 1}, rt)
    assert (out.status, out.error) == ("FAILED", "States.Timeout")
    assert rt.clock == START + timedelta(seconds=60)


async def test_heartbeats_keep_the_wait_alive_and_a_missed_one_fails_it():
    beating = CallbackRuntime({"Ask": lambda call: [(5, "beat", None), (10, "beat", None), (14, "success", 1)]})
    out = await execute(machine({**ASK, "HeartbeatSeconds": 6, "End": True}), {"order": 1}, beating)
    assert (out.status, out.output) == ("SUCCEEDED", 1)

    silent = CallbackRuntime({"Ask": lambda call: [(5, "beat", None), (20, "success", 1)]})
    out = await execute(machine({**ASK, "HeartbeatSeconds": 6, "End": True}), {"order": 1}, silent)
    assert (out.status, out.error) == ("FAILED", "States.HeartbeatTimeout")
    assert silent.clock == START + timedelta(seconds=11)  # 6 s after the last heartbeat


async def test_each_retry_waits_on_a_new_token():
    def outside(call: TaskCall) -> Script:
        return [] if call.attempt == 1 else [(1, "success", {"token": call.token})]

    rt = CallbackRuntime({"Ask": outside})
    retry = [{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 2}]
    out = await execute(machine({**ASK, "HeartbeatSeconds": 10, "Retry": retry, "End": True}), {"order": 1}, rt)
    assert out.output == {"token": "tok:Ask#2"}
    assert [c.payload["MessageBody"]["token"] for c in rt.calls] == ["tok:Ask#1", "tok:Ask#2"]


async def test_jsonata_reads_the_token_from_states_context():
    rt = CallbackRuntime({"Ask": lambda call: [(1, "success", {"ok": True})]})
    task = {"QueryLanguage": "JSONata", "Arguments": {"token": "{% $states.context.Task.Token %}"}, "End": True}
    out = await execute(machine(task), {}, rt)
    assert out.output == {"ok": True}
    assert rt.calls[0].payload == {"token": "tok:Ask#1"}


async def test_a_runtime_that_issues_no_tokens_gets_a_stand_in_from_its_sources():
    rt = FakeRuntime()  # echoes the payload: the token it was given
    out = await execute(machine({"Parameters": {"t.$": "$$.Task.Token"}, "End": True}), {}, rt)
    assert out.output == {"t": "00000000-0000-4000-8000-000000000001"}
    assert rt.calls[0].callback is True


def test_a_settled_wait_refuses_a_second_outcome():
    wait = CallbackWait(START)
    assert wait.succeed({"a": 1}) is True
    assert wait.fail("X", "y") is False and wait.succeed(2) is False and wait.beat(START) is False
    assert wait.result() == {"a": 1}
