"""The Lodestone worker: every workflow and activity in one Worker, with its clients
built here and injected. Stops cleanly on SIGINT/SIGTERM."""

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.conversation import ConversationActivities
from activities.delivery import DeliveryActivities
from activities.ingest import IngestActivities
from activities.jobs import JobActivities
from activities.render import RenderActivities
from activities.steps import StepActivities
from activities.summary import SummaryActivities
from lodestone.db import make_engine
from lodestone.interceptors import ObservingInterceptor
from lodestone.llm import LLMClient, RoutingLLM
from lodestone.logs import setup_logging
from lodestone.metrics import SdkMetrics
from lodestone.netguard import guarded_client
from lodestone.secrets import SecretsProvider, make_secrets
from lodestone.settings import Settings, get_settings, secret_env
from lodestone.storage import ObjectStore, make_store
from lodestone.storage.partials import sweep_forever
from lodestone.template_pool import TemplatePool
from lodestone.temporal_client import connect
from lodestone.tracing import setup_tracing, shutdown_tracing
from lodestone.whatsapp import WhatsAppClient
from lodestone.worker_http import bind, serve, worker_app
from services.outbox import run_outbox
from services.retention import ensure_purge_schedule
from workflows.conversation import ConversationWorkflow
from workflows.retention import PurgeMessagesWorkflow
from workflows.submission import SubmissionWorkflow
from workflows.summary import SummaryWorkflow

log = logging.getLogger("lodestone.worker")

WORKFLOWS = [SubmissionWorkflow, ConversationWorkflow, SummaryWorkflow, PurgeMessagesWorkflow]


@dataclass
class WorkerDeps:
    settings: Settings
    store: ObjectStore
    llm: LLMClient
    http: httpx.AsyncClient
    secrets: SecretsProvider
    # Started by run_worker; a pool built here starts its children at its first render.
    templates: TemplatePool | None = field(default=None)


def activities(engine, deps: WorkerDeps) -> list:  # type: ignore[no-untyped-def]
    templates = deps.templates or TemplatePool.from_settings(deps.settings)
    jobs = JobActivities(engine, deps.settings)
    steps = StepActivities(engine, deps.store, deps.llm, deps.settings, deps.secrets, templates)
    render = RenderActivities(engine, deps.store, deps.settings, templates)
    delivery = DeliveryActivities(engine, deps.http, deps.settings, deps.secrets)
    ingest = IngestActivities(engine, deps.store, deps.http, deps.settings)
    whatsapp = WhatsAppClient(deps.http, deps.settings)
    conversation = ConversationActivities(engine, deps.llm, whatsapp, deps.settings, deps.secrets)
    summary = SummaryActivities(engine, deps.store, deps.llm, whatsapp, deps.settings, deps.secrets)
    return [jobs.load_plan, jobs.set_status, jobs.record_failure, steps.run_step, steps.record_step_failure,
            render.render, delivery.send_webhook, delivery.send_email, delivery.record_delivery_attempt,
            delivery.deliver_webhook, delivery.deliver_email, ingest.ingest_input, conversation.reply_to_batch,
            conversation.purge_message_bodies, summary.load_window, summary.run_stage,
            summary.render_summary_pdf, summary.send_document, summary.record_summary]


def build_worker(client: Client, engine, deps: WorkerDeps, task_queue: str | None = None) -> Worker:  # type: ignore[no-untyped-def]
    return Worker(
        client,
        task_queue=task_queue or deps.settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=activities(engine, deps),
        interceptors=[ObservingInterceptor()],
        max_concurrent_activities=50,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    setup_tracing(settings, "lodestone-worker")
    # The SDK's runtime metrics are read only by the listener's /metrics.
    sdk = SdkMetrics() if settings.worker_metrics_port else None
    listening = bind(settings) if sdk is not None else None
    client = await connect(settings, runtime=sdk.runtime if sdk else None)
    engine = make_engine(settings.app_database_url, settings.db_pool_size, settings.db_connect_timeout_seconds)
    # One guarded client for every outbound call: webhooks and input fetching alike.
    http = guarded_client(settings.outbound_allow_cidrs, timeout=settings.webhook_timeout_seconds)
    templates = TemplatePool.from_settings(settings)
    await templates.start()
    deps = WorkerDeps(settings, make_store(settings), RoutingLLM(settings), http,
                      make_secrets(settings, secret_env()), templates)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = build_worker(client, engine, deps)
    # Partial uploads that crashed writers left (an API killed mid-upload, a lost ingest).
    sweeper = asyncio.create_task(sweep_forever(deps.store, settings.partial_max_age_seconds,
                                                settings.partial_sweep_interval_seconds))
    log.info("retention purge schedule: %s", await ensure_purge_schedule(client, settings))
    local = httpx.AsyncClient()  # loopback only: the SDK's metrics endpoint
    listener = None
    if sdk is not None:
        listener = serve(worker_app(client, settings, sdk, local, stop))
        listener_task = asyncio.create_task(listener.serve(sockets=[listening]))
    # The outbox: starts committed jobs whose start the API could not make.
    outbox = asyncio.create_task(run_outbox(client, engine, settings, stop))
    try:
        async with worker:
            log.info("worker polling task queue %s on %s", settings.temporal_task_queue,
                     settings.temporal_target)
            await stop.wait()
            log.info("worker stopping: finishing in-flight activities")
        log.info("worker drained")
    finally:
        sweeper.cancel()
        stop.set()
        await outbox
        if listener is not None:
            listener.should_exit = True
            await listener_task
        with contextlib.suppress(Exception):
            await local.aclose()
            await deps.http.aclose()
            await deps.llm.close()
            await deps.secrets.aclose()
        await templates.close()
        await engine.dispose()
        shutdown_tracing()


if __name__ == "__main__":
    setup_logging()
    asyncio.run(run_worker())
