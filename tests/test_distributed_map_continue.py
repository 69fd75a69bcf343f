"""The distributed Map's children continuing as new, on the time-skipping test server: the
map's item activities and its Task stand in memory, with pages of two inputs and a history
limit of one event, so each child continues as new after every page but its last. The
results are complete and in order, each item runs once, failed items are counted across a
child's runs, a child that has continued as new is cancelled when the threshold trips, and
every run's history replays."""

import asyncio
import uuid
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.machine_items import FinishMapInput, MapPageInput, MapResultsInput, PreparedMap, PrepareMapInput
from activities.machine_tasks import MachineTaskInput
from lodestone.asl.machine_distributed_items import batches, item_inputs
from tests.test_state_machine_workflow import StandIns
from workflows.machine_map import MapBatchWorkflow
from workflows.state_machine import StateMachineWorkflow
from workflows.types import SubmissionInput

PAGE_UNITS = 2
HISTORY_EVENTS_MAX = 1  # past the first page's events: continue as new at every page boundary


class MapStandIns(StandIns):
    """StandIns with the distributed Map's item activities kept in memory (pages of
    PAGE_UNITS inputs) and a Task that doubles `n`: it fails for the `bad` items, and for the
    `blocking` ones waits, heartbeating, until it is cancelled."""

    def __init__(self, env: WorkflowEnvironment, machine: dict[str, Any], items: list[Any]) -> None:
        super().__init__(env, machine, {})
        self.items = items
        self.bad: set[int] = set()
        self.blocking: set[int] = set()
        self.after_blocking: set[int] = set()  # wait for a blocking item to start first
        self.blocked = asyncio.Event()
        self.pages: list[list[list[Any]]] = []
        self.reads: list[int] = []
        self.results: dict[int, list[dict[str, Any]]] = {}
        self.calls: list[MachineTaskInput] = []

    @activity.defn(name="prepare_map_items")
    async def prepare_map_items(self, inp: PrepareMapInput) -> PreparedMap:
        spec = inp.spec
        inputs = item_inputs(spec.selector, spec.effective, self.items, spec.context, spec.variables)
        units = batches(inputs, spec.batcher)
        self.pages = [[[c, v] for c, v in units[i : i + PAGE_UNITS]] for i in range(0, len(units), PAGE_UNITS)]
        return PreparedMap(len(self.items), len(units), len(self.pages), PAGE_UNITS, HISTORY_EVENTS_MAX)

    @activity.defn(name="read_map_page")
    async def read_map_page(self, inp: MapPageInput) -> list[list[Any]]:
        self.reads.append(inp.page)
        return self.pages[inp.page]

    @activity.defn(name="write_map_results")
    async def write_map_results(self, inp: MapResultsInput) -> None:
        assert inp.page not in self.results, f"page {inp.page} written twice"
        self.results[inp.page] = inp.results

    @activity.defn(name="finish_map")
    async def finish_map(self, inp: FinishMapInput) -> Any:
        rows = [r for page in range(inp.pages) for r in self.results[page]]
        return [r["Output"] if r["Status"] == "SUCCEEDED" else {"Error": r["Error"], "Cause": r["Cause"]} for r in rows]

    @activity.defn(name="run_machine_task")
    async def run_task(self, inp: MachineTaskInput) -> Any:
        self.calls.append(inp)
        n = inp.payload["n"]
        if n in self.after_blocking:
            await self.blocked.wait()
        if n in self.blocking:
            self.blocked.set()
            try:
                for _ in range(100):
                    await asyncio.sleep(0.1)
                    activity.heartbeat()
            except asyncio.CancelledError:
                self.cancelled.append(inp.path)
                raise
        if n in self.bad:
            raise ApplicationError(f"item {n}", type="BadItem", non_retryable=True)
        return {"n": n, "double": 2 * n}

    def all(self) -> list:
        return [*super().all(), self.prepare_map_items, self.read_map_page, self.write_map_results, self.finish_map]


def machine(concurrency: int, tolerated: int = 0) -> dict[str, Any]:
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": "lodestone", "Key": "numbers"},
    }
    double = {"Type": "Task", "Resource": "double", "End": True}
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "Double", "States": {"Double": double}}
    each = {
        "Type": "Map",
        "ItemReader": reader,
        "ItemSelector": {"n.$": "$$.Map.Item.Value.n", "index.$": "$$.Map.Item.Index"},
        "ItemProcessor": processor,
        "MaxConcurrency": concurrency,
        "ToleratedFailureCount": tolerated,
        "End": True,
    }
    return {"StartAt": "Each", "States": {"Each": each}}


async def child_runs(client: Client, workflow_id: str, run_id: str) -> list[Any]:
    """Each run's history of a child, following its continue-as-new chain."""
    runs = []
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return runs
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


async def run(env: WorkflowEnvironment, fakes: MapStandIns) -> tuple[bool, dict[str, list[Any]]]:
    """Runs the job; answers whether it succeeded, and its histories: the parent's (one run)
    and each child's runs, by workflow id, every one of them replayed."""
    queue = f"tq-{uuid.uuid4()}"
    workflows = [StateMachineWorkflow, MapBatchWorkflow]
    async with Worker(env.client, task_queue=queue, workflows=workflows, activities=fakes.all()):
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
        parent = await handle.fetch_history()
        histories = {"parent": [parent]}
        for e in parent.events:
            if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                child = e.child_workflow_execution_started_event_attributes.workflow_execution
                histories[child.workflow_id] = await child_runs(env.client, child.workflow_id, child.run_id)
    replayer = Replayer(workflows=workflows)
    for runs in histories.values():
        for history in runs:
            await replayer.replay_workflow(history)
    return ok, histories


def children(histories: dict[str, list[Any]]) -> list[str]:
    """The children's workflow ids in their order (`<job>:map:<run>:<number>`)."""
    return sorted((name for name in histories if name != "parent"), key=lambda name: int(name.rsplit(":", 1)[1]))


def run_counts(histories: dict[str, list[Any]]) -> list[int]:
    return [len(histories[name]) for name in children(histories)]


async def test_children_continue_as_new_at_each_page_and_the_results_are_complete_in_order(env):
    items = [{"n": i} for i in range(14)]  # 7 pages of 2; MaxConcurrency 2: two children of 4 and 3 pages
    fakes = MapStandIns(env, machine(concurrency=2), items)
    ok, histories = await run(env, fakes)
    assert ok, fakes.finished
    assert fakes.finished is not None and fakes.finished.status == "succeeded"
    assert fakes.finished.output == [{"n": i, "double": 2 * i} for i in range(14)]
    # one run per page: continued as new after every page but each child's last
    assert run_counts(histories) == [4, 3]
    # every item ran once, as the unit of its own index; every page was read and written once
    assert sorted(c.payload["n"] for c in fakes.calls) == list(range(14))
    assert all(c.path == f"Each/{c.payload['index']}/Double" for c in fakes.calls), [c.path for c in fakes.calls]
    assert sorted(fakes.reads) == list(range(7)) and sorted(fakes.results) == list(range(7))


async def test_failed_items_are_counted_across_a_childs_runs(env):
    items = [{"n": i} for i in range(6)]  # 3 pages of 2, one child (MaxConcurrency 1), 3 runs
    fakes = MapStandIns(env, machine(concurrency=1, tolerated=1), items)
    fakes.bad = {0, 5}  # one in the first run, one in the last
    ok, histories = await run(env, fakes)
    assert run_counts(histories) == [3]
    assert not ok and fakes.finished is not None
    assert fakes.finished.error == "States.ExceedToleratedFailureThreshold"
    assert "2 of 6 items failed" in (fakes.finished.cause or "")

    fakes = MapStandIns(env, machine(concurrency=1, tolerated=2), items)
    fakes.bad = {0, 5}
    ok, histories = await run(env, fakes)
    assert ok and fakes.finished is not None, fakes.finished
    assert run_counts(histories) == [3]
    output = fakes.finished.output
    assert [o.get("Error") for o in output] == ["BadItem", None, None, None, None, "BadItem"]
    assert sorted(c.payload["n"] for c in fakes.calls) == list(range(6))


async def test_a_child_that_has_continued_as_new_is_cancelled_when_the_threshold_trips(env):
    items = [{"n": i} for i in range(8)]  # 4 pages of 2; MaxConcurrency 2: two children of 2 pages
    fakes = MapStandIns(env, machine(concurrency=2, tolerated=1), items)
    fakes.bad = {0, 1}  # the first child's first page: two failed, one tolerated
    fakes.blocking = {7}  # the second child's last page, in its second run
    fakes.after_blocking = {2}  # the first child ends only once the second has continued as new
    ok, histories = await run(env, fakes)
    assert not ok and fakes.finished is not None
    assert fakes.finished.error == "States.ExceedToleratedFailureThreshold"
    assert run_counts(histories) == [2, 2]
    described = await env.client.get_workflow_handle(children(histories)[1]).describe()
    assert described.raw_description.workflow_execution_info.status == (
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
    )
    # its last page's blocked Task was cancelled with it, and that page's results never written
    assert fakes.cancelled == ["Each/7/Double"]
    assert 3 not in fakes.results
