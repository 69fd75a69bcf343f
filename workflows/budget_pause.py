"""A job that meets a spent LLM budget pauses (docs/budgets.md): the activity whose call did
not fit ends with BudgetExhausted before sending it; the job says `paused_budget` and waits
for the `budget_changed` signal (PUT /v1/budgets sends it to every paused job of the
tenant), the period's roll-over or the re-check interval (the activity says which comes
first), then runs the activity again. The job says `processing` again once no activity of it
is paused. It never fails for it: the pause has no limit.

Runs recorded before BUDGET_PATCH never met BudgetExhausted; the patch is asked only when one
is met, so they replay as they ran."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from activities import errors
from schema.statuses import JobStatus

BUDGET_PATCH = "budget-pause"
BUDGET_SIGNAL = "budget_changed"
T = TypeVar("T")
StatusWriter = Callable[[str], Awaitable[None]]


def activity_ids(path: str) -> Callable[[], str]:
    """The names of a Task's runs: its path, then `<path>~budget<n>` for each run after a pause
    (each is an activity of its own)."""
    runs = 0

    def next_id() -> str:
        nonlocal runs
        runs += 1
        return path if runs == 1 else f"{path}~budget{runs - 1}"

    return next_id


def budget_wait(err: BaseException) -> timedelta | None:
    """How long at most a BudgetExhausted failure asks to wait; None for any other failure."""
    cause = err.cause if isinstance(err, ActivityError) else None
    if isinstance(cause, ApplicationError) and cause.type == errors.BUDGET_EXHAUSTED:
        return cause.next_retry_delay or timedelta(minutes=5)
    return None


class BudgetPause:
    """One per workflow run: its paused activities, and the status that says so."""

    def __init__(self) -> None:
        self.generation = 0  # bumped by each budget_changed signal
        self.paused = 0  # activities waiting on the budget now
        self._shown: str | None = None  # the status this class last wrote
        self._writing = False

    def changed(self) -> None:
        self.generation += 1

    def _changed_since(self, seen: int) -> bool:
        return self.generation != seen

    async def run(self, start: Callable[[], Awaitable[T]], write: StatusWriter) -> T:
        """`start()`'s result, however many times the budget paused it."""
        waiting = False
        try:
            while True:
                try:
                    result = await start()
                    break
                except ActivityError as err:
                    wait = budget_wait(err)
                    if wait is None or not workflow.patched(BUDGET_PATCH):
                        raise
                if not waiting:
                    waiting = True
                    self.paused += 1
                    await self._sync(write)
                try:
                    await workflow.wait_condition(partial(self._changed_since, self.generation), timeout=wait)
                except TimeoutError:
                    pass  # the roll-over, or the re-check: try again
        finally:
            if waiting:
                self.paused -= 1
        if waiting:
            await self._sync(write)
        return result

    async def _sync(self, write: StatusWriter) -> None:
        """Write paused_budget while any activity is paused, else processing (after a pause),
        one write at a time, until the status written is the one wanted."""
        if self._writing:
            return
        self._writing = True
        try:
            while True:
                want = JobStatus.paused_budget if self.paused else JobStatus.processing
                if want == self._shown:
                    return
                await write(want)
                self._shown = want
        finally:
            self._writing = False
