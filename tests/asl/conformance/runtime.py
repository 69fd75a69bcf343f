"""The scripted in-memory Runtime the conformance cases run against.

- A fake clock: ``sleep`` records the delay and waits on a virtual timer; time only moves
  when every coroutine is blocked, then jumps to the earliest timer (a time-skipping loop).
- Scripted Tasks: per Resource, what each call returns (a result, an error, the payload
  echoed back), optionally per payload and per attempt; a scripted ``duration`` runs on the
  fake clock, and a Task running past its TimeoutSeconds fails with States.Timeout, as the
  Step Functions runtime does.
- Seeded Sources for States.MathRandom, States.UUID, JSONata's $random/$uuid and $now.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lodestone.asl.errors import ASLError
from lodestone.asl.functions import Sources

UNSCRIPTED = "Conformance.Unscripted"
_TICKS = 3  # each Task yields this many times before answering: concurrent calls overlap


class Clock:
    """Virtual time: timers resolve in order of their deadline when the loop is idle."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = start
        self._timers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def wait(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + timedelta(seconds=seconds), next(self._seq), future))
        await future

    def advance(self) -> bool:
        while self._timers:
            when, _, future = heapq.heappop(self._timers)
            if future.done():  # cancelled by its owner
                continue
            self.now = max(self.now, when)
            future.set_result(None)
            return True
        return False

    @property
    def elapsed(self) -> float:
        return (self.now - self.start).total_seconds()


async def _settle() -> None:
    """Yield until no other callback is ready to run (the loop is idle)."""
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    for _ in range(100_000):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return
    if ready is not None:
        raise RuntimeError("the interpreter never went idle")


async def drive(coro: Any, clock: Clock, max_rounds: int = 10_000) -> Any:
    """Run ``coro`` to completion, moving the fake clock whenever everything waits on it."""
    task = asyncio.ensure_future(coro)
    for _ in range(max_rounds):
        await _settle()
        if task.done():
            return task.result()
        if not clock.advance():
            await asyncio.sleep(0)
    task.cancel()
    raise RuntimeError("the run did not finish (a timer loop or a deadlock)")


@dataclass
class _Queue:
    responses: list[dict[str, Any]]
    used: int = 0

    def take(self) -> dict[str, Any] | None:
        if self.used < len(self.responses):
            self.used += 1
            return self.responses[self.used - 1]
        if self.responses and self.responses[-1].get("repeat"):
            return self.responses[-1]
        return None


def _queue(spec: Any) -> _Queue:
    if isinstance(spec, list):
        return _Queue(list(spec))
    return _Queue([{**spec, "repeat": True}])


class Script:
    """``tasks`` of a case: resource -> a list of responses (consumed in call order), one
    response (every call), or {"by_payload": [{"payload": P, "responses": [...]}, ...],
    "default": ...} (each payload keeps its own sequence, whatever the call order)."""

    def __init__(self, tasks: dict[str, Any]) -> None:
        self._plain: dict[str, _Queue] = {}
        self._by_payload: dict[str, list[tuple[Any, _Queue]]] = {}
        for resource, spec in tasks.items():
            if isinstance(spec, dict) and "by_payload" in spec:
                self._by_payload[resource] = [(e["payload"], _queue(e["responses"])) for e in spec["by_payload"]]
                if "default" in spec:
                    self._plain[resource] = _queue(spec["default"])
            else:
                self._plain[resource] = _queue(spec)

    def response(self, resource: str, payload: Any) -> dict[str, Any] | None:
        for expected, queue in self._by_payload.get(resource, ()):
            if expected == payload:
                return queue.take()
        queue = self._plain.get(resource)
        return queue.take() if queue else None


@dataclass
class ScriptedRuntime:
    script: Script
    clock: Clock
    seed: int = 7
    sources: Sources = field(init=False)
    calls: list[Any] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    unscripted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        ids = random.Random(self.seed + 1)
        self.sources = Sources(
            random=rng.random,
            uuid=lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4)),
            now_millis=lambda: int(self.clock.now.timestamp() * 1000),
        )

    def now(self) -> datetime:
        return self.clock.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.clock.wait(seconds)

    def record(self, event: Any) -> None:
        self.events.append(event)

    async def run_task(self, call: Any) -> Any:
        self.calls.append(call)
        response = self.script.response(call.resource, call.payload)
        if response is None:
            self.unscripted.append(f"{call.resource} {call.payload!r}")
            raise ASLError(UNSCRIPTED, f"no scripted response for {call.resource}")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(_TICKS):
                await asyncio.sleep(0)
            duration = response.get("duration", 0)
            timeout = call.timeout_seconds
            if timeout is not None and duration > timeout:
                await self.clock.wait(timeout)
                raise ASLError("States.Timeout", "")
            if duration:
                await self.clock.wait(duration)
        finally:
            self.in_flight -= 1
        if "error" in response:
            raise ASLError(response["error"], response.get("cause", ""))
        if response.get("echo"):
            return copy.deepcopy(call.payload)
        return copy.deepcopy(response.get("result"))
