"""The outbox's cross-tenant scan: outbox_due_jobs gives the app role the ids and tenant ids
of unstarted pending jobs, and nothing else; its opt-in opens no row to the app role."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlmodel import col, delete
from sqlmodel.ext.asyncio.session import AsyncSession

from lodestone.db import tenant_session
from schema.tables import Job, Submission
from services.outbox import due_jobs
from tests.helpers import create_workflow, definition, wait_job


async def _job(engine, tenant_id, wf, **fields) -> Job:  # type: ignore[no-untyped-def]
    # Created "in the future", so the session worker's own sweeps leave these rows alone.
    later = datetime.now(UTC) + timedelta(minutes=30)
    submission = Submission(tenant_id=tenant_id, workflow_definition_id=uuid.UUID(wf["id"]), input={})
    job = Job(tenant_id=tenant_id, submission_id=submission.id,
              workflow_definition_id=submission.workflow_definition_id, workflow_key=wf["key"],
              created_at=later, updated_at=later, **fields)
    async with tenant_session(engine, tenant_id) as s:
        s.add(submission)
        await s.flush()
        s.add(job)
    return job


async def test_the_outbox_scan_names_unstarted_jobs_and_opens_no_rows(engine, tenant_a, tenant_b):
    wf_a = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    wf_b = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    due_a = await _job(engine, tenant_a.id, wf_a)
    due_b = await _job(engine, tenant_b.id, wf_b)
    started = await _job(engine, tenant_a.id, wf_a, workflow_started_at=datetime.now(UTC))
    queued = await _job(engine, tenant_a.id, wf_a, status="queued")
    try:
        found = await due_jobs(engine, timedelta(hours=-1), limit=10_000)
        assert (due_a.id, tenant_a.id) in found and (due_b.id, tenant_b.id) in found
        assert {started.id, queued.id}.isdisjoint({job_id for job_id, _ in found})
        async with AsyncSession(engine) as s, s.begin():
            await s.execute(text("SELECT set_config('app.outbox_scan', 'on', true)"))
            assert (await s.execute(text("SELECT count(*) FROM jobs"))).scalar_one() == 0
            scan = await s.execute(text("SELECT * FROM outbox_due_jobs(now() + interval '1 hour', 1)"))
            row = scan.mappings().one()
            assert set(row) == {"job_id", "tenant_id"}
            assert (await s.execute(text("SELECT count(*) FROM jobs"))).scalar_one() == 0
    finally:
        for job in (due_a, due_b, started, queued):
            async with tenant_session(engine, job.tenant_id) as s:
                await s.execute(delete(Job).where(col(Job.id) == job.id))
                await s.execute(delete(Submission).where(col(Submission.id) == job.submission_id))


async def test_a_job_committed_but_never_started_is_started_by_the_outbox(engine, tenant_a):
    """As if the API were killed between its commit and the start: nobody ever calls Temporal
    for this job, and nobody retries; the session worker's outbox starts it and it runs."""
    full = definition("http://127.0.0.1:9/hook")
    wf = await create_workflow(tenant_a.api, {**full, "steps": full["steps"][:1], "delivery": [],
                                              "template": "<p>{{ input.company }}</p>"})
    submission = Submission(tenant_id=tenant_a.id, workflow_definition_id=uuid.UUID(wf["id"]),
                            input={"company": "Orphan"})
    job = Job(tenant_id=tenant_a.id, submission_id=submission.id,
              workflow_definition_id=submission.workflow_definition_id, workflow_key=wf["key"])
    async with tenant_session(engine, tenant_a.id) as s:
        s.add(submission)
        await s.flush()
        s.add(job)
    done = await wait_job(tenant_a.api, str(job.id), timeout=90)
    assert done["status"] == "delivered", done
    async with tenant_session(engine, tenant_a.id) as s:
        assert (await s.get(Job, job.id)).workflow_started_at is not None
