"""Which tenant's render gets the template pool's next free child, and how long a render
may wait for one.

A render waits holding one of the worker's activity slots, so it waits at most
`wait_seconds`; past that it fails with TemplatePoolBusy and the activity is retried
later, its slot free meanwhile. Only a render next in line (first of its tenant's, the
tenant holding no child) waits on, up to `next_in_line_seconds`: any child that frees is
its, so a tenant whose renders keep timing out behind other tenants' bombs is not
starved, and that is at most one waiting render per tenant. Tenants are served in turn, not in arrival order: a free
child goes to the waiting tenant that holds the fewest children, then to the one served
least recently. So a tenant gets a second child only while no tenant holding none waits,
and however many renders it queued, another tenant's render is next in line. With two or
more children a tenant holds at most all but one, so one tenant alone never holds them all.
"""

import asyncio
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable
from typing import Generic, TypeVar

from lodestone.busy import Busy

T = TypeVar("T")

MAX_RETRY_AFTER = 30.0


class TemplatePoolBusy(Busy):
    """The tenant's renders fill its share of the pool: retry after `retry_after` seconds."""


class FairTurns(Generic[T]):
    def __init__(
        self,
        size: int,
        wait_seconds: float,
        render_seconds: float,
        dead: Callable[[T], bool],
        next_in_line_seconds: float = 30.0,
    ) -> None:
        """`render_seconds`: what one render may take (for the retry delay). `dead(item)`:
        whether an idle item died; a dead one is dropped (its owner replaces it)."""
        self.size, self.wait_seconds, self.render_seconds = size, wait_seconds, render_seconds
        self.next_in_line_seconds = next_in_line_seconds
        self._dead = dead
        self.most = max(1, size - 1)  # the most one tenant holds
        self.idle: deque[T] = deque()
        self.held: Counter[str] = Counter()
        self._waiting: dict[str, deque[asyncio.Future[T]]] = {}
        self._served: dict[str, int] = {}
        self._clock = itertools.count()

    def waiting(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, ()))

    def put(self, item: T) -> None:
        """A child is free (after a render, or newly started)."""
        self.idle.append(item)
        self._grant()

    def release(self, tenant: str) -> None:
        """The tenant's render gave up its child (put back, or being replaced)."""
        self.held[tenant] -= 1
        if self.held[tenant] <= 0:
            del self.held[tenant]
        self._grant()

    async def take(self, tenant: str) -> T:
        """A free child for this tenant's render, within wait_seconds, or TemplatePoolBusy."""
        turn: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(turn)
        self._grant()
        try:
            await asyncio.wait({turn}, timeout=self.wait_seconds)
            if not turn.done() and not self.held[tenant] and self._waiting[tenant][0] is turn:
                await asyncio.wait({turn}, timeout=self.next_in_line_seconds)
        except BaseException:  # cancelled while waiting
            if turn.done() and not turn.cancelled():  # just as its turn came: give the child back
                self.release(tenant)
                self.put(turn.result())
            else:
                self._drop(tenant, turn)
            raise
        if not turn.done():
            self._drop(tenant, turn)
            ahead = self.held[tenant] + self.waiting(tenant) + 1
            retry_after = min(MAX_RETRY_AFTER, max(1.0, ahead * self.render_seconds / self.size))
            raise TemplatePoolBusy(
                f"this tenant's templates fill its share of the template evaluators ({self.held[tenant]} "
                f"rendering, {self.waiting(tenant)} more waiting); retry in {retry_after:.0f} s",
                retry_after * random.uniform(0.8, 1.2),
            )
        return turn.result()

    def _drop(self, tenant: str, turn: asyncio.Future[T]) -> None:
        turn.cancel()
        queue = self._waiting.get(tenant)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiting[tenant]
        self._grant()

    def _grant(self) -> None:
        while self.idle and self._waiting:
            eligible = [t for t in self._waiting if self.held[t] < self.most]
            if not eligible:
                return
            tenant = min(eligible, key=lambda t: (self.held[t], self._served.get(t, -1)))
            item = self.idle.popleft()
            if self._dead(item):
                continue  # died while idle: its replacement is put() when ready
            queue = self._waiting[tenant]
            turn = queue.popleft()
            if not queue:
                del self._waiting[tenant]
            turn.set_result(item)
            self.held[tenant] += 1
            self._served[tenant] = next(self._clock)
