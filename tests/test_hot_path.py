"""The hot routes' cost in PostgreSQL round trips, counted on the wire: a relay in front of
the session stack's PostgreSQL counts ReadyForQuery messages (one per round trip) on the
in-process API's pooled connections (not its LISTEN connection). And no hot route's
dependency is a sync function (FastAPI runs those in a thread)."""

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.app import create_app
from api.deps import AppState
from api.routers import jobs, submissions, whatsapp
from devstack.postgres import APP_ROLE
from lodestone.db import make_engine, tenant_transaction
from schema.tables import Job
from services.start_recorder import record_started
from tests.helpers import create_workflow, definition, submit
from tests.relay import Relay

log = logging.getLogger(__name__)


@dataclass
class Link:
    listens: bool = False  # the events Listener's connection: not the pool's
    round_trips: int = 0


class CountingRelay(Relay):
    """A TCP relay to PostgreSQL that parses the server's messages and counts ReadyForQuery."""

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.links: list[Link] = []

    def round_trips(self) -> int:
        return sum(link.round_trips for link in self.links if not link.listens)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link()
        self.links.append(link)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self.spawn(self._requests(reader, up_writer, link))
        self.spawn(self._replies(up_reader, writer, link))

    async def _requests(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: Link) -> None:
        while data := await src.read(65536):
            link.listens = link.listens or b"LISTEN " in data
            dst.write(data)
            await dst.drain()
        dst.close()

    async def _replies(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: Link) -> None:
        first = await src.read(1)
        dst.write(first)
        if first != b"N":  # the answer to asyncpg's SSLRequest ("N": no TLS); else a message began
            await self._message(src, dst, link, first)
        while kind := await src.read(1):
            dst.write(kind)
            await self._message(src, dst, link, kind)
        dst.close()

    async def _message(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: Link, kind: bytes) -> None:
        head = await src.readexactly(4)
        body = await src.readexactly(int.from_bytes(head, "big") - 4)
        dst.write(head + body)
        await dst.drain()
        if kind == b"Z":
            link.round_trips += 1


@asynccontextmanager
async def counted_api(settings, tenant) -> AsyncIterator[tuple[CountingRelay, httpx.AsyncClient, AppState]]:  # type: ignore[no-untyped-def]
    async with CountingRelay(settings.postgres_port) as relay:
        url = f"postgresql+asyncpg://{APP_ROLE}@127.0.0.1:{relay.port}/lodestone"
        app = create_app(settings.model_copy(update={"auth_issuer": settings.issuer, "database_url": url}))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api.test",
                headers={"Authorization": tenant.api.headers["authorization"]},
            ) as api,
        ):
            yield relay, api, app.state.lodestone


async def counted(relay: CountingRelay, request) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    before = relay.round_trips()
    resp = await request
    return relay.round_trips() - before, resp


async def started_at(engine, tenant_id: uuid.UUID, job_id: str) -> object:  # type: ignore[no-untyped-def]
    async with tenant_transaction(engine, tenant_id) as db:
        return await db.fetchval("SELECT workflow_started_at FROM jobs WHERE id = $1", uuid.UUID(job_id))


async def recorded(engine, tenant_id: uuid.UUID, job_id: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while await started_at(engine, tenant_id, job_id) is None:
        assert time.monotonic() < deadline, f"the start of {job_id} was not recorded"
        await asyncio.sleep(0.05)


async def test_a_submission_takes_four_round_trips_and_its_start_is_recorded_after(settings, tenant_a, engine):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    async with counted_api(settings, tenant_a) as (relay, api, state):
        for _ in range(3):  # the pool's connections made, the tenant and statements known
            warm = await submit(api, wf["key"], idempotency_key=uuid.uuid4().hex)
            assert warm.status_code == 202, warm.text
            await recorded(engine, tenant_a.id, warm.json()["job_id"])  # not in the window counted next
        key = uuid.uuid4().hex
        held: list[Job] = []
        record, state.recorder.add = state.recorder.add, held.append  # type: ignore[method-assign]
        trips, resp = await counted(relay, submit(api, wf["key"], idempotency_key=key))
        assert resp.status_code == 202, resp.text
        [job] = held
        assert await started_at(engine, tenant_a.id, str(job.id)) is None  # left to the recorder
        state.recorder.add = record  # type: ignore[method-assign]
        record(job)
        log.info("POST /v1/submissions with an Idempotency-Key: %d round trips before the answer", trips)
        # BEGIN with the tenant; definition, upload and key read; the rows; COMMIT.
        assert trips == 4, trips
        job_id = resp.json()["job_id"]
        await recorded(engine, tenant_a.id, job_id)  # in the background
        replay_trips, again = await counted(relay, submit(api, wf["key"], idempotency_key=key))
        assert again.json()["job_id"] == job_id
        assert replay_trips == 4, replay_trips  # BEGIN with the tenant; the key read; the job read; COMMIT
        await api.get(f"/v1/jobs/{job_id}")
        get_trips, got = await counted(relay, api.get(f"/v1/jobs/{job_id}"))
        assert got.status_code == 200, got.text
        log.info("GET /v1/jobs/{id}: %d round trips", get_trips)


async def test_starts_recorded_in_one_batch_take_one_round_trip(settings, tenant_a, engine):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    ids = [(await submit(tenant_a.api, wf["key"])).json()["job_id"] for _ in range(3)]
    async with tenant_transaction(engine, tenant_a.id) as db:  # as if their starts were not recorded yet
        await db.execute("UPDATE jobs SET workflow_started_at = NULL WHERE id = ANY($1::uuid[])", ids)
    async with CountingRelay(settings.postgres_port) as relay:
        url = f"postgresql+asyncpg://{APP_ROLE}@127.0.0.1:{relay.port}/lodestone"
        counted_engine = make_engine(url, 1)
        try:
            await record_started(counted_engine, tenant_a.id, [uuid.UUID(j) for j in ids])  # connects
            async with tenant_transaction(engine, tenant_a.id) as db:
                await db.execute("UPDATE jobs SET workflow_started_at = NULL WHERE id = ANY($1::uuid[])", ids)
            trips, _ = await counted(relay, record_started(counted_engine, tenant_a.id, [uuid.UUID(j) for j in ids]))
        finally:
            await counted_engine.dispose()
    assert trips == 1, trips
    assert all([await started_at(engine, tenant_a.id, j) is not None for j in ids])


def dependencies(dependant: Dependant) -> list[Dependant]:
    found = []
    for dep in dependant.dependencies:
        found += [dep, *dependencies(dep)]
    return found


def test_the_hot_routes_have_no_sync_dependency():
    hot = {("POST", "/v1/submissions"), ("GET", "/v1/jobs/{job_id}"), ("POST", "/webhooks/whatsapp")}
    seen = set()
    for route in [*submissions.router.routes, *jobs.router.routes, *whatsapp.router.routes]:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods & {m for m, p in hot if p == route.path}:
            seen.add((method, route.path))
            for dep in dependencies(route.dependant):
                call = dep.call
                assert call is not None
                is_async = any(
                    inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (call, type(call).__call__)
                )
                assert is_async, f"{method} {route.path}: {call} runs in a thread"
    assert seen == hot
