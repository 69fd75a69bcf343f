"""The sample job: a demo tenant submits a 4-step lead-magnet workflow (two steps run in
parallel) and receives the HTML and PDF by a signed webhook."""

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from devstack.demo_conversation import ConversationResult, WhatsAppDev, run_conversation
from devstack.demo_machine import MachineResult, run_machine
from devstack.graph_standin import GraphAPIStandIn
from devstack.keys import mint_token
from devstack.receiver import WebhookReceiver
from lodestone.db import make_engine
from lodestone.llm import LOCAL_MODEL
from lodestone.settings import Settings
from schema.statuses import TERMINAL
from services.tenants import create_tenant, get_tenant

DEMO_TENANT = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")


def demo_definition(webhook_url: str, model: str = LOCAL_MODEL) -> dict[str, Any]:
    """The lead-magnet definition, each step on `model`."""
    return {
        "key": "lead-magnet",
        "name": "Lead magnet report",
        "input_schema": {
            "type": "object",
            "required": ["company", "email"],
            "properties": {
                "company": {"type": "string", "minLength": 1},
                "email": {"type": "string"},
                "goal": {"type": "string"},
            },
        },
        "steps": [
            {
                "id": "research",
                "model": model,
                "inputs": {"company": "input.company"},
                "instructions": "Research {{ company }} and list what matters to its buyers.",
            },
            {
                "id": "angles",
                "model": model,
                "inputs": {"research": "steps.research"},
                "instructions": "From this research, propose three angles:\n{{ research }}",
            },
            {
                "id": "outline",
                "model": model,
                "inputs": {"research": "steps.research"},
                "instructions": "Outline a two-page report from this research:\n{{ research }}",
            },
            {
                "id": "write",
                "model": model,
                "inputs": {"angles": "steps.angles", "outline": "steps.outline", "company": "input.company"},
                "instructions": "Write the report for {{ company }}.\nAngles:\n{{ angles }}\nOutline:\n{{ outline }}",
            },
        ],
        "template": (
            "<!doctype html><html><head><meta charset='utf-8'><title>{{ input.company }}</title>"
            "<style>body{font-family:'DejaVu Sans',sans-serif;margin:2em}h1{color:#234}</style></head>"
            "<body><h1>Report for {{ input.company }}</h1>{{ steps.write | paragraphs }}"
            "<h2>Angles</h2>{{ steps.angles | paragraphs }}<p><small>Job {{ job.id }}</small></p></body></html>"
        ),
        "outputs": ["html", "pdf"],
        "delivery": [{"type": "webhook", "url": webhook_url}],
    }


async def ensure_demo_tenant(settings: Settings) -> str:
    engine = make_engine(settings.app_database_url, 2)
    try:
        tenant = await get_tenant(engine, DEMO_TENANT) or await create_tenant(engine, "Demo", DEMO_TENANT)
        return tenant.webhook_secret
    finally:
        await engine.dispose()


@dataclass
class DemoResult:
    job_id: str
    status: str
    job_url: str
    temporal_link: str
    artifact_paths: list[str]
    webhook_verified: bool
    conversation: ConversationResult | None = None
    machine: MachineResult | None = None

    @property
    def ok(self) -> bool:
        talked = self.conversation is None or self.conversation.ok
        machine = self.machine is None or self.machine.ok
        return self.status == "delivered" and self.webhook_verified and talked and machine

    def lines(self) -> list[str]:
        out = [
            f"job:       {self.job_url} (status: {self.status})",
            *[f"artifact:  {path}" for path in self.artifact_paths],
            f"temporal:  {self.temporal_link}",
            f"webhook:   {'signature verified' if self.webhook_verified else 'NOT verified'}",
        ]
        if self.conversation is not None:
            c = self.conversation
            out.append(
                "whatsapp:  "
                + (
                    f"one reply to 3 messages, {c.reply_delay:.1f}s after the last"
                    if c.reply_delay is not None
                    else "NO reply"
                )
            )
            out.append(f"summary:   {c.summary_pdf or 'NO summary PDF'}")
        if self.machine is not None:
            out.extend(self.machine.lines())
        return out


def _ok(resp: httpx.Response) -> dict[str, Any]:
    if resp.is_error:
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url.path} answered {resp.status_code}: {resp.text[:500]}"
        )
    return resp.json()


def _follow(
    api: httpx.Client, job_id: str, console: Console, timeout: float, alive: Callable[[], None]
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=False
    ) as bar:
        task = bar.add_task(f"job {job_id}: pending")
        while True:
            alive()
            job = _ok(api.get(f"/v1/jobs/{job_id}"))
            steps = ", ".join(f"{s['id']}={s['status']}" for s in job["steps"]) or "no steps yet"
            bar.update(task, description=f"job {job_id}: {job['status']} [{steps}]")
            if job["status"] in TERMINAL or time.monotonic() > deadline:
                return job
            time.sleep(0.3)


def run_demo(
    settings: Settings,
    console: Console,
    alive: Callable[[], None],
    graph: GraphAPIStandIn | None = None,
    timeout: float = 180.0,
    webhook_port: int = 0,
    machine_port: int | None = None,
    model: str = LOCAL_MODEL,
    keep: ExitStack | None = None,
) -> DemoResult:
    """`alive` raises when a process the demo needs has died, so waiting stops there. The
    webhook receiver listens on webhook_port and the state machine's service on machine_port
    (no state machine without it), the loopback ports the stack lets them reach. The sample
    job's steps run on `model`. With `keep` the receiver and the service stay up until that
    stack closes, so the stored samples can be submitted again (`lodestone dev`)."""
    secret = asyncio.run(ensure_demo_tenant(settings))
    token = mint_token(
        settings.data_path,
        issuer=settings.issuer,
        audience=settings.auth_audience,
        tenant_id=str(DEMO_TENANT),
        roles=["admin"],
        subject="demo",
    )
    with (
        ExitStack() as own,
        httpx.Client(base_url=settings.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api,
    ):
        receiver = (keep or own).enter_context(WebhookReceiver(secret, port=webhook_port))
        _ok(api.post("/v1/workflows", json=demo_definition(receiver.url, model)))
        body = {
            "workflow_key": "lead-magnet",
            "input": {"company": "Acme Anvils", "email": "buyer@example.com", "goal": "more leads"},
        }
        job_id = _ok(api.post("/v1/submissions", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}))["job_id"]
        job = _follow(api, job_id, console, timeout, alive)
        hook = receiver.wait_for_success(timeout=10) if job["status"] == "delivered" else None
        machine = None if machine_port is None else run_machine(api, secret, machine_port, console, alive, keep=keep)
    objects = settings.data_path / "objects"
    paths = [str(objects / f"{DEMO_TENANT}/jobs/{job_id}/report.{a['kind']}") for a in job["artifacts"]]
    if settings.s3_endpoint:
        paths = [f"s3://{settings.s3_bucket}/{DEMO_TENANT}/jobs/{job_id}/report.{a['kind']}" for a in job["artifacts"]]
    result = DemoResult(
        job_id,
        job["status"],
        job["links"]["self"],
        job["links"]["temporal"],
        paths,
        bool(hook and hook.verified),
        machine=machine,
    )
    if graph is not None:
        result.conversation = asyncio.run(_conversation(settings, token, graph, console, alive))
    return result


async def _conversation(
    settings: Settings, token: str, graph: GraphAPIStandIn, console: Console, alive: Callable[[], None]
) -> ConversationResult:
    async with httpx.AsyncClient(
        base_url=settings.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        return await run_conversation(
            settings, api, WhatsAppDev.load(settings.data_path), graph, DEMO_TENANT, console.log, alive
        )
