"""The FastAPI app. Clients are created once, in the lifespan."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from temporalio.client import Client

from api import problems
from api.auth import TokenVerifier
from api.deps import AppState
from api.limits import BodyLimit, TenantRateLimiter
from api.routers import (
    artifacts,
    channels,
    forms,
    health,
    jobs,
    schedules,
    submissions,
    tenant,
    uploads,
    whatsapp,
    workflows,
)
from lodestone.db import make_engine
from lodestone.logs import request_id
from lodestone.settings import Settings, get_settings
from lodestone.storage import make_store


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.app_database_url, settings.db_pool_size)
        http = httpx.AsyncClient()
        temporal = await Client.connect(settings.temporal_target,
                                        namespace=settings.temporal_namespace, lazy=True)
        app.state.lodestone = AppState(
            settings, engine, temporal, make_store(settings), http, TokenVerifier(settings, http),
            TenantRateLimiter(settings.submissions_per_minute, settings.submissions_burst),
            TenantRateLimiter(settings.public_form_submissions_per_minute, settings.public_form_submissions_burst))
        try:
            yield
        finally:
            await http.aclose()
            await engine.dispose()

    app = FastAPI(title="Lodestone", version="0.1.0", lifespan=lifespan,
                  description="Durable AI document pipelines on Temporal.")
    problems.install(app)
    app.add_middleware(BodyLimit, limit=settings.request_body_max_bytes)

    @app.middleware("http")
    async def with_request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id", "")[:128] or uuid.uuid4().hex
        token = request_id.set(rid)
        try:
            response = await call_next(request)
        finally:
            request_id.reset(token)
        response.headers["X-Request-Id"] = rid
        return response

    for router in (health.router, workflows.router, submissions.router, jobs.router, artifacts.router,
                   uploads.router, channels.router, whatsapp.router, schedules.router, tenant.router,
                   forms.router):
        app.include_router(router)
    return app
