"""The interpreter's boundary: what it asks of its runtime (a Task call, a timer, the clock, the
path recorder) and what it hands back (events and the outcome). Re-exported by machine.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .functions import Sources


@dataclass(frozen=True)
class TaskCall:
    state: str  # the state's name
    path: str  # unique in the execution: "Check", "Fan/1/Check", "Each/3/Check", "Loop@2"
    resource: str  # the Task's Resource, as written
    payload: Any  # Parameters (JSONPath) or Arguments (JSONata), evaluated; else the effective input
    timeout_seconds: float | None  # TimeoutSeconds(Path); None = the runtime's default
    heartbeat_seconds: float | None  # HeartbeatSeconds(Path)
    attempt: int  # 1 for the first try, 2 for the first retry, ...
    # A `.waitForTaskToken` Resource: the runtime sends the request, then waits for the outside
    # to report the outcome with `token` (also `$$.Task.Token` in Parameters); its timeouts
    # bound the wait, and its result is the output the outside reported.
    callback: bool = False
    token: str | None = None


@dataclass(frozen=True)
class Event:
    """One line of the job's path, in order."""

    kind: str  # "entered" | "exited" | "retry" | "caught" | "failed"
    state: str
    path: str
    type: str  # the state's Type
    input: Any = None  # entered: the state's raw input
    output: Any = None  # exited: the state's output; caught: what the Catcher hands to its Next
    error: str | None = None  # retry / caught / failed
    cause: str | None = None
    attempt: int | None = None  # retry: the attempt that failed
    delay_seconds: float | None = None  # retry: the wait before the next attempt
    next: str | None = None  # caught: the Catcher's Next; exited: the Next taken (None at the end)


@dataclass(frozen=True)
class Outcome:
    status: str  # "SUCCEEDED" | "FAILED"
    output: Any = None
    error: str | None = None
    cause: str | None = None


class Runtime(Protocol):
    sources: Sources

    def now(self) -> datetime: ...

    async def run_task(self, call: TaskCall) -> Any: ...

    async def sleep(self, seconds: float) -> None: ...

    def record(self, event: Event) -> None: ...


class CallbackRuntime(Runtime, Protocol):
    """A runtime that issues task tokens. One without ``task_token`` gets the interpreter's
    stand-in (a UUID from ``sources``): not secret, for in-memory runs only."""

    async def task_token(self, state: str, path: str, attempt: int) -> str: ...


class RuntimeEscape(BaseException):
    """A runtime call failed with something other than an ASLError (a bug or the host's own
    control flow): carried past the state machine's error handling and re-raised by run()."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original
