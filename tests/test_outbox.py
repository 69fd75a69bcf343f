"""The outbox: outbox_due_jobs gives the app role the ids and tenant ids of unstarted pending
jobs old enough to be due, and nothing else; one replica sweeps at a time; a start Temporal
refuses backs off; a job never started within OUTBOX_MAX_AGE_SECONDS is failed, not started;
migration 0009 records every older job as started."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col, delete, select

from lodestone.db import tenant_session
from schema.migrate import upgrade
from schema.tables import Job, JobFailure, Submission
from services.outbox import BATCH, LOCK, NOT_STARTED, due_jobs, sweep
from tests.helpers import create_workflow, definition, wait_job


@asynccontextmanager
async def outbox_paused(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Hold the sweep's advisory lock: no replica's outbox sweeps meanwhile."""
    async with engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
        yield conn


async def _jobs(
    engine,
    tenant_id,
    wf,
    n: int = 1,
    *,
    age: timedelta = timedelta(minutes=1),  # type: ignore[no-untyped-def]
    **fields,
) -> list[Job]:
    at = datetime.now(UTC) - age
    jobs = []
    async with tenant_session(engine, tenant_id) as s:
        for _ in range(n):
            submission = Submission(
                tenant_id=tenant_id, workflow_definition_id=uuid.UUID(wf["id"]), input={"company": "Outbox"}
            )
            s.add(submission)
            await s.flush()
            job = Job(
                tenant_id=tenant_id,
                submission_id=submission.id,
                workflow_key=wf["key"],
                workflow_definition_id=submission.workflow_definition_id,
                created_at=at,
                updated_at=at,
                **fields,
            )
            s.add(job)
            jobs.append(job)
    return jobs


async def _drop(engine, jobs: list[Job]) -> None:  # type: ignore[no-untyped-def]
    for job in jobs:
        async with tenant_session(engine, job.tenant_id) as s:
            await s.execute(delete(JobFailure).where(col(JobFailure.job_id) == job.id))
            await s.execute(delete(Job).where(col(Job.id) == job.id))
            await s.execute(delete(Submission).where(col(Submission.id) == job.submission_id))


async def _get(engine, job: Job) -> Job:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, job.tenant_id) as s:
        return await s.get(Job, job.id)


async def _until(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (found := await predicate()):
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        await asyncio.sleep(0.3)
    return found


def _small(wf_def: dict) -> dict:  # type: ignore[type-arg]
    return {**wf_def, "steps": wf_def["steps"][:1], "delivery": [], "template": "<p>{{ input.company }}</p>"}


async def test_the_outbox_scan_names_due_jobs_only_and_opens_no_rows(engine, tenant_a, tenant_b):
    wf_a = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    wf_b = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    async with outbox_paused(engine) as conn:
        [due_a] = await _jobs(engine, tenant_a.id, wf_a)
        [due_b] = await _jobs(engine, tenant_b.id, wf_b)
        [started] = await _jobs(engine, tenant_a.id, wf_a, workflow_started_at=datetime.now(UTC))
        [queued] = await _jobs(engine, tenant_a.id, wf_a, status="queued")
        [backing_off] = await _jobs(
            engine, tenant_a.id, wf_a, outbox_attempts=1, outbox_retry_at=datetime.now(UTC) + timedelta(hours=1)
        )
        # Fresh: its API request may be starting it right now. No cutoff lists it.
        [fresh] = await _jobs(engine, tenant_a.id, wf_a, age=timedelta(0))
        try:
            found = await due_jobs(conn, timedelta(hours=-1), limit=10_000)
            assert (due_a.id, tenant_a.id) in found and (due_b.id, tenant_b.id) in found
            assert {started.id, queued.id, backing_off.id, fresh.id}.isdisjoint({job_id for job_id, _ in found})
            async with engine.connect() as other, other.begin():
                await other.execute(text("SELECT set_config('app.outbox_scan', 'on', true)"))
                assert (await other.execute(text("SELECT count(*) FROM jobs"))).scalar_one() == 0
                scan = await other.execute(text("SELECT * FROM outbox_due_jobs(now() + interval '1 hour', 1)"))
                row = scan.mappings().one()
                assert set(row) == {"job_id", "tenant_id"}
                assert (await other.execute(text("SELECT count(*) FROM jobs"))).scalar_one() == 0
                huge = await other.execute(text("SELECT count(*) FROM outbox_due_jobs(now(), 2147483647)"))
                assert huge.scalar_one() <= 1000
        finally:
            await _drop(engine, [due_a, due_b, started, queued, backing_off, fresh])


async def test_one_replica_sweeps_at_a_time(engine, temporal, settings, tenant_a):
    """While another holds the sweep's lock, a sweep starts nothing, nor does the session
    worker's outbox; once it is released the job is started."""
    wf = await create_workflow(tenant_a.api, _small(definition("http://127.0.0.1:9/hook")))
    async with outbox_paused(engine):
        [job] = await _jobs(engine, tenant_a.id, wf)
        assert await sweep(temporal, engine, settings) == 0
        await asyncio.sleep(3)  # three of the worker's OUTBOX_INTERVAL_SECONDS
        assert (await _get(engine, job)).workflow_started_at is None
    done = await wait_job(tenant_a.api, str(job.id), timeout=90)
    assert done["status"] == "delivered", done
    assert (await _get(engine, job)).workflow_started_at is not None


async def test_a_start_temporal_refuses_backs_off_and_holds_up_no_newer_job(engine, tenant_a):
    """A full batch of jobs whose start Temporal refuses (a search attribute over its size
    limit) at the head of the outbox: the job behind them is still started."""
    wf = await create_workflow(tenant_a.api, _small(definition("http://127.0.0.1:9/hook")))
    refused = await _jobs(engine, tenant_a.id, {**wf, "key": "k" * 3000}, BATCH, age=timedelta(minutes=2))
    [behind] = await _jobs(engine, tenant_a.id, wf)
    try:
        done = await wait_job(tenant_a.api, str(behind.id), timeout=90)
        assert done["status"] == "delivered", done
        head = await _until(lambda: _backing_off(engine, refused[0]), 30, "a refused job backing off")
        assert head.status == "pending" and head.workflow_started_at is None and head.outbox_retry_at is not None
    finally:
        await _drop(engine, refused)


async def _backing_off(engine, job: Job) -> Job | None:  # type: ignore[no-untyped-def]
    row = await _get(engine, job)
    return row if row.outbox_attempts >= 1 else None


async def test_a_job_never_started_within_the_max_age_is_failed_not_started(engine, temporal, settings, tenant_a):
    wf = await create_workflow(tenant_a.api, _small(definition("http://127.0.0.1:9/hook")))
    [old] = await _jobs(engine, tenant_a.id, wf, age=timedelta(seconds=settings.outbox_max_age_seconds + 60))

    async def failed() -> Job | None:
        job = await _get(engine, old)
        return job if job.status != "pending" else None

    job = await _until(failed, 30, "the job leaving pending")
    assert job.status == "failed" and job.error.startswith(NOT_STARTED), job
    async with tenant_session(engine, tenant_a.id) as s:
        letter = (await s.exec(select(JobFailure).where(col(JobFailure.job_id) == old.id))).one()
    assert letter.error_code == NOT_STARTED
    assert [w async for w in temporal.list_workflows(f"WorkflowId = '{old.id}'")] == []


async def test_a_job_committed_but_never_started_is_started_by_the_outbox(engine, tenant_a):
    """As if the API were killed between its commit and the start: nobody ever calls Temporal
    for this job, and nobody retries; the session worker's outbox starts it and it runs."""
    wf = await create_workflow(tenant_a.api, _small(definition("http://127.0.0.1:9/hook")))
    submission = Submission(
        tenant_id=tenant_a.id, workflow_definition_id=uuid.UUID(wf["id"]), input={"company": "Orphan"}
    )
    job = Job(
        tenant_id=tenant_a.id,
        submission_id=submission.id,
        workflow_definition_id=submission.workflow_definition_id,
        workflow_key=wf["key"],
    )
    async with tenant_session(engine, tenant_a.id) as s:
        s.add(submission)
        await s.flush()
        s.add(job)
    done = await wait_job(tenant_a.api, str(job.id), timeout=90)
    assert done["status"] == "delivered", done
    assert (await _get(engine, job)).workflow_started_at is not None


async def test_migration_0009_records_older_jobs_as_started(stack):
    """A job from before the outbox that is still pending (say terminated before its first
    activity) was started then: the outbox must not start it again."""
    port, name = stack.settings.postgres_port, f"outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    await admin.execute(f"CREATE DATABASE {name} OWNER lodestone_owner")
    try:
        db = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=name)
        try:
            await db.execute(
                "GRANT USAGE ON SCHEMA public TO lodestone_app; ALTER SCHEMA public OWNER TO lodestone_owner"
            )
            url = f"postgresql+asyncpg://lodestone_owner@127.0.0.1:{port}/{name}"
            await asyncio.to_thread(upgrade, url, "0008")
            tenant, wf, old, fresh = (uuid.uuid4() for _ in range(4))
            await db.execute(
                "INSERT INTO tenants (id, name, webhook_secret, secret_refs, created_at) "
                "VALUES ($1, 't', 's', '{}', now())",
                tenant,
            )
            await db.execute(
                "INSERT INTO workflow_definitions (id, tenant_id, key, version, definition, created_at) "
                "VALUES ($1, $2, 'k', 1, '{}', now())",
                wf,
                tenant,
            )
            for job, age in ((old, "2 hours"), (fresh, "0 seconds")):
                sub = uuid.uuid4()
                await db.execute(
                    "INSERT INTO submissions (id, tenant_id, workflow_definition_id, input, created_at) "
                    "VALUES ($1, $2, $3, '{}', now())",
                    sub,
                    tenant,
                    wf,
                )
                await db.execute(
                    "INSERT INTO jobs (id, tenant_id, submission_id, workflow_definition_id, "
                    "workflow_key, status, created_at, updated_at) VALUES "
                    f"($1, $2, $3, $4, 'k', 'pending', now() - interval '{age}', now())",
                    job,
                    tenant,
                    sub,
                    wf,
                )
            await asyncio.to_thread(upgrade, url, "0009")
            rows = {r["id"]: r for r in await db.fetch("SELECT id, created_at, workflow_started_at FROM jobs")}
            assert rows[old]["workflow_started_at"] == rows[old]["created_at"]
            assert rows[fresh]["workflow_started_at"] is None
            forced = await db.fetchval("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'jobs'")
            assert forced
        finally:
            await db.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
