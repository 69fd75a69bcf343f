"""Rendering: the job's HTML in the Jinja2 sandbox of the template pool, and its PDF in a
capped child process.
Artifacts land under {tenant_id}/jobs/{job_id}/."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio import activity

from activities import errors, events
from activities.common import busy, fail, heartbeating, load_job
from lodestone.db import tenant_session
from lodestone.pdf import PdfRenderFailed, render_pdf
from lodestone.settings import Settings
from lodestone.storage import ObjectNotFound, ObjectStore, StoredObject, job_key
from lodestone.template_pool import TemplatePool
from lodestone.template_turns import TemplatePoolBusy
from lodestone.templating import TemplateLimitExceeded, TemplateRenderError, TemplateSecurityViolation
from lodestone.tenant_slots import SlotsBusy, tenant_slot
from schema.tables import Artifact, JobStep, utcnow


@dataclass
class RenderInput:
    tenant_id: str
    job_id: str
    kind: str  # "html" or "pdf"


@dataclass
class RenderResult:
    artifact_id: str
    key: str
    size: int


FILES = {"html": ("report.html", "text/html; charset=utf-8"), "pdf": ("report.pdf", "application/pdf")}


async def stored_artifact(
    engine: AsyncEngine, store: ObjectStore, tenant_id: str, job_id: str, kind: str
) -> Artifact | None:
    """The job's artifact of this kind when its object is there whole, else None (a row that
    outlived its object is rendered again; the upsert keeps the row's id)."""
    async with tenant_session(engine, tenant_id) as session:
        row = (
            await session.exec(select(Artifact).where(Artifact.job_id == uuid.UUID(job_id), Artifact.kind == kind))
        ).first()
    if row is None:
        return None
    try:
        if await store.size(row.key) == row.size:
            return row
    except ObjectNotFound:
        pass
    return None


async def record_artifact(
    engine: AsyncEngine, tenant_id: str, job_id: str, kind: str, stored: StoredObject, content_type: str
) -> uuid.UUID:
    """The artifact row of (job, kind), made or brought up to date; its id."""
    row = insert(Artifact).values(
        id=uuid.uuid4(),
        tenant_id=uuid.UUID(tenant_id),
        job_id=uuid.UUID(job_id),
        kind=kind,
        key=stored.key,
        content_type=content_type,
        size=stored.size,
        sha256=stored.sha256,
        created_at=utcnow(),
    )
    stmt: Any = row.on_conflict_do_update(
        index_elements=["job_id", "kind"],
        set_={"size": stored.size, "sha256": stored.sha256, "key": stored.key},
    ).returning(col(Artifact.id), literal_column("xmax = 0"))  # xmax 0: inserted, not updated
    async with tenant_session(engine, tenant_id) as session:
        artifact_id, inserted = (await session.execute(stmt)).one()
        if inserted:  # once per artifact, however often its render is retried
            data = {"artifact_id": str(artifact_id), "kind": kind, "url": f"/v1/artifacts/{artifact_id}"}
            await events.append(session, tenant_id, job_id, events.ARTIFACT, data)
    return uuid.UUID(str(artifact_id))


class RenderActivities:
    def __init__(self, engine: AsyncEngine, store: ObjectStore, settings: Settings, templates: TemplatePool) -> None:
        self.engine, self.store, self.settings, self.templates = engine, store, settings, templates

    @activity.defn
    async def render(self, inp: RenderInput) -> RenderResult:
        if done := await self._stored(inp):
            return done
        name, content_type = FILES[inp.kind]
        data = await (self._html(inp) if inp.kind == "html" else self._pdf(inp))
        stored = await self.store.put_bytes(job_key(inp.tenant_id, inp.job_id, name), data, content_type)
        return await self._record(inp, stored, content_type)

    async def _stored(self, inp: RenderInput) -> RenderResult | None:
        """A rendered artifact is never rendered again (a redriven job, a retried activity):
        its id, key and sha256 may already have gone out in a delivered webhook, and a PDF
        re-rendered from the same HTML is not byte-identical."""
        row = await stored_artifact(self.engine, self.store, inp.tenant_id, inp.job_id, inp.kind)
        return RenderResult(str(row.id), row.key, row.size) if row else None

    async def _html(self, inp: RenderInput) -> bytes:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            loaded = await load_job(session, inp.job_id)
            steps = (await session.exec(select(JobStep).where(JobStep.job_id == loaded.job.id))).all()
        outputs = {s.step_id: (await self.store.get_bytes(s.output_key)).decode() for s in steps if s.output_key}
        context = {
            "input": loaded.input,
            "steps": outputs,
            "job": {
                "id": str(loaded.job.id),
                "workflow_key": loaded.job.workflow_key,
                "created_at": loaded.job.created_at.isoformat(),
            },
        }
        try:
            async with heartbeating():
                html = await self.templates.render(
                    loaded.definition["template"], context, html=True, tenant=inp.tenant_id
                )
            return html.encode()
        except (TemplateRenderError, TemplateSecurityViolation, TemplateLimitExceeded) as e:
            raise fail(errors.code_of(e), f"template: {e}") from e
        except TemplatePoolBusy as e:
            raise busy(e) from e

    async def _pdf(self, inp: RenderInput) -> bytes:
        html = await self.store.get_bytes(job_key(inp.tenant_id, inp.job_id, FILES["html"][0]))
        try:
            async with tenant_slot(self.engine, self.settings, inp.tenant_id, "render"), heartbeating():
                return await render_pdf(
                    html, timeout=self.settings.pdf_timeout_seconds, memory_mb=self.settings.pdf_memory_mb
                )
        except PdfRenderFailed as e:
            raise fail(errors.PDF_RENDER_FAILED, str(e)) from e
        except SlotsBusy as e:
            raise busy(e) from e

    async def _record(self, inp: RenderInput, stored: StoredObject, content_type: str) -> RenderResult:
        artifact_id = await record_artifact(self.engine, inp.tenant_id, inp.job_id, inp.kind, stored, content_type)
        return RenderResult(str(artifact_id), stored.key, stored.size)
