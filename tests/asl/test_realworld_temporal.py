"""The real-world state machines (tests/asl/realworld/) run by StateMachineWorkflow on the
time-skipping test server: every run of every case ends as its case.json expects, with each
Task a `run_machine_task` activity making a real HTTP call to the scripted stand-in service,
and each run's history replays under the sandbox.

The bookkeeping activities are in-memory stand-ins; the Task activity is a stand-in that does
what the scripted runtime does (resolve the binding, call the endpoint, shape the answer), not
the worker's MachineTaskActivities. The server skips the Waits and Retry intervals, so a
case's timers are checked as the durable timers its history fired, in order.
"""

import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.jobs import JobRef, JobStatusInput
from activities.machine_jobs import MachineEventsInput, MachineFinishInput, MachinePlan
from activities.machine_tasks import MachineTaskInput
from lodestone.asl.errors import ASLError
from tests.asl.realworld.cases import at, check_run, endpoint, entered, load, runs
from tests.asl.realworld.scripted_runtime import context, perform, uuid_n
from tests.helpers import slot_granted
from workflows.state_machine import StateMachineWorkflow
from workflows.types import SubmissionInput

# Runs that fail only under the workflow (case or case:run -> reason), each a strict xfail.
TEMPORAL_DEPARTURES: dict[str, str] = {}

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass
class Job:
    """One run's bookkeeping, as the stand-ins keep it."""

    plan: MachinePlan
    statuses: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    finished: MachineFinishInput | None = None
    requests: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))


class StandIns:
    """load_machine, set_status, record_machine_events and finish_machine kept in memory per
    job, and a stand-in run_machine_task doing the scripted runtime's Task over real HTTP."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.jobs: dict[str, Job] = {}

    @activity.defn(name="load_machine")
    async def load_machine(self, ref: JobRef) -> MachinePlan:
        return self.jobs[ref.job_id].plan

    @activity.defn(name="set_status")
    async def set_status(self, inp: JobStatusInput) -> None:
        self.jobs[inp.job_id].statuses.append(inp.status)

    @activity.defn(name="record_machine_events")
    async def record_machine_events(self, inp: MachineEventsInput) -> None:
        job = self.jobs[inp.job_id]
        assert inp.first_seq == len(job.events), "events are written in order, each once"
        job.events.extend(inp.events)

    @activity.defn(name="finish_machine")
    async def finish_machine(self, inp: MachineFinishInput) -> None:
        self.jobs[inp.job_id].finished = inp

    @activity.defn(name="save_machine_checkpoint")
    async def save_machine_checkpoint(self, inp: Any) -> None:
        """A failed run's checkpoint, for a redrive (kept nowhere here)."""

    @activity.defn(name="run_machine_task")
    async def run_machine_task_stand_in(self, inp: MachineTaskInput) -> Any:
        job = self.jobs[inp.job_id]
        try:
            return await perform(
                self.client, inp.bindings, inp.resource, inp.payload, lambda: f"req-{next(job.requests)}"
            )
        except ASLError as err:
            # As the worker's Task activity fails: the ASL error name as the type, never retried.
            raise ApplicationError(err.cause, type=err.error, non_retryable=True) from None

    def all(self) -> list[Any]:
        return [
            self.load_machine,
            self.set_status,
            slot_granted,
            self.record_machine_events,
            self.finish_machine,
            self.run_machine_task_stand_in,
            self.save_machine_checkpoint,
        ]


@dataclass
class Lane:
    env: WorkflowEnvironment
    fakes: StandIns
    queue: str


@pytest.fixture(scope="module")
async def lane(env: WorkflowEnvironment) -> AsyncIterator[Lane]:
    """One Worker for every case in this module."""
    queue = f"tq-{uuid.uuid4()}"
    async with httpx.AsyncClient(timeout=10) as client:
        fakes = StandIns(client)
        async with Worker(env.client, task_queue=queue, workflows=[StateMachineWorkflow], activities=fakes.all()):
            yield Lane(env, fakes, queue)


async def _run(lane: Lane, job_id: str) -> WorkflowHistory:
    handle = await lane.env.client.start_workflow(
        StateMachineWorkflow.run, SubmissionInput("t-1", job_id), id=f"wf-{job_id}", task_queue=lane.queue
    )
    try:
        await handle.result()
    except WorkflowFailureError as failure:
        finished = lane.fakes.jobs[job_id].finished
        assert finished is not None and finished.status == "failed", failure
        # A Fail state with no Error fails the workflow as States.TaskFailed.
        assert isinstance(failure.cause, ApplicationError)
        assert failure.cause.type == (finished.error or "States.TaskFailed")
    return await handle.fetch_history()


def fired_timers(history: WorkflowHistory) -> list[float]:
    """The durations of the durable timers that fired, in the order they fired."""
    started = {
        e.event_id: e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    }
    return [
        started[e.timer_fired_event_attributes.started_event_id]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    ]


def uuid_renamer(seen: Any, known: str) -> Callable[[Any], Any]:
    """The workflow's States.UUID() values are its own deterministic UUIDs, not the scripted
    runtime's counted ones: each v4 UUID the run made (found in ``seen``, its path and requests,
    in order of first appearance; not one the case itself holds) is renamed to the counted one
    it stands for."""
    made: dict[str, str] = {}
    for value in UUID4.findall(json.dumps(seen)):
        if value not in known and value not in made:
            made[value] = uuid_n(len(made) + 1)

    def rename(value: Any) -> Any:
        text = json.dumps(value)
        for mine, theirs in made.items():
            text = text.replace(mine, theirs)
        return json.loads(text)

    return rename


@pytest.mark.parametrize(("name", "input", "script", "expected"), runs(TEMPORAL_DEPARTURES))
async def test_workflow_runs_the_machine_to_its_expected_end(
    lane: Lane, name: str, input: Any, script: Any, expected: Any
) -> None:
    text, case = load(name)
    job_id = f"job-{uuid.uuid4()}"
    with endpoint(script) as service:
        definition = at(text, service.url)
        bindings = at(json.dumps(case["bindings"]), service.url)
        job = Job(MachinePlan(definition, bindings, input, context(name, input), 1 << 20))
        lane.fakes.jobs[job_id] = job
        history = await _run(lane, job_id)

    assert job.finished is not None
    assert job.statuses == ["queued", "processing"]
    check_run(
        expected,
        service,
        states=entered((e["kind"], e["state"], e["path"]) for e in job.events),
        status=job.finished.status.upper(),
        error=job.finished.error,
        cause=job.finished.cause,
        output=job.finished.output,
        rename=uuid_renamer([job.events, [c.body for c in service.calls]], json.dumps(case)),
    )
    if "sleeps" in expected:
        # Virtual time in the scripted runtime; here each Wait and Retry interval is a timer.
        assert fired_timers(history) == expected["sleeps"]
    await Replayer(workflows=[StateMachineWorkflow]).replay_workflow(history)
