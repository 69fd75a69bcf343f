"""StateMachineWorkflow on the time-skipping test server, its bookkeeping and Task activities
replaced by named stand-ins: each Retry attempt is its own activity after a durable timer of
the machine's interval, a Wait is a timer, TimeoutSeconds and HeartbeatSeconds become
States.Timeout and States.HeartbeatTimeout for Catch, a failing Parallel branch cancels its
sibling, and every run's history replays."""

import asyncio
import uuid
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.jobs import JobRef, JobStatusInput
from activities.machine_jobs import MachineEventsInput, MachineFinishInput, MachinePlan
from activities.machine_tasks import MachineTaskInput
from tests.helpers import slot_granted
from workflows.state_machine import StateMachineWorkflow
from workflows.types import SubmissionInput


class StandIns:
    """The bookkeeping activities, kept in memory, and a scripted run_machine_task: per
    resource, a list of answers in order (a value, an ApplicationError to raise, or a float:
    sleep that many seconds, then answer the next)."""

    def __init__(self, env: WorkflowEnvironment, machine: dict[str, Any], script: dict[str, list[Any]]) -> None:
        self.env, self.machine, self.script = env, machine, script
        self.events: list[dict[str, Any]] = []
        self.finished: MachineFinishInput | None = None
        self.statuses: list[str] = []
        self.tasks: list[tuple[MachineTaskInput, datetime, str]] = []  # input, when, activity id
        self.cancelled: list[str] = []

    @activity.defn(name="load_machine")
    async def load_machine(self, ref: JobRef) -> MachinePlan:
        return MachinePlan(self.machine, [], {"order": 7}, {"Execution": {"Id": ref.job_id}}, 4096)

    @activity.defn(name="set_status")
    async def set_status(self, inp: JobStatusInput) -> None:
        self.statuses.append(inp.status)

    @activity.defn(name="record_machine_events")
    async def record_machine_events(self, inp: MachineEventsInput) -> None:
        assert inp.first_seq == len(self.events), "events are written in order, each once"
        self.events.extend(inp.events)

    @activity.defn(name="finish_machine")
    async def finish_machine(self, inp: MachineFinishInput) -> None:
        self.finished = inp

    @activity.defn(name="save_machine_checkpoint")
    async def save_machine_checkpoint(self, inp: Any) -> None:
        """A failed run's checkpoint, for a redrive (kept nowhere here)."""

    @activity.defn(name="run_machine_task")
    async def run_task(self, inp: MachineTaskInput) -> Any:
        self.tasks.append((inp, await self.env.get_current_time(), activity.info().activity_id))
        answers = self.script[inp.resource]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, float):
            try:
                for _ in range(int(answer)):
                    await asyncio.sleep(1)
                    if inp.resource.endswith("heartbeating"):
                        activity.heartbeat()
            except asyncio.CancelledError:
                self.cancelled.append(inp.path)
                raise
            answer = answers.pop(0) if answers else {"slept": answer}
        if isinstance(answer, ApplicationError):
            raise answer
        return answer

    def all(self) -> list:
        return [
            self.load_machine,
            self.set_status,
            slot_granted,
            self.record_machine_events,
            self.finish_machine,
            self.run_task,
            self.save_machine_checkpoint,
        ]


async def run(env: WorkflowEnvironment, fakes: StandIns) -> tuple[bool, WorkflowHistory]:
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[StateMachineWorkflow], activities=fakes.all()):
        handle = await env.client.start_workflow(
            StateMachineWorkflow.run,
            SubmissionInput("t-1", f"job-{uuid.uuid4()}"),
            id=f"wf-{uuid.uuid4()}",
            task_queue=queue,
        )
        try:
            await handle.result()
            ok = True
        except WorkflowFailureError:
            ok = False
        history = await handle.fetch_history()
    await Replayer(workflows=[StateMachineWorkflow]).replay_workflow(history)
    return ok, history


def failure(error: str, cause: str = "") -> ApplicationError:
    return ApplicationError(cause, type=error, non_retryable=True)


def task(resource: str, **more: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, **more}


async def test_each_retry_attempt_is_its_own_activity_after_its_interval(env):
    machine = {
        "StartAt": "Call",
        "States": {
            "Call": task(
                "svc",
                Retry=[{"ErrorEquals": ["Busy"], "IntervalSeconds": 3, "BackoffRate": 2, "MaxAttempts": 3}],
                End=True,
            )
        },
    }
    fakes = StandIns(env, machine, {"svc": [failure("Busy"), failure("Busy"), {"ok": True}]})
    ok, history = await run(env, fakes)
    assert ok and fakes.finished is not None
    assert (fakes.finished.status, fakes.finished.output) == ("succeeded", {"ok": True})
    assert [t.attempt for t, _, _ in fakes.tasks] == [1, 2, 3]
    starts = [when for _, when, _ in fakes.tasks]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    # IntervalSeconds 3, then 3 x BackoffRate 2 = 6 (the spec's own retry arithmetic)
    assert 3 <= gaps[0] < 4 and 6 <= gaps[1] < 7, gaps
    assert [aid for _, _, aid in fakes.tasks] == ["Call#1", "Call#2", "Call#3"]
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers == [3, 6]
    kinds = [(e["kind"], e["state"]) for e in fakes.events]
    assert kinds == [("entered", "Call"), ("retry", "Call"), ("retry", "Call"), ("exited", "Call")]
    assert [e["delay_seconds"] for e in fakes.events if e["kind"] == "retry"] == [3, 6]
    assert fakes.statuses == ["queued", "processing"]


async def test_a_wait_is_a_durable_timer_and_each_task_is_named_by_its_state(env):
    machine = {
        "StartAt": "Hold",
        "States": {
            "Hold": {"Type": "Wait", "Seconds": 86400, "Next": "Fetch"},
            "Fetch": task("svc", ResultPath="$.fetched", End=True),
        },
    }
    fakes = StandIns(env, machine, {"svc": [{"n": 1}]})
    ok, history = await run(env, fakes)
    assert ok and fakes.finished.output == {"order": 7, "fetched": {"n": 1}}
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers == [86400]
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    summaries = {
        e.activity_task_scheduled_event_attributes.activity_type.name: e.user_metadata.summary.data
        for e in scheduled
        if e.activity_task_scheduled_event_attributes.activity_type.name == "run_machine_task"
    }
    assert b"Fetch" in summaries["run_machine_task"]


async def test_timeout_and_heartbeat_timeout_are_caught_by_name(env):
    machine = {
        "StartAt": "Slow",
        "States": {
            "Slow": task(
                "slow",
                TimeoutSeconds=5,
                Catch=[{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.slow", "Next": "Quiet"}],
                Next="Quiet",
            ),
            "Quiet": task(
                "quiet",
                HeartbeatSeconds=3,
                TimeoutSeconds=60,
                Catch=[{"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.quiet", "Next": "Done"}],
                Next="Done",
            ),
            "Done": {"Type": "Succeed"},
        },
    }
    fakes = StandIns(env, machine, {"slow": [30.0], "quiet": [30.0]})
    ok, _ = await run(env, fakes)
    assert ok
    out = fakes.finished.output
    assert out["slow"]["Error"] == "States.Timeout"
    assert out["quiet"]["Error"] == "States.HeartbeatTimeout"
    caught = [(e["state"], e["error"]) for e in fakes.events if e["kind"] == "caught"]
    assert caught == [("Slow", "States.Timeout"), ("Quiet", "States.HeartbeatTimeout")]


async def test_a_failing_branch_cancels_its_sibling_and_the_machine_fails_with_its_error(env):
    machine = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Long", "States": {"Long": task("long-heartbeating", End=True)}},
                    {"StartAt": "Bad", "States": {"Bad": task("bad", End=True)}},
                ],
                "End": True,
            }
        },
    }
    # The long Task heartbeats, so it hears of the cancel; the bad one fails once the long one runs.
    fakes = StandIns(
        env, machine, {"long-heartbeating": [600.0], "bad": [2.0, failure("Broken", "the service said no")]}
    )
    ok, _ = await run(env, fakes)
    assert not ok
    assert fakes.finished is not None and fakes.finished.status == "failed"
    assert fakes.finished.error == "Broken" and fakes.finished.cause == "the service said no"
    assert fakes.cancelled == ["Both/0/Long"]


async def test_a_state_entered_again_is_a_new_visit(env):
    # A loop through a Choice calls the same Task twice: each call carries its own path, so its
    # deliveries and usage rows are its own.
    machine = {
        "StartAt": "Poll",
        "States": {
            "Poll": task("svc", ResultPath="$.poll", Next="Ready?"),
            "Ready?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.poll.ready", "BooleanEquals": True, "Next": "Done"}],
                "Default": "Poll",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    fakes = StandIns(env, machine, {"svc": [{"ready": False}, {"ready": True}]})
    ok, _ = await run(env, fakes)
    assert ok
    assert [t.path for t, _, _ in fakes.tasks] == ["Poll", "Poll@2"]
    assert len({aid for _, _, aid in fakes.tasks}) == 2
