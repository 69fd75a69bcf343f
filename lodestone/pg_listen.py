"""One LISTEN connection per process, fanned out in memory: a PostgreSQL NOTIFY on the channel
wakes every waiter subscribed to its payload (a job id), so a thousand open event streams
cost one connection, not a thousand.

A connection that is lost (PostgreSQL restarted, a half-open socket that stops answering the
periodic check) is replaced, with backoff; while it is down, and once it is back, every
waiter is woken, since a NOTIFY sent meanwhile was lost: each one re-reads from the last
event it delivered, so nothing is missed. Waiters also wake on their own timeout (the slow
poll), a net for anything else."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger("lodestone.pg_listen")
APPLICATION = "lodestone-listen"  # the connection's application_name in pg_stat_activity


def asyncpg_params(url: str) -> dict[str, Any]:
    """asyncpg.connect's arguments for a SQLAlchemy database URL."""
    u = make_url(url)
    params: dict[str, Any] = {"host": u.host, "port": u.port, "user": u.username, "database": u.database}
    if u.password:
        params["password"] = u.password
    if "ssl" in u.query:
        params["ssl"] = u.query["ssl"]
    return params


class Waiter:
    """Set when its key was notified (or the connection was replaced); cleared by its owner
    before each read, so a NOTIFY that arrives during the read is not lost."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), timeout)


class Listener:
    def __init__(self, url: str, channel: str, *, check_seconds: float = 5.0, connect_timeout: float = 5.0) -> None:
        self.params = asyncpg_params(url)
        self.channel, self.check_seconds, self.connect_timeout = channel, check_seconds, connect_timeout
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connections = 0  # connections made so far (the first, and each replacement)
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @contextlib.contextmanager
    def subscribe(self, key: str) -> Any:
        waiter = Waiter()
        self._waiters[key].add(waiter)
        try:
            yield waiter
        finally:
            self._waiters[key].discard(waiter)
            if not self._waiters[key]:
                del self._waiters[key]

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for waiter in self._waiters.get(payload, ()):
            waiter.woken.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.woken.set()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(
                    **self.params, timeout=self.connect_timeout, server_settings={"application_name": APPLICATION}
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as e:
                log.warning("LISTEN %s: cannot connect (%s), retrying in %.1fs", self.channel, type(e).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            try:
                await self._listen(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                log.warning("LISTEN %s: connection lost (%s); reconnecting", self.channel, type(e).__name__)
            finally:
                self.connected.clear()
                self._wake_all()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 1.0)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(self.channel, self._notified)
        self.connections += 1
        self.connected.set()
        self._wake_all()  # what was sent before this connection listened: re-read it
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self.check_seconds)
            if not lost.is_set():  # a half-open socket would never say it is lost: ask it
                await conn.fetchval("SELECT 1", timeout=self.connect_timeout)
        raise ConnectionResetError("the LISTEN connection was terminated")
