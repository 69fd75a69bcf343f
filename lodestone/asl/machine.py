"""The state-machine interpreter: runs a validated ASL definition to its outcome.

Pure and deterministic, asyncio only, so it can run inside a Temporal workflow: Task calls,
timers, the clock, random numbers, UUIDs and the path recorder all come through the Runtime.
Pass, Choice, Wait, Succeed, Fail and every data-flow step are evaluated here, in-process;
only a Task's work leaves (``runtime.run_task``), once per attempt.

- machine_exec: the state loop, variable scopes, the context object;
- machine_states: Pass, Choice, Wait, Succeed, Fail;
- machine_task: Task, and the Retry/Catch handling Task, Parallel and Map share;
- machine_fanout: Parallel and inline Map.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from . import machine_fanout, machine_states, machine_task
from .errors import TIMEOUT, ASLError
from .machine_exec import Execution, Executor, Frame, run_states
from .machine_types import Event, Outcome, Runtime, RuntimeEscape, TaskCall

__all__ = ["Event", "Outcome", "Runtime", "TaskCall", "run"]

_EXECUTORS: dict[str, Executor] = {
    "Pass": machine_states.run_pass,
    "Choice": machine_states.run_choice,
    "Wait": machine_states.run_wait,
    "Succeed": machine_states.run_succeed,
    "Fail": machine_states.run_fail,
    "Task": machine_task.run_task,
    "Parallel": machine_fanout.run_parallel,
    "Map": machine_fanout.run_map,
}
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"


async def _outcome(definition: Mapping[str, Any], input: Any, ex: Execution) -> Outcome:
    frame = Frame("", {}, definition.get("QueryLanguage", "JSONPath"))
    try:
        output = await run_states(definition, input, frame, ex)
    except ASLError as err:
        return Outcome(FAILED, error=err.error or None, cause=err.cause or None)
    return Outcome(SUCCEEDED, output=output)


async def run(definition: Mapping[str, Any], input: Any, runtime: Runtime, context: Mapping[str, Any]) -> Outcome:
    """Run the machine on ``input``. A machine failure is an Outcome with status FAILED (the
    error name and cause); only a failure of the runtime itself raises."""
    ex = Execution(runtime, context, _EXECUTORS)
    try:
        timeout = definition.get("TimeoutSeconds")
        if not timeout:
            return await _outcome(definition, input, ex)
        return await _within(definition, input, ex, float(timeout))
    except RuntimeEscape as escape:
        raise escape.original from None


async def _within(definition: Mapping[str, Any], input: Any, ex: Execution, timeout: float) -> Outcome:
    """The machine's TimeoutSeconds: a timer races the run; when it fires first, whatever is
    still running is cancelled and the execution fails with States.Timeout."""
    main = asyncio.ensure_future(_outcome(definition, input, ex))
    timer = asyncio.ensure_future(ex.sleep(timeout))
    try:
        await asyncio.wait({main, timer}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        main.cancel()
        timer.cancel()
        raise
    if main.done():
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)
        return main.result()
    main.cancel()
    await asyncio.gather(main, return_exceptions=True)
    timer.result()  # a runtime failure of the timer itself is raised, not mistaken for a timeout
    return Outcome(FAILED, error=TIMEOUT, cause=f"The execution exceeded its TimeoutSeconds ({timeout:g} s)")
