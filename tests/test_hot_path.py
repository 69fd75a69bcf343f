"""The hot routes' cost in PostgreSQL round trips, counted on the wire: a relay in front of
the session stack's PostgreSQL counts ReadyForQuery messages (one per round trip) on the
in-process API's pooled connections (not its LISTEN connection). And no hot route's
dependency is a sync function (FastAPI runs those in a thread)."""

import asyncio
import inspect
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.routers import jobs, submissions, whatsapp
from devstack.postgres import APP_ROLE
from tests.helpers import create_workflow, definition, in_process_api, submit

log = logging.getLogger(__name__)


@dataclass
class Link:
    listens: bool = False  # the events Listener's connection: not the pool's
    round_trips: int = 0


@dataclass
class CountingRelay:
    """A TCP relay to PostgreSQL that parses the server's messages and counts ReadyForQuery."""

    upstream: int
    links: list[Link] = field(default_factory=list)

    async def __aenter__(self) -> "CountingRelay":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.tasks: set[asyncio.Task[None]] = set()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def round_trips(self) -> int:
        return sum(link.round_trips for link in self.links if not link.listens)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link()
        self.links.append(link)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        for task in (self._requests(reader, up_writer, link), self._replies(up_reader, writer, link)):
            t = asyncio.create_task(task)
            self.tasks.add(t)

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
async def counted_api(settings, tenant) -> AsyncIterator[tuple[CountingRelay, httpx.AsyncClient]]:  # type: ignore[no-untyped-def]
    async with CountingRelay(settings.postgres_port) as relay:
        url = f"postgresql+asyncpg://{APP_ROLE}@127.0.0.1:{relay.port}/lodestone"
        async with in_process_api(settings, tenant.api.headers["authorization"].split()[1], database_url=url) as api:
            yield relay, api


async def counted(relay: CountingRelay, request) -> tuple[int, httpx.Response]:  # type: ignore[no-untyped-def]
    before = relay.round_trips()
    resp = await request
    return relay.round_trips() - before, resp


async def test_a_submission_takes_five_round_trips(settings, tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    async with counted_api(settings, tenant_a) as (relay, api):
        for _ in range(3):  # the pool's connections made, the tenant and statements known
            assert (await submit(api, wf["key"], idempotency_key=uuid.uuid4().hex)).status_code == 202
        key = uuid.uuid4().hex
        trips, resp = await counted(relay, submit(api, wf["key"], idempotency_key=key))
        assert resp.status_code == 202, resp.text
        log.info("POST /v1/submissions with an Idempotency-Key: %d round trips", trips)
        # BEGIN with the tenant; definition, upload and key read; the rows; COMMIT; the start recorded.
        assert trips == 5, trips
        replay_trips, again = await counted(relay, submit(api, wf["key"], idempotency_key=key))
        assert again.json()["job_id"] == resp.json()["job_id"]
        assert replay_trips == 4, replay_trips  # BEGIN with the tenant; the key read; the job read; COMMIT
        job_id = resp.json()["job_id"]
        await api.get(f"/v1/jobs/{job_id}")
        get_trips, got = await counted(relay, api.get(f"/v1/jobs/{job_id}"))
        assert got.status_code == 200, got.text
        log.info("GET /v1/jobs/{id}: %d round trips", get_trips)


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
