"""Parallel and inline Map: sub-machines run concurrently (Map up to MaxConcurrency at once),
results in order. A failure cancels the siblings still running and fails the state with that
error; a Map with ToleratedFailureCount/Percentage keeps going until the failures exceed the
tolerance (then States.ExceedToleratedFailureThreshold), a tolerated failure's result being
its error output."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from . import dataflow, errors, machine_distributed, paths
from . import jsonata_dataflow as jdf
from .errors import ASLError
from .jsonvalues import is_number
from .machine_exec import Frame, StateRun, Step, run_states
from .machine_states import assign_jsonata, assign_jsonpath, data_scope, filtered_input, path_scope
from .machine_task import guarded
from .payload import evaluate_payload

Job = Callable[[], Awaitable[Any]]
_TOLERANCE = ("ToleratedFailureCount", "ToleratedFailurePercentage")


def _child_prefix(run: StateRun, number: int) -> str:
    # a retried Parallel/Map runs its sub-machines again: their paths name the attempt
    return f"{run.path}/" if number == 1 else f"{run.path}#{number}/"


def _sub(run: StateRun, machine: Mapping[str, Any], value: Any, prefix: str, item: Any = None) -> Job:
    """A branch or iteration: its own scope; a Map iteration's states see ``$$.Map.Item``, a
    Parallel branch's the enclosing iteration's, if any."""
    language = machine.get("QueryLanguage", run.language)
    frame = Frame(prefix, run.frame.vars, language, run.frame.item if item is None else item)
    return lambda: run_states(machine, value, frame, run.ex)


async def _gather(jobs: list[Job], limit: int, tolerance: Mapping[str, Any] | None) -> list[Any]:
    results: list[Any] = [None] * len(jobs)
    gate = asyncio.Semaphore(limit) if limit > 0 else None
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        try:
            if gate is None:
                results[i] = await jobs[i]()
            else:
                async with gate:
                    results[i] = await jobs[i]()
        except ASLError as err:
            if tolerance is None:
                raise
            failed += 1
            if dataflow.exceeds_tolerance(tolerance, failed, len(jobs)):
                raise ASLError(
                    errors.EXCEED_TOLERATED_FAILURE_THRESHOLD,
                    f"The Map state failed: {failed} of {len(jobs)} iterations failed, more than it tolerates",
                ) from err
            results[i] = err.as_output()

    tasks = [asyncio.ensure_future(one(i)) for i in range(len(jobs))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return results


def _finish(run: StateRun, number: int, results: list[Any], scope: paths.Scope | None) -> Any:
    state = run.state
    if scope is not None:
        output = dataflow.state_output(state, run.input, results, scope)
        assign_jsonpath(run, state, scope, results)
        return output
    rscope = data_scope(run, number - 1, result=results)
    output = jdf.output(state, rscope)
    assign_jsonata(run, state, rscope)
    return output


async def run_parallel(run: StateRun) -> Step:
    state = run.state

    async def attempt(number: int) -> Any:
        scope = None
        if run.jsonpath:
            scope = path_scope(run, run.input, number - 1)
            value = filtered_input(run, scope)
            if "Parameters" in state:
                value = evaluate_payload(state["Parameters"], scope.with_input(value), "Parameters")
        else:
            value = jdf.arguments(state, data_scope(run, number - 1))
        prefix = _child_prefix(run, number)
        jobs = [_sub(run, branch, value, f"{prefix}{i}/") for i, branch in enumerate(state["Branches"])]
        return _finish(run, number, await _gather(jobs, 0, None), scope)

    return await guarded(run, attempt)


def _path_limit(state: Mapping[str, Any], field: str, scope: paths.Scope) -> Any:
    path = state[f"{field}Path"]
    value = paths.get(path, scope, f"{field}Path")
    ok = is_number(value) and value >= 0
    if field == "ToleratedFailurePercentage":
        ok = ok and value <= 100
    else:
        ok = ok and (isinstance(value, int) or float(value).is_integer())
    if not ok:
        raise ASLError(errors.RUNTIME, f"The {field}Path field refers to an invalid value: {path} == {value}")
    return value


def _jsonpath_limits(state: Mapping[str, Any], scope: paths.Scope) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    for field in ("MaxConcurrency", *_TOLERANCE):
        if field in state:
            limits[field] = state[field]
        elif f"{field}Path" in state:
            limits[field] = _path_limit(state, field, scope)
    return limits


async def run_map(run: StateRun) -> Step:
    state = run.state
    if machine_distributed.is_distributed(state):
        return await _run_distributed_map(run)
    processor = state["ItemProcessor"] if "ItemProcessor" in state else state["Iterator"]
    selects = "ItemSelector" in state or "Parameters" in state

    async def attempt(number: int) -> Any:
        scope = None
        if run.jsonpath:
            scope = path_scope(run, run.input, number - 1)
            value = filtered_input(run, scope)
            items = dataflow.map_items(state, value, scope)
            limits = _jsonpath_limits(state, scope.with_input(value))
            inputs = [
                dataflow.map_item_input(state, value, i, item, scope) if selects else item
                for i, item in enumerate(items)
            ]
        else:
            jscope = data_scope(run, number - 1)
            items = jdf.map_items(state, jscope)
            limits = jdf.map_limits(state, jscope)
            inputs = [jdf.map_item_input(state, jscope, i, item) if selects else item for i, item in enumerate(items)]
        prefix = _child_prefix(run, number)
        jobs = [
            _sub(run, processor, item_input, f"{prefix}{i}/", {"Index": i, "Value": items[i]})
            for i, item_input in enumerate(inputs)
        ]
        tolerance = {k: limits[k] for k in _TOLERANCE if k in limits} or None
        results = await _gather(jobs, int(limits.get("MaxConcurrency", 0)), tolerance)
        return _finish(run, number, results, scope)

    return await guarded(run, attempt)


async def _run_distributed_map(run: StateRun) -> Step:
    """ItemReader, ItemBatcher or ResultWriter: the runtime runs the items in child executions."""
    state = run.state
    if not run.jsonpath:
        raise ASLError(errors.RUNTIME, "the distributed Map runs in JSONPath only, not yet in JSONata")

    async def attempt(number: int) -> Any:
        scope = path_scope(run, run.input, number - 1)
        value = filtered_input(run, scope)
        items = None if "ItemReader" in state else dataflow.map_items(state, value, scope)
        limits = _jsonpath_limits(state, scope.with_input(value))
        spec = machine_distributed.spec(run, _child_prefix(run, number), value, scope, limits, items)
        return _finish(run, number, await machine_distributed.run_distributed(run, spec), scope)

    return await guarded(run, attempt)
