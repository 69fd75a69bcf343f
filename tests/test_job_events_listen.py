"""The API's one LISTEN connection (lodestone.pg_listen) on a PostgreSQL of this module's own:
a NOTIFY wakes only the waiters of its job; a restarted PostgreSQL is listened to again, and
every waiter is woken when it is, so each stream re-reads what it may have missed."""

import asyncio
import tempfile
from pathlib import Path

import asyncpg

from devstack.postgres import start_postgres
from devstack.processes import ProcessGroup, free_port
from lodestone.pg_listen import Listener

CHANNEL = "probe_events"


async def until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def notify(port: int, key: str) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    try:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, key)
    finally:
        await conn.close()


async def test_one_listener_wakes_its_waiters_and_survives_a_postgres_restart():
    with tempfile.TemporaryDirectory(prefix="lodestone-listen-") as tmp, ProcessGroup() as group:
        port = free_port()
        await asyncio.to_thread(start_postgres, group, Path(tmp), port)
        listener = Listener(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", CHANNEL, check_seconds=0.5)
        listener.start()
        try:
            with listener.subscribe("job-1") as one, listener.subscribe("job-2") as two:
                await asyncio.wait_for(listener.connected.wait(), 30)
                one.woken.clear(), two.woken.clear()
                await notify(port, "job-1")
                await asyncio.wait_for(one.woken.wait(), 10)
                assert not two.woken.is_set()  # another job's NOTIFY wakes no one else

                await asyncio.to_thread(group.stop)
                await until(lambda: not listener.connected.is_set())
                one.woken.clear(), two.woken.clear()
                await asyncio.to_thread(start_postgres, group, Path(tmp), port)
                await asyncio.wait_for(listener.connected.wait(), 30)
                assert listener.connections == 2
                assert one.woken.is_set() and two.woken.is_set()  # re-read what the outage hid

                two.woken.clear()
                await notify(port, "job-2")
                await asyncio.wait_for(two.woken.wait(), 10)
        finally:
            await listener.stop()
