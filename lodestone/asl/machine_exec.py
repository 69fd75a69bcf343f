"""The interpreter's core: one execution (its runtime and context object), the variable scope
of a (sub-)machine, and the loop that walks a machine's states from StartAt to an end,
recording each state's path events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from typing import Any

from . import errors
from .errors import ASLError
from .machine_types import Event, Runtime, RuntimeEscape, TaskCall

# (output, the next state's name or None at an end, whether a Catcher handled a failure)
Step = tuple[Any, str | None, bool]
Executor = Callable[["StateRun"], Awaitable[Step]]


class Execution:
    """What every state of one run shares: the runtime, the caller's ``$$`` entries and the
    executor of each state type."""

    __slots__ = ("runtime", "base", "sources", "executors")

    def __init__(self, runtime: Runtime, context: Mapping[str, Any], executors: Mapping[str, Executor]) -> None:
        self.runtime = runtime
        self.executors = executors
        self.base = {k: v for k, v in context.items() if k not in ("State", "Map")}
        self.sources = runtime.sources

    def now_iso(self) -> str:
        now = self.runtime.now().astimezone(UTC)
        return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def record(self, event: Event) -> None:
        self.runtime.record(event)

    async def run_task(self, call: TaskCall) -> Any:
        try:
            return await self.runtime.run_task(call)
        except ASLError:
            raise
        except Exception as exc:
            raise RuntimeEscape(exc) from exc

    async def sleep(self, seconds: float) -> None:
        try:
            await self.runtime.sleep(seconds)
        except Exception as exc:
            raise RuntimeEscape(exc) from exc


class Frame:
    """A machine's variable scope: the top-level states share one; each Parallel branch and Map
    iteration gets its own, which reads the enclosing scope's variables as they were when the
    Parallel or Map state started and may not assign any of those names."""

    __slots__ = ("prefix", "outer", "vars", "language", "visits", "item")

    def __init__(
        self, prefix: str, outer: Mapping[str, Any], language: str, item: Mapping[str, Any] | None = None
    ) -> None:
        self.prefix = prefix
        self.outer = outer
        self.vars: Mapping[str, Any] = outer  # every visible variable; replaced, never mutated
        self.language = language
        self.visits: dict[str, int] = {}
        self.item = item  # a Map iteration's {"Index", "Value"}: ``$$.Map.Item`` in its states

    def visit(self, name: str) -> str:
        """The path of this entry into the state: its name, then ``@2``, ``@3`` on loops."""
        n = self.visits.get(name, 0) + 1
        self.visits[name] = n
        return f"{self.prefix}{name}" if n == 1 else f"{self.prefix}{name}@{n}"

    def assign(self, holder: Mapping[str, Any], merged: Mapping[str, Any], jsonpath: bool) -> None:
        """Take the names ``holder["Assign"]`` sets from ``merged`` (the library's result)."""
        names = [k[:-2] if jsonpath and k.endswith(".$") else k for k in holder["Assign"]]
        for name in names:
            if name in self.outer:
                raise ASLError(
                    errors.RUNTIME,
                    f"Cannot assign the variable '{name}': it belongs to an outer scope "
                    "(a Parallel branch or Map iteration can read it, not assign it)",
                )
        self.vars = {**self.vars, **{n: merged[n] for n in names}}


class StateRun:
    """One entry into one state: what its executor needs."""

    __slots__ = ("ex", "frame", "name", "state", "path", "input", "language", "entered")

    def __init__(self, ex: Execution, frame: Frame, name: str, state: Mapping[str, Any], path: str, value: Any):
        self.ex = ex
        self.frame = frame
        self.name = name
        self.state = state
        self.path = path
        self.input = value
        self.language: str = state.get("QueryLanguage", frame.language)
        self.entered = ex.now_iso()

    @property
    def jsonpath(self) -> bool:
        return self.language == "JSONPath"

    def context(self, retry_count: int = 0) -> dict[str, Any]:
        ctx = dict(self.ex.base)
        ctx["State"] = {"Name": self.name, "EnteredTime": self.entered, "RetryCount": retry_count}
        if self.frame.item is not None:
            ctx["Map"] = {"Item": self.frame.item}
        return ctx

    def event(self, kind: str, **fields: Any) -> None:
        self.ex.record(Event(kind, self.name, self.path, self.state["Type"], **fields))


async def run_states(machine: Mapping[str, Any], value: Any, frame: Frame, ex: Execution) -> Any:
    """Run a machine (the top level, a Parallel branch or a Map iteration) to its end; returns
    its output or raises the ASLError it fails with (already recorded on the failing state)."""
    states = machine["States"]
    name: str | None = machine["StartAt"]
    while name is not None:
        state = states[name]
        run = StateRun(ex, frame, name, state, frame.visit(name), value)
        run.event("entered", input=value)
        try:
            value, name, caught = await ex.executors[state["Type"]](run)
        except ASLError as err:
            run.event("failed", error=err.error or None, cause=err.cause or None)
            raise
        except Exception as exc:  # a defect in evaluation: fail the machine, not the host
            defect = ASLError(errors.RUNTIME, f"{type(exc).__name__}: {exc}")
            run.event("failed", error=defect.error, cause=defect.cause)
            raise defect from exc
        if not caught:
            run.event("exited", output=value, next=name)
    return value
