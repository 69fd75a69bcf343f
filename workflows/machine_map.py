"""MapBatchWorkflow: one child of a distributed Map. It runs the Map's ItemProcessor, with the
same interpreter as StateMachineWorkflow, over the processor inputs of its pages (read by page
number from the store, each page's results written back), `concurrency` inputs at a time; each
input is a child execution in Step Functions' terms, and its Tasks are `run_machine_task`
activities as any Task's. Before its history grows long it continues as new at the next page,
carrying only its counts, so a child over many items stays far under Temporal's limits."""

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    # The ASL libraries import these lazily, which the sandbox cannot do (as in state_machine.py).
    import jsonata  # noqa: F401
    import jsonata.functions  # noqa: F401
    import jsonata.jsonata  # noqa: F401
    import jsonpath_ng._ply_tables.ext_lexer_table  # noqa: F401
    import jsonpath_ng._ply_tables.ext_parser_table  # noqa: F401
    import jsonpath_ng.ext.parser  # noqa: F401

    from activities.machine_items import MachineItemActivities, MapPageInput, MapResultsInput
    from activities.machine_tasks import MachineTaskActivities, MachineTaskInput
    from lodestone.asl.functions import Sources
    from lodestone.asl.machine import Event, TaskCall, run
    from workflows.budget_pause import BUDGET_SIGNAL, BudgetPause, activity_ids
    from workflows.machine_map_run import MAP_BATCH, MapBatchInput, MapBatchResult
    from workflows.policies import (
        DB_RETRY,
        DB_TIMEOUT,
        MACHINE_TASK_HEARTBEAT,
        MACHINE_TASK_RETRY,
        MACHINE_TASK_TIMEOUT,
        set_job_status,
    )
    from workflows.state_machine import _activity_id, _as_asl_error


class _ItemRuntime:
    """The interpreter's runtime in a child: Tasks as activities, waits as timers; the path of a
    child execution's states is not recorded (the Map's own entry and exit are, in the job's)."""

    def __init__(self, inp: MapBatchInput, unit: int, budget: BudgetPause) -> None:
        self.inp, self.unit, self.budget = inp, unit, budget
        rng = workflow.random()
        self.sources = Sources(
            random=rng.random,
            uuid=lambda: str(workflow.uuid4()),
            now_millis=lambda: int(workflow.now().timestamp() * 1000),
        )

    def now(self) -> datetime:
        return workflow.now()

    def record(self, event: Event) -> None:
        return None

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await workflow.sleep(seconds)

    async def run_task(self, call: TaskCall) -> Any:
        inp = self.inp
        path = f"{inp.path}{self.unit}/{call.path}"
        timeout = timedelta(seconds=call.timeout_seconds) if call.timeout_seconds else None
        heartbeat = call.heartbeat_seconds
        ids = activity_ids(path)

        def attempt() -> Any:
            return workflow.execute_activity_method(
                MachineTaskActivities.run_task,
                MachineTaskInput(
                    inp.run.tenant_id,
                    inp.run.job_id,
                    path,
                    call.resource,
                    call.payload,
                    inp.bindings,
                    call.attempt,
                    call.timeout_seconds,
                    None,
                ),
                activity_id=_activity_id(ids(), call.attempt),
                summary=call.state,
                start_to_close_timeout=timeout or MACHINE_TASK_TIMEOUT,
                schedule_to_close_timeout=timeout,
                heartbeat_timeout=timedelta(seconds=heartbeat) if heartbeat else MACHINE_TASK_HEARTBEAT,
                retry_policy=MACHINE_TASK_RETRY if not heartbeat else replace(MACHINE_TASK_RETRY, maximum_attempts=1),
            )

        # A spent budget pauses the item (the job row says paused_budget; it re-checks on its timer).
        try:
            return await self.budget.run(attempt, partial(set_job_status, inp.run.tenant_id, inp.run.job_id))
        except ActivityError as err:
            raise _as_asl_error(err, asked_heartbeat=heartbeat is not None) from err


@workflow.defn(name=MAP_BATCH)
class MapBatchWorkflow:
    def __init__(self) -> None:
        self._budget = BudgetPause()

    @workflow.signal(name=BUDGET_SIGNAL)
    def budget_changed(self) -> None:
        self._budget.changed()

    @workflow.run
    async def run(self, inp: MapBatchInput) -> MapBatchResult:
        page = inp.first_page
        while page < inp.end_page:
            units = await workflow.execute_activity_method(
                MachineItemActivities.read_map_page,
                MapPageInput(inp.run, page),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
            results = await self._run_page(inp, page, units)
            await workflow.execute_activity_method(
                MachineItemActivities.write_map_results,
                MapResultsInput(inp.run, page, results),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
            for (count, _), result in zip(units, results, strict=True):
                if result["Status"] == "SUCCEEDED":
                    inp.succeeded += count
                else:
                    inp.failed += count
                    if inp.error is None:
                        inp.error, inp.cause = result["Error"], result["Cause"]
            page += 1
            info = workflow.info()
            if page < inp.end_page and (
                info.is_continue_as_new_suggested() or info.get_current_history_length() > inp.history_events_max
            ):
                workflow.continue_as_new(replace(inp, first_page=page, runs=inp.runs + 1))
        return MapBatchResult(inp.succeeded, inp.failed, inp.error, inp.cause, inp.runs)

    async def _run_page(self, inp: MapBatchInput, page: int, units: list[list[Any]]) -> list[dict[str, Any]]:
        gate = asyncio.Semaphore(max(1, inp.concurrency))

        async def one(i: int, value: Any) -> dict[str, Any]:
            async with gate:
                runtime = _ItemRuntime(inp, page * inp.page_units + i, self._budget)
                outcome = await run(inp.processor, value, runtime, inp.context)
            if outcome.status == "SUCCEEDED":
                return {"Status": "SUCCEEDED", "Output": outcome.output}
            return {"Status": "FAILED", "Error": outcome.error, "Cause": outcome.cause}

        return list(await asyncio.gather(*(one(i, value) for i, (_, value) in enumerate(units))))
