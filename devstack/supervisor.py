"""Keeps the dev stack's processes up while `lodestone dev` serves.

A child that exits (a crash, a kill -9, a drained worker) is started again with the same
command and log after a backoff: 1 s, then 2 s, 4 s, 8 s … at most 30 s, counting the exits
in a row that each came within 60 s of that child's start. The others keep running. The
fifth such exit in a row stops the stack: GaveUp names the child, how it ended and its log.
A child that ran for 60 s or more before it exited starts the count again at one.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devstack.processes import Child, ProcessGroup, describe_exit

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
MAX_QUICK_EXITS = 5
QUICK = 60.0  # an exit within this many seconds of the start counts towards giving up


class GaveUp(RuntimeError):
    """A child kept exiting soon after each start."""


@dataclass
class Supervisor:
    group: ProcessGroup
    say: Callable[[str], None]
    first_delay: float = FIRST_DELAY
    max_delay: float = MAX_DELAY
    max_quick_exits: int = MAX_QUICK_EXITS
    quick: float = QUICK
    _due: dict[str, float] = field(default_factory=dict)  # name -> when to start it again
    _quick_exits: dict[str, int] = field(default_factory=dict)  # name -> quick exits in a row

    def tick(self) -> None:
        """Notice children that exited, restart those whose backoff is over; raise GaveUp
        for one that exited too often in a row."""
        now = time.monotonic()
        for child in self.group.exited():
            if child.name not in self._due:
                self._exited(child, now)
        for name, due in list(self._due.items()):
            if due <= now:
                del self._due[name]
                self.say(f"restarted {name} (pid {self.group.restart(name)})")

    def _exited(self, child: Child, now: float) -> None:
        ran = now - child.started
        count = self._quick_exits.get(child.name, 0) + 1 if ran < self.quick else 1
        self._quick_exits[child.name] = count
        how = describe_exit(child.proc.returncode)
        if count >= self.max_quick_exits:
            raise GaveUp(
                f"{child.name} exited {count} times in a row, each within {self.quick:g}s of starting "
                f"(last: {how}); its log: {child.log_path}"
            )
        delay = min(self.first_delay * 2 ** (count - 1), self.max_delay)
        self._due[child.name] = now + delay
        self.say(f"{child.name} exited ({how}) after {ran:.0f}s; restarting in {delay:g}s; its log: {child.log_path}")
