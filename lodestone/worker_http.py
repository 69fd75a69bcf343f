"""The worker's small HTTP listener: GET /metrics, GET /health, and POST /drain, which
stops polling and lets in-flight activities finish before the process exits.

POST /drain takes `Authorization: Bearer <WORKER_DRAIN_TOKEN>` (401 without it or with
another; 403 while WORKER_DRAIN_TOKEN is unset), so nothing that can merely reach the
port (a tenant's webhook, under the dev stack) stops the worker. GET /metrics shows
tenant-labelled series only to a bearer METRICS_TOKEN, like the API's."""

import asyncio
import logging
import socket
from datetime import timedelta

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from lodestone import metrics
from lodestone.settings import Settings

log = logging.getLogger("lodestone.worker")
QUEUE_TYPES = {"workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY}


async def refresh_backlog(client: Client, settings: Settings) -> None:
    async def one(name: str, kind: TaskQueueType.ValueType) -> None:
        try:
            resp = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=settings.temporal_namespace,
                    task_queue=TaskQueue(name=settings.temporal_task_queue),
                    task_queue_type=kind,
                    report_stats=True,
                ),
                timeout=timedelta(seconds=2),
            )
        except Exception as e:  # a scrape must not fail because the frontend is slow
            log.warning("task queue backlog unavailable: %s", e)
            return
        metrics.TASK_QUEUE_BACKLOG.labels(settings.temporal_task_queue, name).set(resp.stats.approximate_backlog_count)

    await asyncio.gather(*(one(name, kind) for name, kind in QUEUE_TYPES.items()))


def worker_app(
    client: Client, settings: Settings, sdk: metrics.SdkMetrics, http: httpx.AsyncClient, drain: asyncio.Event
) -> Starlette:
    async def get_metrics(request: Request) -> Response:
        await refresh_backlog(client, settings)
        tenants = metrics.bearer_matches(request.headers.get("authorization"), settings.metrics_token)
        body, content_type = await metrics.render(sdk, http, tenants)
        return Response(body, media_type=content_type)

    async def health(_: Request) -> Response:
        return JSONResponse(
            {
                "status": "draining" if drain.is_set() else "polling",
                "task_queue": settings.temporal_task_queue,
                "activities_in_flight": metrics.in_flight(),
            }
        )

    async def post_drain(request: Request) -> Response:
        if not settings.worker_drain_token:
            return JSONResponse({"error": "draining over HTTP is off: WORKER_DRAIN_TOKEN is unset"}, status_code=403)
        if not metrics.bearer_matches(request.headers.get("authorization"), settings.worker_drain_token):
            return JSONResponse(
                {"error": "POST /drain needs Authorization: Bearer <WORKER_DRAIN_TOKEN>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not drain.is_set():
            log.info("drain requested: no new tasks will be polled")
            drain.set()
        return JSONResponse({"status": "draining", "activities_in_flight": metrics.in_flight()}, status_code=202)

    return Starlette(
        routes=[Route("/metrics", get_metrics), Route("/health", health), Route("/drain", post_drain, methods=["POST"])]
    )


def bind(settings: Settings) -> socket.socket:
    """The listener's socket, bound before the worker connects anywhere: a port that is taken
    stops the worker at once with this error, instead of leaving it running with no listener."""
    address = (settings.worker_metrics_host, settings.worker_metrics_port)
    try:
        return socket.create_server(address)
    except OSError as e:
        raise SystemExit(f"the worker cannot listen on {address[0]}:{address[1]} (WORKER_METRICS_PORT): {e}") from e


def serve(app: Starlette) -> uvicorn.Server:
    """A server for the socket from bind(), which carries the address."""
    return uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
