"""A callback Task's wait (a Resource ending in `.waitForTaskToken`): the outcome the outside
reports with the task token (SendTaskSuccess, SendTaskFailure), its heartbeats, and which
deadline passes first: TimeoutSeconds from the Task's start (States.Timeout), HeartbeatSeconds
from the last heartbeat or else the start (States.HeartbeatTimeout). The clock and the waiting
are the runtime's (in a workflow: its clock and durable timers); this holds no time of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import errors
from .errors import ASLError

# until(predicate, seconds): returns once predicate() holds, or after seconds (None: no limit)
Until = Callable[[Callable[[], bool], float | None], Awaitable[None]]


@dataclass
class CallbackWait:
    started: datetime
    timeout_seconds: float | None = None
    heartbeat_seconds: float | None = None
    last_beat: datetime | None = None
    beats: int = 0
    settled: bool = False
    output: Any = None
    error: str | None = None
    cause: str | None = None
    expired: bool = False  # a deadline ended it, not the outside

    def succeed(self, output: Any) -> bool:
        """The outside's SendTaskSuccess; False when the wait was already over."""
        if self.settled:
            return False
        self.settled, self.output = True, output
        return True

    def fail(self, error: str | None, cause: str | None) -> bool:
        if self.settled:
            return False
        self.settled, self.error, self.cause = True, error or errors.TASK_FAILED, cause or ""
        return True

    def beat(self, now: datetime) -> bool:
        if self.settled:
            return False
        self.last_beat, self.beats = now, self.beats + 1
        return True

    def deadline(self) -> tuple[datetime, str, str] | None:
        """The earliest deadline: (when, the error it fails with, its cause); None: none."""
        due: list[tuple[datetime, str, str]] = []
        if self.timeout_seconds:
            cause = f"the task was not completed within TimeoutSeconds ({self.timeout_seconds:g} s)"
            due.append((self.started + timedelta(seconds=self.timeout_seconds), errors.TIMEOUT, cause))
        if self.heartbeat_seconds:
            since = self.last_beat or self.started
            cause = f"no heartbeat within HeartbeatSeconds ({self.heartbeat_seconds:g} s)"
            due.append((since + timedelta(seconds=self.heartbeat_seconds), errors.HEARTBEAT_TIMEOUT, cause))
        return min(due, key=lambda d: d[0]) if due else None

    def result(self) -> Any:
        if self.error is not None:
            raise ASLError(self.error, self.cause or "")
        return self.output


def _moved(wait: CallbackWait, seen: int) -> Callable[[], bool]:
    return lambda: wait.settled or wait.beats != seen


async def wait_for_callback(wait: CallbackWait, now: Callable[[], datetime], until: Until) -> Any:
    """Wait until the outside settles the Task or a deadline passes; the output, or the
    ASLError it failed with (its own, States.Timeout or States.HeartbeatTimeout)."""
    while not wait.settled:
        moved = _moved(wait, wait.beats)
        due = wait.deadline()
        if due is None:
            await until(moved, None)
            continue
        when, error, cause = due
        left = (when - now()).total_seconds()
        if left <= 0:
            wait.fail(error, cause)
            wait.expired = True
            break
        await until(moved, left)
    return wait.result()
