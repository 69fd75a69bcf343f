"""PostgreSQL errors answer for what they are, on the session stack's database:

- out of reach (refused, timed out): 503 `database_unavailable`; a host name that does not
  resolve is the configuration's fault: 500, logged as an error;
- every pooled connection busy past the pool's timeout: 503 `database_busy`, not 500;
- a pooled connection gone half-open: replaced within the connect timeout, not waited on;
- the log line of a 503 names the route's template, never the path (it carries input)."""

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text

from api.app import create_app
from devstack.postgres import APP_ROLE
from devstack.processes import free_port
from lodestone.db import DatabaseUnavailable, make_engine, tenant_session
from tests.relay import Relay


@contextlib.asynccontextmanager
async def api_app(settings, tenant, **overrides) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"auth_issuer": settings.issuer, **overrides}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api.test",
            timeout=60,
            headers={"Authorization": tenant.api.headers["authorization"]},
        ) as http,
    ):
        yield app, http


def _url(host: str, port: int) -> str:
    return f"postgresql+asyncpg://{APP_ROLE}@{host}:{port}/lodestone"


async def test_a_host_name_that_does_not_resolve_is_an_error_not_an_outage(settings, tenant_a, caplog):
    engine = make_engine(_url("no-such-host.invalid", settings.postgres_port), 1, 2.0)
    try:
        with pytest.raises(socket.gaierror):
            async with tenant_session(engine, tenant_a.id) as s:
                await s.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    async with api_app(settings, tenant_a, database_url=_url("no-such-host.invalid", settings.postgres_port)) as (
        _,
        api,
    ):
        resp = await api.get("/v1/jobs")
    assert resp.status_code == 500, resp.text
    assert any(
        r.levelno >= logging.ERROR and "unhandled error on GET /v1/jobs" in r.getMessage() for r in caplog.records
    )


async def test_a_refused_connect_is_503_and_its_log_line_names_the_route_not_the_path(settings, tenant_a, caplog):
    job_id = uuid.uuid4()
    caplog.set_level(logging.WARNING, "lodestone.api")
    async with api_app(settings, tenant_a, database_url=_url("127.0.0.1", free_port())) as (_, api):
        resp = await api.get(f"/v1/jobs/{job_id}")
    assert resp.status_code == 503 and resp.json()["code"] == "database_unavailable", resp.text
    assert resp.headers["retry-after"]
    lines = [r.getMessage() for r in caplog.records if r.name == "lodestone.api"]
    assert any("database unavailable on GET /v1/jobs/{job_id}" in line for line in lines), lines
    assert not any(str(job_id) in line for line in lines), lines


async def test_an_exhausted_pool_is_503_database_busy(settings, tenant_a):
    async with api_app(settings, tenant_a, db_pool_size=1, db_connect_timeout_seconds=1.0) as (app, api):
        engine = app.state.lodestone.engine  # type: ignore[attr-defined]
        async with engine.connect(), engine.connect():  # pool_size 1 + overflow 1: all of it
            began = time.monotonic()
            resp = await api.get("/v1/jobs")
            took = time.monotonic() - began
    assert resp.status_code == 503 and resp.json()["code"] == "database_busy", resp.text
    assert resp.headers["retry-after"]
    assert took < 30, f"took {took:.1f}s"  # the pool's default wait is 30s


class FreezingProxy(Relay):
    """A TCP relay to PostgreSQL that can stop relaying, as a half-open connection does."""

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.frozen = asyncio.Event()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.frozen.is_set():
            await asyncio.Event().wait()  # accepted, never answered
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            self.spawn(self._pump(src, dst))

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            if self.frozen.is_set():
                await asyncio.Event().wait()
            dst.write(data)
            await dst.drain()


async def test_a_half_open_pooled_connection_is_replaced_within_the_connect_timeout(settings, tenant_a):
    async with FreezingProxy(settings.postgres_port) as proxy:
        engine = make_engine(_url("127.0.0.1", proxy.port), 1, 1.0)
        try:
            async with tenant_session(engine, tenant_a.id) as s:  # one connection, now pooled
                await s.execute(text("SELECT 1"))
            proxy.frozen.set()
            began = time.monotonic()
            with pytest.raises(DatabaseUnavailable):
                async with asyncio.timeout(20), tenant_session(engine, tenant_a.id) as s:
                    await s.execute(text("SELECT 1"))
            took = time.monotonic() - began
            assert took < 10, f"took {took:.1f}s"  # a ping (1s) and a connect (1s), on a loaded machine
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(engine.dispose(), 5)
