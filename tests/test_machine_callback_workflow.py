"""Callback Tasks in StateMachineWorkflow on the time-skipping test server: the request goes out
with the issued token, the `task_token` signal ends the wait with the outside's output or
failure, a heartbeat moves the HeartbeatSeconds deadline, and a wait with no heartbeat ends in
States.HeartbeatTimeout on a durable timer, its token closed. Every run's history replays."""

import asyncio
import uuid
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.worker import Replayer, Worker

from activities.machine_callbacks import CloseTaskTokenInput, IssueTaskTokenInput
from activities.machine_tasks import MachineTaskInput
from schema.task_tokens import token_hash
from tests.test_state_machine_workflow import StandIns
from workflows.machine_callbacks import TASK_TOKEN_SIGNAL, TaskTokenSignal
from workflows.state_machine import StateMachineWorkflow
from workflows.types import SubmissionInput

QUEUE_URL = "https://sqs.example/approvals"


class CallbackStandIns(StandIns):
    def __init__(self, env: Any, machine: dict[str, Any]) -> None:
        super().__init__(env, machine, {"arn:aws:states:::sqs:sendMessage.waitForTaskToken": [{"MessageId": "m"}]})
        self.issued: list[IssueTaskTokenInput] = []
        self.closed: list[CloseTaskTokenInput] = []
        self.sent: list[tuple[MachineTaskInput, datetime]] = []

    @activity.defn(name="issue_task_token")
    async def issue_task_token(self, inp: IssueTaskTokenInput) -> str:
        self.issued.append(inp)
        return f"tok-{inp.path}-{inp.attempt}"

    @activity.defn(name="close_task_token")
    async def close_task_token(self, inp: CloseTaskTokenInput) -> None:
        self.closed.append(inp)

    def all(self) -> list:
        return [*super().all(), self.issue_task_token, self.close_task_token]


def ask(**more: Any) -> dict[str, Any]:
    params = {"QueueUrl": QUEUE_URL, "MessageBody": {"token.$": "$$.Task.Token"}}
    task = {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "Parameters": params}
    return {"StartAt": "Ask", "States": {"Ask": {**task, **more}, "Done": {"Type": "Pass", "End": True}}}


async def start(env: Any, fakes: CallbackStandIns, queue: str) -> WorkflowHandle[Any, Any]:
    return await env.client.start_workflow(
        StateMachineWorkflow.run,
        SubmissionInput("t-1", f"job-{uuid.uuid4()}"),
        id=f"wf-{uuid.uuid4()}",
        task_queue=queue,
    )


async def sent(fakes: CallbackStandIns) -> None:
    for _ in range(250):  # the request went out: the wait is open
        if fakes.tasks:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the request never went out")


async def test_the_signal_ends_the_wait_with_the_outsides_output(env):
    fakes = CallbackStandIns(env, ask(ResultPath="$.decision", Next="Done"))
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[StateMachineWorkflow], activities=fakes.all()):
        handle = await start(env, fakes, queue)
        await sent(fakes)
        (inp, _, _) = fakes.tasks[0]
        assert inp.token == "tok-Ask-1" and inp.payload == {
            "QueueUrl": QUEUE_URL,
            "MessageBody": {"token": "tok-Ask-1"},
        }
        digest = token_hash("tok-Ask-1")
        await handle.signal(TASK_TOKEN_SIGNAL, TaskTokenSignal(digest, "success", {"approved": True}))
        await handle.signal(TASK_TOKEN_SIGNAL, TaskTokenSignal(digest, "failure", error="Late"))  # ignored
        await handle.result()
        history = await handle.fetch_history()
    assert fakes.finished is not None and fakes.finished.status == "succeeded"
    assert fakes.finished.output == {"order": 7, "decision": {"approved": True}}
    assert [(i.path, i.attempt, i.state) for i in fakes.issued] == [("Ask", 1, "Ask")]
    assert fakes.closed == []  # the API closed it when it signalled
    await Replayer(workflows=[StateMachineWorkflow]).replay_workflow(history)


async def test_a_missed_heartbeat_is_a_heartbeat_timeout_on_a_durable_timer(env):
    catch = [{"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.quiet", "Next": "Done"}]
    fakes = CallbackStandIns(env, ask(HeartbeatSeconds=60, TimeoutSeconds=3600, Catch=catch))
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[StateMachineWorkflow], activities=fakes.all()):
        handle = await start(env, fakes, queue)
        await sent(fakes)
        digest = token_hash("tok-Ask-1")
        await handle.signal(TASK_TOKEN_SIGNAL, TaskTokenSignal(digest, "heartbeat"))
        await handle.result()
        history = await handle.fetch_history()
    assert fakes.finished is not None and fakes.finished.status == "succeeded"
    assert fakes.finished.output["quiet"]["Error"] == "States.HeartbeatTimeout"
    assert [(c.token_hash, c.status) for c in fakes.closed] == [(digest, "timed_out")]
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    # HeartbeatSeconds after the Task started (the request took part of it), then after the heartbeat
    assert len(timers) == 2 and all(59 <= t <= 60 for t in timers), timers
    fired = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
    assert len(fired) == 1
    await Replayer(workflows=[StateMachineWorkflow]).replay_workflow(history)


async def test_the_outsides_failure_is_caught_by_its_name(env):
    catch = [{"ErrorEquals": ["Rejected"], "ResultPath": "$.why", "Next": "Done"}]
    fakes = CallbackStandIns(env, ask(Catch=catch))
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[StateMachineWorkflow], activities=fakes.all()):
        handle = await start(env, fakes, queue)
        await sent(fakes)
        sig = TaskTokenSignal(token_hash("tok-Ask-1"), "failure", error="Rejected", cause="over budget")
        await handle.signal(TASK_TOKEN_SIGNAL, sig)
        await handle.result()
    assert fakes.finished is not None
    assert fakes.finished.output["why"] == {"Error": "Rejected", "Cause": "over budget"}
