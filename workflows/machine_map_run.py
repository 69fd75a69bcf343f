"""A distributed Map's run, in its job's StateMachineWorkflow: `prepare_map_items` stores the
processor inputs in pages, MapBatchWorkflow children run them (each over a range of pages; at
most MaxConcurrency children at once, or MAX_CHILDREN, each running its share of MaxConcurrency
inputs at a time), the failed items are counted against ToleratedFailureCount/Percentage as the
children end (past it, the children still running are cancelled and the Map fails with
States.ExceedToleratedFailureThreshold), and `finish_map` answers the result. The parent's
history holds a few events per child, whatever the number of items."""

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.machine_items import (
        HISTORY_EVENTS_MAX,
        PAGE_UNITS,
        FinishMapInput,
        MachineItemActivities,
        MapRunRef,
        PrepareMapInput,
    )
    from lodestone.asl.errors import ASLError
    from lodestone.asl.machine_distributed import DistributedMap
    from lodestone.asl.machine_distributed_items import exceeded
    from workflows.policies import DB_RETRY, DB_TIMEOUT

MAX_CHILDREN = 8  # children at once when MaxConcurrency does not say fewer
PAGES_PER_CHILD = 10  # at most; fewer so that small runs still spread over the children
UNIT_CONCURRENCY = 10  # inputs a child runs at once when MaxConcurrency is 0 (no limit)


MAP_BATCH = "MapBatchWorkflow"


@dataclass
class MapBatchInput:
    run: MapRunRef
    path: str  # the Map's attempt prefix ("Each/"): a Task's path is "<path><unit>/<state>"
    processor: dict[str, Any]
    context: dict[str, Any]
    bindings: list[dict[str, Any]]
    first_page: int
    end_page: int  # pages [first_page, end_page)
    concurrency: int
    page_units: int = PAGE_UNITS  # a unit's number is page * page_units + its place in the page
    history_events_max: int = HISTORY_EVENTS_MAX  # continue as new past this, at the next page
    runs: int = 1  # this run's number: 1, then one more at each continue-as-new
    succeeded: int = 0  # items so far, carried across continue-as-new
    failed: int = 0
    error: str | None = None  # the first failure's
    cause: str | None = None


@dataclass
class MapBatchResult:
    succeeded: int  # items
    failed: int
    error: str | None = None
    cause: str | None = None
    runs: int = 1  # the child's runs: one more per continue-as-new


def _asl(err: ActivityError) -> BaseException:
    cause = err.cause
    if isinstance(cause, ApplicationError) and (cause.type or "").startswith("States."):
        return ASLError(cause.type or "", cause.message)
    return err  # the runtime's own failure


async def run_distributed_map(tenant_id: str, job_id: str, bindings: list[dict[str, Any]], spec: DistributedMap) -> Any:
    ref = MapRunRef(tenant_id, job_id, str(workflow.uuid4()))
    arn = f"{spec.context.get('Execution', {}).get('Id', job_id)}/{spec.state}:{ref.run_id}"
    try:
        prepared = await workflow.execute_activity_method(
            MachineItemActivities.prepare_map_items,
            PrepareMapInput(ref, spec),
            start_to_close_timeout=DB_TIMEOUT * 10,
            retry_policy=DB_RETRY,
        )
    except ActivityError as err:
        raise _asl(err) from err
    limit = spec.max_concurrency
    running = max(1, min(limit or MAX_CHILDREN, MAX_CHILDREN, prepared.pages or 1))
    per_child = max(1, limit // running) if limit else UNIT_CONCURRENCY
    size = max(1, min(PAGES_PER_CHILD, math.ceil(prepared.pages / running)))
    ranges = [(first, min(first + size, prepared.pages)) for first in range(0, prepared.pages, size)]
    gate = asyncio.Semaphore(running)
    failed = 0

    async def child(number: int, first: int, end: int) -> None:
        nonlocal failed
        async with gate:
            result: MapBatchResult = await workflow.execute_child_workflow(
                MAP_BATCH,
                MapBatchInput(
                    ref,
                    spec.path,
                    spec.processor,
                    spec.context,
                    bindings,
                    first,
                    end,
                    per_child,
                    page_units=prepared.page_units,
                    history_events_max=prepared.history_events_max,
                ),
                id=f"{job_id}:map:{ref.run_id}:{number}",
                result_type=MapBatchResult,
            )
        failed += result.failed
        too_many = exceeded(spec.tolerance or {}, failed, prepared.items)
        if too_many is not None:
            raise ASLError(too_many.error, f"{too_many.cause}; the first: {result.error}: {result.cause or ''}")

    tasks = [asyncio.ensure_future(child(n, first, end)) for n, (first, end) in enumerate(ranges)]
    try:
        await asyncio.gather(*tasks)
    except BaseException as err:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if isinstance(err, ChildWorkflowError):
            raise ASLError("States.Runtime", f"a Map Run child failed: {err.cause or err}") from err
        raise
    try:
        return await workflow.execute_activity_method(
            MachineItemActivities.finish_map,
            FinishMapInput(ref, prepared.pages, arn, spec.writer),
            start_to_close_timeout=DB_TIMEOUT * 10,
            retry_policy=DB_RETRY,
        )
    except ActivityError as err:
        raise _asl(err) from err
