"""The FastAPI app. Clients are created once, in the lifespan."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from api import docs, problems
from api.auth import TokenVerifier
from api.body_timeout import BodyIdleTimeout
from api.deps import AppState
from api.limits import BodyLimit, UploadSlots
from api.observe import Observe
from api.routers import (
    approvals,
    artifacts,
    budgets,
    channels,
    dev_issuer,
    forms,
    health,
    imports,
    job_events,
    jobs,
    metrics,
    schedules,
    submissions,
    task_tokens,
    tenant,
    uploads,
    uploads_resumable,
    usage,
    whatsapp,
    workflows,
)
from api.strict_json import StrictJson
from lodestone.db import make_engine
from lodestone.metrics import SdkMetrics
from lodestone.settings import Settings, get_settings
from lodestone.storage import make_store
from lodestone.storage.partials import reclaim_once
from lodestone.temporal_client import connect
from lodestone.tracing import setup_tracing
from services.uploads_resumable import sweep_forever


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A request waits for a pooled connection no longer than for a new one; past that, 503.
        engine = make_engine(
            settings.app_database_url,
            settings.db_pool_size,
            settings.db_connect_timeout_seconds,
            command_timeout=settings.db_command_timeout_seconds,
            pool_timeout=settings.db_connect_timeout_seconds,
        )
        http = httpx.AsyncClient()
        setup_tracing(settings, "lodestone-api")
        app.state.sdk_metrics = SdkMetrics()
        temporal = await connect(settings, lazy=True, runtime=app.state.sdk_metrics.runtime, bounded=True)
        store = make_store(settings)
        # What an earlier run left when it died mid-upload; the worker sweeps periodically.
        sweep = asyncio.create_task(reclaim_once(store, settings.partial_max_age_seconds))
        expired = asyncio.create_task(sweep_forever(engine, store, settings.partial_sweep_interval_seconds))
        app.state.lodestone = AppState(
            settings,
            engine,
            temporal,
            store,
            http,
            TokenVerifier(settings, http),
            UploadSlots(settings.uploads_in_flight, settings.tenant_uploads_in_flight),
        )
        app.state.lodestone.events.start()
        app.state.lodestone.recorder.start()
        try:
            yield
        finally:
            await app.state.lodestone.events.stop()
            await app.state.lodestone.recorder.stop()
            sweep.cancel()
            expired.cancel()
            await asyncio.gather(sweep, expired, return_exceptions=True)
            await http.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Lodestone",
        version="0.1.0",
        lifespan=lifespan,
        description="Durable AI document pipelines on Temporal.",
        # Observe (below) makes the one server span, the request id and the metrics;
        # FastAPI's own telemetry would add a second server span per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # FastAPI's pages load their assets from a CDN: api.docs serves them itself
        redoc_url=None,
    )
    problems.install(app)
    docs.install(app)
    app.add_middleware(StrictJson)  # innermost: it reads only bodies under the cap, each read bounded
    app.add_middleware(BodyIdleTimeout, seconds=settings.request_body_idle_timeout_seconds)
    app.add_middleware(BodyLimit, limit=settings.request_body_max_bytes)
    app.add_middleware(Observe)  # added last, so outermost

    for router in (
        health.router,
        workflows.router,
        imports.router,
        submissions.router,
        jobs.router,
        job_events.router,
        artifacts.router,
        uploads.router,
        uploads_resumable.router,
        channels.router,
        whatsapp.router,
        schedules.router,
        tenant.router,
        forms.router,
        metrics.router,
        task_tokens.router,
        approvals.router,
        usage.router,
        budgets.router,
    ):
        app.include_router(router)
    if settings.auth_dev_issuer:
        app.include_router(dev_issuer.router)
    return app
