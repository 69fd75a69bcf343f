"""Tenant templates (HTML templates, step instructions) evaluated in a warm pool of child
processes, lodestone.template_child, never on the worker's event loop.

A thread would not do: it cannot be stopped, and a runaway loop in it holds the GIL, so
the event loop still stalls. A process started per render would: ~60 ms each, against
well under a millisecond for a typical template here. So TEMPLATE_WORKERS children are
started once, with Jinja2 imported and their memory cap set, and each renders one
template at a time. A child that hits a limit exits (CPU time: the kernel ends it) and is
replaced in the background, so a bomb holds one child for at most about
TEMPLATE_CPU_SECONDS, and a dead, killed or cancelled child never leaves the pool short.
Which tenant's render gets the next free child, and for how long a render waits before
it fails with TemplatePoolBusy (retried later): lodestone.template_turns.
"""

import asyncio
import contextlib
import json
import logging
import pickle
import signal
import sys
from dataclasses import dataclass
from typing import Any

from lodestone.settings import Settings
from lodestone.template_child import EXIT_MEMORY, HEADER, READY
from lodestone.template_turns import FairTurns, TemplatePoolBusy
from lodestone.templating import TemplateLimitExceeded, TemplateRenderError, TemplateSecurityViolation

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
# How long a render waits for a child (its activity holding a worker slot) before it fails
# with TemplatePoolBusy: about a typical render's worth of queue, well under a bomb's.
WAIT_SECONDS = 1.0
ERRORS: dict[str, type[Exception]] = {
    e.__name__: e for e in (TemplateLimitExceeded, TemplateRenderError, TemplateSecurityViolation)
}


class TemplateEvaluatorFailed(RuntimeError):
    """The evaluator died or stopped answering for a reason other than the template's
    limits (the OOM killer, a crash, a starved machine): retryable."""


@dataclass(frozen=True)
class TemplateLimits:
    cpu_seconds: float = 2.0
    memory_mb: int = 256
    output_max_bytes: int = 10 * 1024 * 1024

    @property
    def wall_seconds(self) -> float:
        """The parent's last resort: a child that used no CPU and still did not answer."""
        return max(30.0, 10 * self.cpu_seconds)

    def cpu_exceeded(self) -> TemplateLimitExceeded:
        return TemplateLimitExceeded(
            f"template used more than TEMPLATE_CPU_SECONDS ({self.cpu_seconds:g} s) of CPU time"
        )

    def memory_exceeded(self) -> TemplateLimitExceeded:
        return TemplateLimitExceeded(f"template needed more than TEMPLATE_MEMORY_MB ({self.memory_mb} MiB) of memory")


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, limits: TemplateLimits) -> "_Child":
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lodestone.template_child",
            str(limits.cpu_seconds),
            str(limits.memory_mb),
            str(limits.output_max_bytes),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        child = cls(proc)
        try:
            if await asyncio.wait_for(child.receive(len(READY)), START_TIMEOUT) != READY:
                raise TemplateEvaluatorFailed("template evaluator started badly")
        except BaseException:
            await child.end()
            raise
        return child

    async def ask(self, request: bytes, max_reply: int) -> bytes:
        assert self.proc.stdin is not None
        self.proc.stdin.write(HEADER.pack(len(request)) + request)
        await self.proc.stdin.drain()
        return await self.receive(max_reply)

    async def receive(self, max_reply: int) -> bytes:
        assert self.proc.stdout is not None
        (size,) = HEADER.unpack(await self.proc.stdout.readexactly(HEADER.size))
        if size > max_reply:
            raise TemplateEvaluatorFailed(f"template evaluator sent {size} bytes, more than it may")
        return await self.proc.stdout.readexactly(size)

    async def end(self, grace: float = 0.0) -> int:
        """Its exit status, after `grace` seconds to exit by itself, then a kill. A child
        that has exited is never sent the kill: Popen.send_signal polls first, and a poll
        that reaps it leaves asyncio's watcher with no status to report (it says 255)."""
        if self.proc.returncode is None and grace:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        return await self.proc.wait()


class TemplatePool:
    def __init__(self, limits: TemplateLimits, size: int = 2, wait_seconds: float = WAIT_SECONDS) -> None:
        self.limits, self.size = limits, size
        self._max_reply = limits.output_max_bytes + 1024 * 1024  # output, or an error's JSON
        self._turns: FairTurns[_Child] = FairTurns(
            size, wait_seconds, limits.cpu_seconds, self._dead, limits.wall_seconds
        )
        self._children: set[_Child] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "TemplatePool":
        return cls(
            TemplateLimits(
                settings.template_cpu_seconds, settings.template_memory_mb, settings.template_output_max_bytes
            ),
            settings.template_workers,
        )

    async def start(self) -> None:
        """Start every child and wait until each is ready (render() starts them lazily too)."""
        self._launch()
        await asyncio.gather(*list(self._tasks))

    def _launch(self) -> None:
        if not self._started:
            self._started = True
            for _ in range(self.size):
                self._background(self._spawn())

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                child = await _Child.start(self.limits)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, TemplateEvaluatorFailed) as e:
                log.warning("template evaluator did not start (%s), retrying in %.1fs", type(e).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._closed:
                await child.end()
                return
            self._children.add(child)
            self._turns.put(child)
            return

    async def _replace(self, child: _Child, grace: float) -> None:
        await child.end(grace)
        self._children.discard(child)
        await self._spawn()

    def _dead(self, child: _Child) -> bool:
        if child.proc.returncode is None:
            return False
        self._background(self._replace(child, 0.0))  # died while idle
        return True

    async def render(self, source: str, context: dict[str, Any], *, html: bool, tenant: str | None = None) -> str:
        """The template rendered with context, or TemplateRenderError,
        TemplateSecurityViolation, TemplateLimitExceeded, TemplateEvaluatorFailed or
        TemplatePoolBusy (no child for this tenant within the wait: retry later)."""
        if self._closed:
            raise TemplateEvaluatorFailed("the template pool is closed")
        request = pickle.dumps((source, context, html), protocol=pickle.HIGHEST_PROTOCOL)
        self._launch()
        tenant = tenant or ""
        try:
            child = await self._turns.take(tenant)
        except TemplatePoolBusy:
            if not self._children and not self._turns.held[tenant]:  # no evaluator runs at all
                raise TemplateEvaluatorFailed("no template evaluator is running") from None
            raise
        reusable, exiting = False, False
        try:
            reply = await asyncio.wait_for(child.ask(request, self._max_reply), self.limits.wall_seconds)
            if reply[:1] == b"o":
                reusable = True
                return reply[1:].decode()
            error = json.loads(reply[1:])
            exiting = error["type"] == TemplateLimitExceeded.__name__  # the child exits after a limit
            reusable = not exiting
            raise ERRORS.get(error["type"], TemplateEvaluatorFailed)(error["message"])
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            raise self._death(await child.end(grace=5.0)) from e
        except TimeoutError as e:
            await child.end()
            raise TemplateEvaluatorFailed(
                f"template evaluator did not answer within {self.limits.wall_seconds:g}s"
            ) from e
        finally:
            self._turns.release(tenant)
            if reusable:
                self._turns.put(child)
            else:  # killed, dead, past a limit or cancelled mid-render: a fresh one takes its slot
                self._background(self._replace(child, 5.0 if exiting else 0.0))

    def _death(self, code: int) -> Exception:
        if code == -signal.SIGPROF:
            return self.limits.cpu_exceeded()
        if code == EXIT_MEMORY:
            return self.limits.memory_exceeded()
        log.warning("template evaluator exited with %s", code)
        return TemplateEvaluatorFailed(f"template evaluator exited with {code}")

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(child.end() for child in self._children))
        self._children.clear()
