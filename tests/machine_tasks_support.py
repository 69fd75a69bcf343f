"""What the state machine Task tests share: the activity built as the worker builds it (on the
session's PostgreSQL, store, LLM stand-in and secrets), a job row to hang usage, artifacts
and deliveries on."""

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.machine_tasks import MachineTaskActivities, MachineTaskInput
from lodestone.db import tenant_session
from lodestone.llm import RoutingLLM
from lodestone.netguard import guarded_client
from lodestone.secrets import make_secrets
from lodestone.settings import Settings
from lodestone.storage import make_store
from lodestone.template_pool import TemplatePool
from schema.tables import Job, Submission, WorkflowDefinition


def build(settings: Settings, engine: AsyncEngine, http: httpx.AsyncClient | None = None) -> MachineTaskActivities:
    """As worker.py builds activities: the guarded client allows only what the settings allow."""
    return MachineTaskActivities(
        engine,
        make_store(settings),
        RoutingLLM(settings),
        http or guarded_client(settings.outbound_allow_cidrs),
        settings,
        make_secrets(settings, {}),
        TemplatePool.from_settings(settings),
    )


async def close(acts: MachineTaskActivities) -> None:
    await acts.deps.http.aclose()
    await acts.deps.templates.close()
    await acts.deps.llm.close()


async def make_job(engine: AsyncEngine, tenant_id: uuid.UUID, key: str = "machine") -> str:
    async with tenant_session(engine, tenant_id) as s:
        definition = WorkflowDefinition(tenant_id=tenant_id, key=f"{key}-{uuid.uuid4().hex[:8]}", version=1)
        definition.definition = {"kind": "state_machine"}
        submission = Submission(tenant_id=tenant_id, workflow_definition_id=definition.id, input={})
        job = Job(
            tenant_id=tenant_id,
            submission_id=submission.id,
            workflow_definition_id=definition.id,
            workflow_key=definition.key,
        )
        s.add(definition)
        await s.flush()
        s.add(submission)
        await s.flush()
        s.add(job)
    return str(job.id)


def task(tenant_id: uuid.UUID, job_id: str, path: str, resource: str, payload: Any, bindings: list[Any], **kw: Any):  # type: ignore[no-untyped-def]
    return MachineTaskInput(str(tenant_id), job_id, path, resource, payload, bindings, **kw)
