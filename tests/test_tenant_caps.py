"""Limits shared by every process: a tenant's submission rate is one token bucket in
PostgreSQL for every API process, and its LLM calls and PDF renders in flight are capped
across every worker by leases (lodestone/tenant_slots.py), a dead holder's lease expiring."""

import asyncio
import time
import uuid
from datetime import datetime

import pytest
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment

from lodestone.db import tenant_session
from lodestone.tenant_limits import LimitOverrides
from lodestone.tenant_slots import SlotsBusy, tenant_slot
from lodestone.token_bucket import Rate, take
from services.tenants import set_limit_overrides
from tests.conftest import _tenant
from tests.helpers import create_workflow, definition, in_process_api, submit, wait_job
from tests.machine_tasks_support import build, close, make_job, task

pytestmark = pytest.mark.timeout(90)


def one_step(model: str) -> dict:  # type: ignore[type-arg]
    """One LLM step and no delivery: the job's only LLM call is the step's."""
    full = definition("http://127.0.0.1:9/hook", model=model)
    return {**full, "steps": full["steps"][:1], "template": "<p>{{ input.company }}</p>", "delivery": []}


async def test_two_api_processes_share_one_tenants_bucket(settings, engine):
    """The session's API (its own process) and one in this process: a burst of 4 for the
    tenant is 4 across both, not 4 each."""
    tenant = await _tenant(settings, engine, "Two APIs")
    token = tenant.api.headers["authorization"].removeprefix("Bearer ")
    wf = await create_workflow(tenant.api, one_step("offline"))
    put = await tenant.api.put("/v1/tenant/limits", json={"submissions_per_minute": 1, "submissions_burst": 4})
    assert put.status_code == 200, put.text
    async with in_process_api(settings, token) as here:
        answers = [await submit(api, wf["key"], {"company": f"c{i}"}) for i in range(5) for api in (tenant.api, here)]
    codes = [a.status_code for a in answers]
    assert sorted(codes) == [202] * 4 + [429] * 6, codes
    assert codes[:4] == [202] * 4  # in arrival order, from both processes
    refused = answers[4]
    assert refused.json()["code"] == "rate_limited" and 1 <= int(refused.headers["retry-after"]) <= 61
    await tenant.api.aclose()


async def test_a_refused_submission_gives_its_token_back(settings, engine):
    tenant = await _tenant(settings, engine, "Refused")
    await set_limit_overrides(engine, tenant.id, LimitOverrides(submissions_per_minute=1, submissions_burst=1))
    wf = await create_workflow(tenant.api, one_step("offline"))
    missing = await submit(tenant.api, "no-such-workflow")
    invalid = await tenant.api.post("/v1/submissions", json={"workflow_key": wf["key"], "input": {}})
    ok = await submit(tenant.api, wf["key"])
    assert (missing.status_code, invalid.status_code, ok.status_code) == (404, 422, 202)
    assert (await submit(tenant.api, wf["key"])).status_code == 429
    await tenant.api.aclose()


async def test_bucket_refills_at_the_rate(settings, engine):
    tenant = await _tenant(settings, engine, "Refill")
    rate = Rate("submissions", per_minute=60, burst=2)
    assert [await take(engine, tenant.id, rate) for _ in range(2)] == [0.0, 0.0]
    began = time.monotonic()
    wait = await take(engine, tenant.id, rate)
    assert 0.5 < wait <= 1.0
    while await take(engine, tenant.id, rate):  # a token back after about a second
        await asyncio.sleep(0.1)
    assert time.monotonic() - began == pytest.approx(1.0, abs=0.6)
    assert await take(engine, tenant.id, Rate("form_submissions", 60, 1)) == 0.0  # its own bucket
    await tenant.api.aclose()


async def _dead_lease(engine, tenant_id: uuid.UUID, kind: str, seconds: float) -> datetime:  # type: ignore[no-untyped-def]
    """Slot 0 held by a holder that will never release it (a worker killed mid-call)."""
    async with tenant_session(engine, tenant_id) as s:
        return (
            await s.execute(
                text(
                    "INSERT INTO tenant_leases (tenant_id, kind, slot, holder, expires_at) "
                    "VALUES (:t, :k, 0, :h, clock_timestamp() + make_interval(secs => :s)) RETURNING expires_at"
                ),
                {"t": tenant_id, "k": kind, "h": uuid.uuid4(), "s": seconds},
            )
        ).scalar_one()


async def test_slots_are_capped_released_and_taken_back_from_the_dead(settings, engine):
    tenant = await _tenant(settings, engine, "Slots")
    tid = str(tenant.id)
    await set_limit_overrides(engine, tenant.id, LimitOverrides(max_renders=2))
    async with tenant_slot(engine, settings, tid, "render"), tenant_slot(engine, settings, tid, "render"):
        with pytest.raises(SlotsBusy, match="2 render slot"):
            async with tenant_slot(engine, settings, tid, "render"):
                pass
        async with tenant_slot(engine, settings, tid, "llm"):  # another kind: its own slots
            pass
    async with tenant_slot(engine, settings, tid, "render"), tenant_slot(engine, settings, tid, "render"):
        pass  # both released

    await set_limit_overrides(engine, tenant.id, LimitOverrides(max_renders=1))
    expires = await _dead_lease(engine, tenant.id, "render", 2.0)
    deadline = time.monotonic() + 20
    while True:
        try:
            async with tenant_slot(engine, settings, tid, "render"):
                taken = datetime.now(expires.tzinfo)
            break
        except SlotsBusy:
            assert time.monotonic() < deadline, "a dead holder's lease never expired"
            await asyncio.sleep(0.2)
    assert taken >= expires
    await tenant.api.aclose()


async def test_one_llm_call_at_a_time_across_jobs_and_another_tenant_not_held(settings, engine, llm_standin):
    """max_llm_calls=1: three jobs' calls never overlap, and all finish (a busy step is
    rescheduled, not failed). Meanwhile another tenant, whose one slot a dead worker holds,
    waits for that lease to expire; a third tenant is not held back by either."""
    capped, dead, free = [await _tenant(settings, engine, name) for name in ("Capped", "Dead holder", "Free")]
    await set_limit_overrides(engine, capped.id, LimitOverrides(max_llm_calls=1))
    await set_limit_overrides(engine, dead.id, LimitOverrides(max_llm_calls=1))
    tag = uuid.uuid4().hex[:8]
    models = {t.id: f"hold-600-{name}-{tag}" for t, name in ((capped, "c"), (dead, "d"), (free, "f"))}
    keys = {t.id: (await create_workflow(t.api, one_step(models[t.id])))["key"] for t in (capped, dead, free)}
    expires = await _dead_lease(engine, dead.id, "llm", 12.0)

    jobs = [(capped, (await submit(capped.api, keys[capped.id], {"company": f"c{i}"})).json()) for i in range(3)]
    jobs.append((dead, (await submit(dead.api, keys[dead.id])).json()))
    jobs += [(free, (await submit(free.api, keys[free.id], {"company": f"f{i}"})).json()) for i in range(2)]
    done = await asyncio.gather(*[wait_job(t.api, j["job_id"], timeout=75) for t, j in jobs])
    assert [d["status"] for d in done] == ["delivered"] * 6, done

    def calls(model: str) -> list[float]:
        return sorted(r["_at"] for r in llm_standin.requests if r.get("model") == model)

    assert llm_standin.max_in_flight[models[capped.id]] == 1
    assert len(calls(models[capped.id])) == 3
    assert calls(models[dead.id])[0] >= expires.timestamp()  # only once the dead lease expired
    assert calls(models[free.id])[-1] < expires.timestamp()  # not held back meanwhile
    for t in (capped, dead, free):
        await t.api.aclose()


async def test_a_pdf_render_waits_for_a_render_slot_without_spending_attempts(settings, engine, temporal):
    """max_renders=1, its slot held by a dead worker's lease: the job's PDF render answers
    TenantSlotsBusy, is scheduled again as a first attempt each time, and renders once the
    lease expired."""
    tenant = await _tenant(settings, engine, "Renders")
    await set_limit_overrides(engine, tenant.id, LimitOverrides(max_renders=1))
    wf = await create_workflow(tenant.api, {**one_step("offline"), "outputs": ["html", "pdf"]})
    expires = await _dead_lease(engine, tenant.id, "render", 5.0)
    job = (await submit(tenant.api, wf["key"])).json()
    done = await wait_job(tenant.api, job["job_id"], timeout=75)
    assert done["status"] == "delivered", done
    async with tenant_session(engine, tenant.id) as s:
        rendered = (
            await s.execute(
                text("SELECT created_at FROM artifacts WHERE job_id = :j AND kind = 'pdf'"),
                {"j": uuid.UUID(job["job_id"])},
            )
        ).scalar_one()
    assert rendered >= expires
    busy, attempts = 0, []
    async for event in temporal.get_workflow_handle(job["job_id"]).fetch_history_events():
        if event.HasField("activity_task_failed_event_attributes"):
            busy += event.activity_task_failed_event_attributes.failure.application_failure_info.type == (
                "TenantSlotsBusy"
            )
        if event.HasField("activity_task_started_event_attributes"):
            attempts.append(event.activity_task_started_event_attributes.attempt)
    assert busy >= 1 and set(attempts) == {1}, (busy, attempts)
    await tenant.api.aclose()


async def test_buckets_and_leases_are_each_tenants_own(settings, engine, tenant_a, tenant_b):
    """Row-level security, enabled and forced, as on every tenant table."""
    await take(engine, tenant_a.id, Rate("submissions", 60, 5))
    await _dead_lease(engine, tenant_a.id, "llm", 0.0)
    async with tenant_session(engine, tenant_b.id) as s:
        for table in ("token_buckets", "tenant_leases"):
            seen = (await s.execute(text(f"SELECT DISTINCT tenant_id FROM {table}"))).scalars().all()
            assert tenant_a.id not in seen, table
            flags = (
                await s.execute(
                    text("SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = :t"),
                    {"t": table},
                )
            ).scalar_one()
            assert flags is True, table


async def test_a_state_machine_llm_task_waits_in_its_activity_for_a_slot(settings, engine, llm_standin):
    """A Task has no workflow-side rescheduling: the activity waits (heartbeating) and calls
    the model once the dead holder's lease expired, instead of failing the Task."""
    tenant = await _tenant(settings, engine, "Machine slots")
    await set_limit_overrides(engine, tenant.id, LimitOverrides(max_llm_calls=1))
    model = f"ok-caps-{uuid.uuid4().hex[:6]}"
    acts = build(settings, engine)
    try:
        job_id = await make_job(engine, tenant.id)
        expires = await _dead_lease(engine, tenant.id, "llm", 3.0)
        inp = task(tenant.id, job_id, "Ask", "lodestone:llm", {"prompt": "Hi", "model": model}, [])
        got = await ActivityEnvironment().run(acts.run_task, inp)
    finally:
        await close(acts)
    assert got["model"] == model
    [sent] = [r for r in llm_standin.requests if r.get("model") == model]
    assert sent["_at"] >= expires.timestamp()
    await tenant.api.aclose()
