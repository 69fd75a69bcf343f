"""The Lodestone worker: every workflow and activity in one Worker, with its clients
built here and injected. Stops cleanly on SIGINT/SIGTERM."""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.conversation import ConversationActivities
from activities.delivery import DeliveryActivities
from activities.ingest import IngestActivities
from activities.jobs import JobActivities
from activities.machine_callbacks import MachineCallbackActivities
from activities.machine_children import MachineChildActivities
from activities.machine_items import MachineItemActivities
from activities.machine_jobs import MachineJobActivities
from activities.machine_tasks import MachineTaskActivities
from activities.render import RenderActivities
from activities.running_slots import SlotActivities
from activities.scheduled_jobs import ScheduledJobActivities
from activities.steps import StepActivities
from activities.summary import SummaryActivities
from lodestone.db import make_engine
from lodestone.interceptors import ObservingInterceptor
from lodestone.llm import LLMClient, RoutingLLM
from lodestone.logs import setup_logging
from lodestone.metrics import SdkMetrics
from lodestone.netguard import guarded_client
from lodestone.pdf import PdfRendererUnavailable, default_renderer
from lodestone.secrets import SecretsProvider, make_secrets
from lodestone.settings import Settings, get_settings, secret_env
from lodestone.storage import ObjectStore, make_store
from lodestone.storage.partials import sweep_forever
from lodestone.template_pool import TemplatePool
from lodestone.temporal_client import connect
from lodestone.tracing import setup_tracing, shutdown_tracing
from lodestone.whatsapp import WhatsAppClient
from services.outbox import run_outbox
from services.retention import ensure_purge_schedule
from workflows.conversation import ConversationWorkflow
from workflows.machine_map import MapBatchWorkflow
from workflows.retention import PurgeMessagesWorkflow
from workflows.scheduled_job import ScheduledJobWorkflow
from workflows.state_machine import StateMachineWorkflow
from workflows.submission import SubmissionWorkflow
from workflows.summary import SummaryWorkflow

log = logging.getLogger("lodestone.worker")

HEARTBEAT_THROTTLE = timedelta(seconds=3)
SHUTDOWN_GRACE_SECONDS = 5.0  # for the outbox's job in hand and the listener, once `stop` is set
WORKFLOWS = [SubmissionWorkflow, StateMachineWorkflow, ConversationWorkflow, SummaryWorkflow, PurgeMessagesWorkflow]
WORKFLOWS.append(MapBatchWorkflow)
WORKFLOWS.append(ScheduledJobWorkflow)
# SubmissionWorkflow's module is loaded once and shared by every run instead of re-imported
# into each run's sandbox (about 50 KB a pipeline in flight). It keeps no state between runs
# (its globals are constants; a run's state lives on its workflow instance). Code passed
# through escapes the sandbox's checks on what it calls (clocks, randomness), so those checks
# run where every recorded history replays: cli.replay's Replayer sandboxes it.
SANDBOX_PASSTHROUGH = ("workflows.submission",)


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
    machines = MachineJobActivities(engine, deps.settings)
    tasks = MachineTaskActivities(engine, deps.store, deps.llm, deps.http, deps.settings, deps.secrets, templates)
    callbacks = MachineCallbackActivities(engine, deps.settings)
    items = MachineItemActivities(engine, deps.store)
    children = MachineChildActivities(engine)
    scheduled = ScheduledJobActivities(engine)
    slots = SlotActivities(engine, deps.settings)
    return [
        slots.claim_running_slot,
        jobs.load_plan,
        jobs.set_status,
        jobs.record_failure,
        jobs.mark_cancelled,
        steps.run_step,
        steps.record_step_failure,
        render.render,
        delivery.send_webhook,
        delivery.send_email,
        delivery.record_delivery_attempt,
        delivery.deliver_webhook,
        delivery.deliver_email,
        ingest.ingest_input,
        conversation.reply_to_batch,
        conversation.purge_message_bodies,
        summary.load_window,
        summary.run_stage,
        summary.render_summary_pdf,
        summary.send_document,
        summary.record_summary,
        machines.load_machine,
        machines.record_machine_events,
        machines.finish_machine,
        tasks.run_task,
        callbacks.issue_task_token,
        callbacks.close_task_token,
        items.prepare_map_items,
        items.read_map_page,
        items.write_map_results,
        items.finish_map,
        children.create_child_job,
        children.describe_child_job,
        children.save_machine_checkpoint,
        children.load_machine_checkpoint,
        scheduled.create_scheduled_job,
    ]


def build_worker(client: Client, engine, deps: WorkerDeps, task_queue: str | None = None) -> Worker:  # type: ignore[no-untyped-def]
    return Worker(
        client,
        task_queue=task_queue or deps.settings.temporal_task_queue,
        workflows=WORKFLOWS,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
        ),
        activities=activities(engine, deps),
        interceptors=[ObservingInterceptor()],
        max_concurrent_activities=50,
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A heartbeat reaches Temporal within this (not 80% of the heartbeat timeout), and its
        # answer is how a running activity learns its job was cancelled.
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    setup_tracing(settings, "lodestone-worker")
    # The SDK's runtime metrics are read only by the listener's /metrics.
    sdk = SdkMetrics() if settings.worker_metrics_port else None
    if sdk is not None:  # uvicorn and starlette load only for the listener
        from lodestone.worker_http import bind, serve, worker_app
    listening = bind(settings) if sdk is not None else None
    client = await connect(settings, runtime=sdk.runtime if sdk else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Whatever is made from here on is closed in `finally`, however far this got.
    closers: list[Callable[[], Awaitable[object]]] = []
    tasks: list[asyncio.Task[None]] = []  # each ends by itself once `stop` is set
    sweeper: asyncio.Task[None] | None = None
    listener = None
    try:
        engine = make_engine(
            settings.app_database_url,
            settings.db_pool_size,
            settings.db_connect_timeout_seconds,
            command_timeout=settings.db_command_timeout_seconds,
        )
        closers.append(engine.dispose)
        # One guarded client for every outbound call: webhooks and input fetching alike.
        http = guarded_client(settings.outbound_allow_cidrs, timeout=settings.webhook_timeout_seconds)
        closers.append(http.aclose)
        templates = TemplatePool.from_settings(settings)
        closers.append(templates.close)
        await templates.start()
        pdf = default_renderer()  # activities render PDFs through it; its fork server ends with us
        closers.append(pdf.close)
        try:
            await pdf.start()
        except PdfRendererUnavailable as e:
            log.warning("%s; the first PDF render tries again", e)
        deps = WorkerDeps(
            settings, make_store(settings), RoutingLLM(settings), http, make_secrets(settings, secret_env()), templates
        )
        closers += [deps.llm.close, deps.secrets.aclose]
        local = httpx.AsyncClient()  # loopback only: the SDK's metrics endpoint
        closers.append(local.aclose)
        worker = build_worker(client, engine, deps)
        # Partial uploads that crashed writers left (an API killed mid-upload, a lost ingest).
        sweeper = asyncio.create_task(
            sweep_forever(deps.store, settings.partial_max_age_seconds, settings.partial_sweep_interval_seconds)
        )
        # The outbox: starts committed jobs whose start the API could not make. It stops at
        # `stop`, between two jobs of a sweep.
        tasks.append(asyncio.create_task(run_outbox(client, engine, settings, stop)))
        log.info("retention purge schedule: %s", await ensure_purge_schedule(client, settings))
        if sdk is not None:
            listener = serve(worker_app(client, settings, sdk, local, stop))
            tasks.append(asyncio.create_task(listener.serve(sockets=[listening])))
        async with worker:
            log.info("worker polling task queue %s on %s", settings.temporal_task_queue, settings.temporal_target)
            await stop.wait()
            log.info("worker stopping: finishing in-flight activities")
        log.info("worker drained")
    finally:
        await shutdown(stop, tasks, [sweeper] if sweeper else [], listener, closers[::-1])
        if listening is not None:
            listening.close()


async def shutdown(
    stop: asyncio.Event,
    stoppable: list[asyncio.Task[None]],
    cancel: list[asyncio.Task[None]],
    listener: Any,
    closers: list[Callable[[], Awaitable[object]]],
) -> None:
    """End every background task and close every client, each whatever the others do.
    `stoppable` tasks watch `stop` and get SHUTDOWN_GRACE_SECONDS to end; `cancel`ed ones do not."""
    stop.set()
    if listener is not None:
        listener.should_exit = True
    for task in cancel:
        task.cancel()
    if stoppable:
        for task in (await asyncio.wait(stoppable, timeout=SHUTDOWN_GRACE_SECONDS))[1]:
            task.cancel()
    for result in await asyncio.gather(*stoppable, *cancel, return_exceptions=True):
        if isinstance(result, Exception):
            log.warning("a background task ended with %s", type(result).__name__)
    for close in closers:
        try:
            await close()
        except Exception as e:  # noqa: BLE001 - the next one still closes
            log.warning("closing %s failed: %s", getattr(close, "__qualname__", "a client"), type(e).__name__)
    shutdown_tracing()


if __name__ == "__main__":
    setup_logging()
    asyncio.run(run_worker())
