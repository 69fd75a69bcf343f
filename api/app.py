"""The FastAPI app. Clients are created once, in the lifespan."""

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from opentelemetry import context, trace
from opentelemetry.propagate import extract

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
    metrics,
    schedules,
    submissions,
    tenant,
    uploads,
    whatsapp,
    workflows,
)
from lodestone.db import make_engine
from lodestone.logs import request_id
from lodestone.metrics import HTTP_REQUESTS, SdkMetrics
from lodestone.settings import Settings, get_settings
from lodestone.storage import make_store
from lodestone.temporal_client import connect
from lodestone.tracing import setup_tracing, with_request_id


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.app_database_url, settings.db_pool_size)
        http = httpx.AsyncClient()
        setup_tracing(settings, "lodestone-api")
        app.state.sdk_metrics = SdkMetrics()
        temporal = await connect(settings, lazy=True, runtime=app.state.sdk_metrics.runtime)
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

    tracer = trace.get_tracer("lodestone.api")

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # The request id rides as baggage beside the trace context, so workflows and
        # activities started by this request log it too.
        rid = request.headers.get("x-request-id", "")[:128] or uuid.uuid4().hex
        token, otel_token = request_id.set(rid), context.attach(with_request_id(rid, extract(request.headers)))
        started, status = time.monotonic(), 500
        try:
            with tracer.start_as_current_span(f"{request.method} {request.url.path}",
                                              kind=trace.SpanKind.SERVER) as span:
                response = await call_next(request)
                status = response.status_code
                span.set_attribute("http.response.status_code", status)
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(request.method, route, str(status)).observe(time.monotonic() - started)
            context.detach(otel_token)
            request_id.reset(token)
        response.headers["X-Request-Id"] = rid
        return response

    for router in (health.router, workflows.router, submissions.router, jobs.router, artifacts.router,
                   uploads.router, channels.router, whatsapp.router, schedules.router, tenant.router,
                   forms.router, metrics.router):
        app.include_router(router)
    return app
