"""Task states, and the Retry/Catch handling that Task, Parallel and Map share: each attempt
is run again while a Retrier allows (the delay is a runtime timer), then the first matching
Catcher routes the failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from . import dataflow, errors, jsonata, paths
from . import jsonata_dataflow as jdf
from .errors import ASLError
from .machine_exec import StateRun, Step, cancelling
from .machine_states import assign_jsonata, assign_jsonpath, data_scope, filtered_input, path_scope
from .machine_types import RuntimeEscape, TaskCall
from .payload import evaluate_payload

CALLBACK_SUFFIX = ".waitForTaskToken"

Attempt = Callable[[int], Awaitable[Any]]


async def with_retry(run: StateRun, attempt: Attempt) -> Any:
    """Run ``attempt(1)``, then ``attempt(2)``, ... while the state's Retriers allow."""
    retriers = run.state.get("Retry")
    made: dict[int, int] = {}
    number = 1
    while True:
        try:
            return await attempt(number)
        except ASLError as err:
            if cancelling():
                raise asyncio.CancelledError() from err
            decision = errors.next_retry(retriers, err.error, made, run.ex.sources.random) if retriers else None
            if decision is None:
                raise
            index, delay = decision
            made[index] = made.get(index, 0) + 1
            run.event("retry", error=err.error, cause=err.cause or None, attempt=number, delay_seconds=delay)
            if delay > 0:
                await run.ex.sleep(delay)
            number += 1


async def guarded(run: StateRun, attempt: Attempt) -> Step:
    """Retry, then Catch: the output and Next of a success or of the Catcher that matched."""
    try:
        return await with_retry(run, attempt), run.state.get("Next"), False
    except ASLError as err:
        catchers = run.state.get("Catch")
        index = errors.find_catcher(catchers, err.error) if catchers else None
        if index is None:
            raise
        catcher = catchers[index]
        output = _caught_output(run, catcher, err)
        run.event("caught", output=output, error=err.error or None, cause=err.cause or None, next=catcher["Next"])
        return output, catcher["Next"], True


def _caught_output(run: StateRun, catcher: Any, err: ASLError) -> Any:
    if run.jsonpath:
        output = dataflow.catch_output(catcher, run.input, err)
        assign_jsonpath(run, catcher, path_scope(run, run.input), err.as_output())
        return output
    scope = data_scope(run, errorOutput=err.as_output())
    output = jdf.catch_output(catcher, scope)
    assign_jsonata(run, catcher, scope)
    return output


def _seconds(value: int | None) -> float | None:
    return None if value is None else float(value)


def _context(run: StateRun, retry_count: int, token: str | None) -> dict[str, Any]:
    ctx = run.context(retry_count)
    if token is not None:
        ctx["Task"] = {"Token": token}
    return ctx


async def _token(run: StateRun, number: int) -> str:
    """The attempt's task token, issued by the runtime before its Parameters are evaluated."""
    mint = getattr(run.ex.runtime, "task_token", None)
    if mint is None:
        uuid = run.ex.sources.uuid
        return uuid() if uuid is not None else f"{run.path}#{number}"
    try:
        return str(await mint(run.name, run.path, number))
    except ASLError:
        raise
    except Exception as exc:
        raise RuntimeEscape(exc) from exc


async def run_task(run: StateRun) -> Step:
    state = run.state
    callback = str(state["Resource"]).endswith(CALLBACK_SUFFIX)

    async def attempt(number: int) -> Any:
        token = await _token(run, number) if callback else None
        ctx = _context(run, number - 1, token)
        if run.jsonpath:
            scope = paths.Scope(run.input, ctx, run.frame.vars, run.ex.sources)
            value = filtered_input(run, scope)
            payload = value
            if "Parameters" in state:
                payload = evaluate_payload(state["Parameters"], scope.with_input(value), "Parameters")
            timeout, heartbeat = dataflow.task_timeouts(state, scope.with_input(value))
        else:
            jscope = jsonata.Scope(run.input, ctx, run.frame.vars, run.ex.sources)
            payload = jdf.arguments(state, jscope)
            timeout, heartbeat = jdf.task_timeouts(state, jscope)
        call = TaskCall(
            state=run.name,
            path=run.path,
            resource=state["Resource"],
            payload=payload,
            timeout_seconds=_seconds(timeout),
            heartbeat_seconds=_seconds(heartbeat),
            attempt=number,
            callback=callback,
            token=token,
        )
        result = await run.ex.run_task(call)
        if run.jsonpath:
            output = dataflow.state_output(state, run.input, result, scope)
            assign_jsonpath(run, state, scope, result)
            return output
        rscope = jsonata.Scope(run.input, ctx, run.frame.vars, run.ex.sources, result=result)
        output = jdf.output(state, rscope)
        assign_jsonata(run, state, rscope)
        return output

    return await guarded(run, attempt)
