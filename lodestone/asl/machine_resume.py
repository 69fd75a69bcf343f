"""Redrive from the failed state (Step Functions' RedriveExecution): a run that resumes a
failed one. The run records a Checkpoint as it goes (each Task's result by its path, each Wait
that ended); a new run given the failed run's checkpoint walks the machine from StartAt again
with the same data flow, but a Task whose path succeeded before returns its recorded result at
once (no request, no retry) and a Wait that ended before does not wait again. So the states that
succeeded, and the Map items and Parallel branches that succeeded, are not run again; the run
does its first real work at the state that failed, with the input and variables it had then.

Pass, Choice and the rest of the data flow are evaluated again: they are pure, so they give the
same values, except where a machine reads the clock, random numbers or UUIDs (new in each run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .machine import run
from .machine_types import Event, Outcome, Runtime, TaskCall

__all__ = ["Checkpoint", "ResumingRuntime", "resume"]


@dataclass
class Checkpoint:
    results: dict[str, Any] = field(default_factory=dict)  # a Task's path -> its result
    waited: list[str] = field(default_factory=list)  # the paths of the Waits that ended

    def as_json(self) -> dict[str, Any]:
        return {"results": dict(self.results), "waited": list(self.waited)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Checkpoint:
        data = data or {}
        return cls(dict(data.get("results") or {}), list(data.get("waited") or []))


class ResumingRuntime:
    """A runtime around another: serves the Tasks and Waits ``done`` holds from it, and records
    into ``into`` every Task that succeeds and every Wait that ends, served ones included (so a
    run redriven again resumes where the latest failed)."""

    def __init__(self, inner: Runtime, done: Checkpoint, into: Checkpoint) -> None:
        self.inner, self.done, self.into = inner, done, into
        self.sources = inner.sources
        self._waited = set(done.waited)
        self._last: Event | None = None  # the event recorded just before a sleep tells whose it is
        self.served = 0  # Tasks answered from the checkpoint

    def __getattr__(self, name: str) -> Any:
        """What else the inner runtime offers (the distributed Map), as it offers it: a
        distributed Map is run again whole on a redrive."""
        return getattr(self.inner, name)

    def now(self) -> datetime:
        return self.inner.now()

    def record(self, event: Event) -> None:
        self._last = event
        if event.kind == "exited" and event.type == "Wait" and event.path not in self.into.waited:
            self.into.waited.append(event.path)
        self.inner.record(event)

    async def sleep(self, seconds: float) -> None:
        # A Wait state's timer starts right after its "entered" event (no await in between).
        last = self._last
        if last is not None and last.kind == "entered" and last.type == "Wait" and last.path in self._waited:
            return
        await self.inner.sleep(seconds)

    async def task_token(self, state: str, path: str, attempt: int) -> str:
        if path in self.done.results:
            return f"redriven:{path}"  # the Task is served from the checkpoint: no token is issued
        mint = getattr(self.inner, "task_token", None)
        if mint is None:
            uuid = self.sources.uuid
            return uuid() if uuid is not None else f"{path}#{attempt}"
        return str(await mint(state, path, attempt))

    async def run_task(self, call: TaskCall) -> Any:
        if call.path in self.done.results:
            self.served += 1
            result = self.done.results[call.path]
        else:
            result = await self.inner.run_task(call)
        self.into.results[call.path] = result
        return result


async def resume(
    definition: Mapping[str, Any],
    input: Any,
    runtime: Runtime,
    context: Mapping[str, Any],
    done: Checkpoint,
    into: Checkpoint,
) -> Outcome:
    """Run the machine as run() does, serving what ``done`` recorded and recording into ``into``
    (a run with an empty ``done`` is a first run that keeps a checkpoint)."""
    return await run(definition, input, ResumingRuntime(runtime, done, into), context)
