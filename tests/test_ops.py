"""`lodestone ops ...` against the session stack, run as the operator runs it: a separate
process with the stack's settings in its environment."""

import asyncio
import contextlib
import json
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.tables import DeliveryAttempt, JobFailure, UsageRecord
from services.operator_db import operator_session
from tests.conversation_helpers import seed_contact
from tests.helpers import create_workflow, definition, submit, wait_job


def ops_env(settings) -> dict[str, str]:
    """The environment `lodestone ops` finds the session stack with."""
    return {
        **os.environ,
        "DATA_DIR": str(settings.data_path),
        "POSTGRES_PORT": str(settings.postgres_port),
        "TEMPORAL_PORT": str(settings.temporal_port),
        "TEMPORAL_UI_PORT": str(settings.temporal_ui_port),
        "API_PORT": str(settings.api_port),
    }


async def ops(settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "ops",
        *args,
        env=ops_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    return proc.returncode or 0, out.decode(), err.decode()


def dead_letter_rows(out: str) -> dict[str, list[str]]:
    return {fields[0]: fields for fields in (line.split("\t") for line in out.splitlines())}


def plan(out: str) -> dict[tuple[str, str], str]:
    """(kind, name) -> skip | run, from redrive's output."""
    rows = [line.split("\t") for line in out.splitlines()]
    return {(r[1], r[2]): r[0] for r in rows if r[0] in ("skip", "run")}


def steps(actions: dict[tuple[str, str], str], verb: str) -> set[str]:
    return {name for (kind, name), v in actions.items() if kind == "step" and v == verb}


async def test_step_failure_is_listed_then_redriven_without_rerunning_completed_steps(
    settings, tenant_a, engine, llm_standin
):
    tag = uuid.uuid4().hex[:8]
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        body = definition(hook.url)
        models = {s["id"]: f"ok-ops-{tag}-{s['id']}" for s in body["steps"]}
        for step in body["steps"]:
            step["model"] = models[step["id"]]
        llm_standin.broken.add(models["angles"])  # the provider answers this model with nothing
        try:
            wf = await create_workflow(tenant_a.api, body)
            job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
            failed = await wait_job(tenant_a.api, job_id)
            assert failed["status"] == "failed" and failed["error"]["failed_step"] == "step:angles", failed

            code, out, err = await ops(settings, "dead-letters", "--tenant", str(tenant_a.id), "--plain")
            assert code == 0, err
            row = dead_letter_rows(out)[job_id]
            assert row[1:7] == [str(tenant_a.id), "Tenant A", wf["key"], "failed", "step:angles", "LLMEmptyAnswer"]
            assert row[8] == "-" and row[9] == settings.workflow_link(job_id)

            code, out, err = await ops(settings, "redrive", job_id, "--dry-run")
            assert code == 0, err
            assert "dry run: nothing started" in out
            assert "research" in steps(plan(out), "skip") and {"angles", "write"} <= steps(plan(out), "run")
            assert (await tenant_a.api.get(f"/v1/jobs/{job_id}")).json()["status"] == "failed"
        finally:
            llm_standin.broken.discard(models["angles"])  # the operator fixes the cause

        before = {s: llm_standin.count(m) for s, m in models.items()}
        code, out, err = await ops(settings, "redrive", job_id)
        assert code == 0, err
        skipped, ran = steps(plan(out), "skip"), steps(plan(out), "run")
        assert "research" in skipped and {"angles", "write"} <= ran and skipped | ran == set(models)
        assert "started run " in out and "last run: FAILED" in out
        job = await wait_job(tenant_a.api, job_id)
        assert hook.wait_for_success(timeout=10) is not None

    assert job["status"] == "delivered", job
    for step, model in models.items():  # completed steps were not asked again; the rest once each
        assert llm_standin.count(model) == before[step] + (step in ran), step
    assert len(hook.received) == 1 and hook.received[0].verified
    async with tenant_session(engine, tenant_a.id) as s:
        usage = (await s.exec(select(UsageRecord.step_id).where(UsageRecord.job_id == uuid.UUID(job_id)))).all()
    assert sorted(usage) == sorted(models)

    code, out, _ = await ops(settings, "dead-letters", "--tenant", str(tenant_a.id), "--plain")
    assert job_id not in dead_letter_rows(out)  # no longer failed
    code, out, _ = await ops(settings, "dead-letters", "--tenant", str(tenant_a.id), "--all", "--plain")
    row = dead_letter_rows(out)[job_id]
    assert row[4] == "delivered" and row[8] != "-"
    code, out, err = await ops(settings, "redrive", job_id)
    assert code == 1 and "already completed" in err and out == ""


@dataclass
class Redelivered:
    job_id: str
    first: dict[str, Any]
    after: dict[str, Any]
    output: str
    refused: tuple[int, str, str]
    good: WebhookReceiver
    bad: WebhookReceiver


@pytest.fixture(scope="module")
async def redelivered(settings, tenant_a):
    """Two webhook targets; the second rejects the first request (400), so the job fails at
    deliver:1 after target 0 was delivered. Then the operator replays delivery 1."""
    with (
        WebhookReceiver(tenant_a.webhook_secret) as good,
        WebhookReceiver(tenant_a.webhook_secret, fail_first=1, fail_status=400) as bad,
    ):
        body = definition(good.url, outputs=["html", "pdf"])
        body["delivery"].append({"type": "webhook", "url": bad.url})
        wf = await create_workflow(tenant_a.api, body)
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        first = await wait_job(tenant_a.api, job_id, timeout=90)
        assert first["status"] == "failed" and first["error"]["failed_step"] == "deliver:1", first
        assert first["error"]["code"] == "WebhookRejected"
        by_target = {d["target"]: d for d in first["deliveries"]}
        refused = await ops(settings, "redeliver", by_target[good.url]["id"])
        code, out, err = await ops(settings, "redeliver", by_target[bad.url]["id"])
        assert code == 0, err
        after = await wait_job(tenant_a.api, job_id, timeout=90)
        yield Redelivered(job_id, first, after, out, refused, good, bad)


async def test_redeliver_sends_only_the_failed_target(redelivered):
    r = redelivered
    assert r.refused[0] == 1 and "was delivered" in r.refused[2]
    assert r.after["status"] == "delivered", r.after
    actions = plan(r.output)
    assert steps(actions, "skip") == {"research", "angles", "outline", "write"} and not steps(actions, "run")
    assert actions[("render", "html")] == actions[("render", "pdf")] == "skip"
    assert actions[("deliver", f"#0 webhook {r.good.url}")] == "skip"
    assert actions[("deliver", f"#1 webhook {r.bad.url}")] == "run"
    assert [x.status for x in r.good.received] == [204]  # delivered once, never re-sent
    assert [x.status for x in r.bad.received] == [400, 204]
    assert len({x.webhook_id for x in r.bad.received}) == 1  # the stable webhook-id
    assert all(x.verified for x in r.good.received + r.bad.received)
    assert {d["status"] for d in r.after["deliveries"]} == {"delivered"}


async def test_redriven_job_keeps_its_artifacts(redelivered):
    # A re-render would give the PDF another sha256 than the one target 0 was sent.
    before = {a["kind"]: (a["id"], a["sha256"], a["size"]) for a in redelivered.first["artifacts"]}
    after = {a["kind"]: (a["id"], a["sha256"], a["size"]) for a in redelivered.after["artifacts"]}
    assert len(redelivered.after["artifacts"]) == 2 and before == after
    sent = json.loads(redelivered.good.received[0].body)["data"]["artifacts"]
    assert {a["kind"]: (a["id"], a["sha256"], a["size"]) for a in sent} == after


async def test_redelivered_target_keeps_its_attempt_history(redelivered, engine, tenant_a):
    delivery = next(d for d in redelivered.after["deliveries"] if d["target"] == redelivered.bad.url)
    async with tenant_session(engine, tenant_a.id) as s:
        attempts = (
            await s.exec(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == uuid.UUID(delivery["id"]))
                .order_by(col(DeliveryAttempt.attempt))
            )
        ).all()
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 400), (2, 204)]
    assert {a.webhook_id for a in attempts} == {delivery["webhook_id"]}


async def test_history_export_and_replay(settings, redelivered, tmp_path):
    job_id = redelivered.job_id
    latest = tmp_path / "latest.json"
    code, _, err = await ops(settings, "history", "export", job_id, "-o", str(latest))
    assert code == 0 and "events" in err, err
    failed_run = redelivered.output.split("last run: FAILED (run ")[1].split(")")[0]
    code, out, err = await ops(settings, "history", "export", job_id, "--run-id", failed_run)
    assert code == 0, err
    first = tmp_path / "first.json"
    first.write_text(out)
    assert json.loads(out)["events"][-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"
    for path in (latest, first):
        code, out, err = await ops(settings, "history", "replay", str(path))
        assert code == 0 and out.startswith(f"OK: SubmissionWorkflow {job_id} replayed"), (out, err)

    doc = json.loads(latest.read_text())
    scheduled = next(
        e["activityTaskScheduledEventAttributes"]
        for e in doc["events"]
        if e.get("activityTaskScheduledEventAttributes", {}).get("activityType", {}).get("name") == "render"
    )
    scheduled["activityType"]["name"] = "render_v0"  # as if recorded by code that called another activity
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(doc))
    code, out, err = await ops(settings, "history", "replay", str(changed))
    assert code == 1 and out == "" and "render_v0" in err and "nondetermin" in err.lower(), err

    code, _, err = await ops(settings, "history", "export", f"no-such-{uuid.uuid4()}")
    assert code == 1 and "not found" in err
    (tmp_path / "junk.json").write_text('{"events": []}')
    code, _, err = await ops(settings, "history", "replay", str(tmp_path / "junk.json"))
    assert code == 1 and "WorkflowExecutionStarted" in err


async def _failing_job(tenant, llm_standin) -> str:
    body = definition("http://127.0.0.1:9/never")
    body["steps"][0]["model"] = model = f"ok-ops-{uuid.uuid4().hex[:8]}"
    llm_standin.broken.add(model)  # not `empty`: test_pipeline counts the requests for that one
    wf = await create_workflow(tenant.api, body)
    job_id = (await submit(tenant.api, wf["key"])).json()["job_id"]
    assert (await wait_job(tenant.api, job_id))["status"] == "failed"
    return job_id


async def test_dead_letters_cross_tenants_only_through_the_operator_session(
    settings, tenant_a, tenant_b, engine, owner_engine, llm_standin
):
    a, b = await _failing_job(tenant_a, llm_standin), await _failing_job(tenant_b, llm_standin)
    code, out, err = await ops(settings, "dead-letters", "--plain", "--limit", "1000")
    assert code == 0, err
    rows = dead_letter_rows(out)
    assert rows[a][1] == str(tenant_a.id) and rows[b][1] == str(tenant_b.id)
    code, out, err = await ops(settings, "dead-letters", "--plain", "--tenant", str(tenant_b.id))
    assert b in dead_letter_rows(out) and {r[1] for r in dead_letter_rows(out).values()} == {str(tenant_b.id)}

    with pytest.raises(DBAPIError, match="permission denied"):  # the app role has no view
        async with engine.connect() as conn:
            await conn.execute(text("SELECT count(*) FROM operator_dead_letters"))
    async with AsyncSession(engine) as s, s.begin():  # the opt-in is the owner's alone
        await s.execute(text("SELECT set_config('app.operator', 'on', true)"))
        assert (await s.exec(select(func.count()).select_from(JobFailure))).one() == 0
    async with AsyncSession(owner_engine) as s:  # and the owner sees nothing without it
        assert (await s.exec(select(func.count()).select_from(JobFailure))).one() == 0
    async with operator_session(owner_engine) as s:
        assert (await s.exec(select(func.count()).select_from(JobFailure))).one() >= 2
    with pytest.raises(DBAPIError, match="read-only transaction"):
        async with operator_session(owner_engine) as s:
            await s.execute(text("UPDATE job_failures SET redriven_at = now()"))


async def test_a_redriven_job_that_fails_again_is_a_fresh_dead_letter(settings, tenant_a, llm_standin):
    job_id = await _failing_job(tenant_a, llm_standin)
    code, _, err = await ops(settings, "redrive", job_id)  # the cause (an empty answer) is not fixed
    assert code == 0, err
    assert (await wait_job(tenant_a.api, job_id))["status"] == "failed"
    code, out, _ = await ops(settings, "dead-letters", "--tenant", str(tenant_a.id), "--plain")
    row = dead_letter_rows(out)[job_id]
    assert row[4] == "failed" and row[5] == "step:research"
    assert row[8] == "-"  # the new failure is not marked redriven


async def test_redrive_refuses_running_and_unknown_jobs_and_takes_terminated_ones(settings, tenant_a, temporal):
    code, out, err = await ops(settings, "redrive", str(uuid.uuid4()))
    assert code == 1 and "not found" in err and out == ""
    code, _, err = await ops(settings, "redeliver", str(uuid.uuid4()))
    assert code == 1 and "not found" in err

    body = definition("http://127.0.0.1:9/never")
    body["steps"][0]["model"] = "slow"  # times out and is retried: the run stays open
    wf = await create_workflow(tenant_a.api, body)
    job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
    handle = temporal.get_workflow_handle(job_id)
    try:
        code, out, err = await ops(settings, "redrive", job_id)
        assert code == 1 and "still running" in err and out == ""
        await handle.terminate("operator stopped it")
        code, out, err = await ops(settings, "redrive", job_id)
        assert code == 0, err
        assert "last run: TERMINATED" in out and "dead letter: none" in out
        desc = await handle.describe()
        assert desc.status is not None and desc.status.name == "RUNNING"
        assert desc.search_attributes["TenantId"] == [str(tenant_a.id)]
        assert desc.search_attributes["JobId"] == [job_id] and desc.search_attributes["WorkflowKey"] == [wf["key"]]
    finally:
        await temporal.get_workflow_handle(job_id).terminate("test cleanup")


async def test_schedules_pause_resume_and_trigger(settings, engine, tenant_a, tenant_b, temporal):
    contact = await seed_contact(engine, tenant_a.id, name="Ops Tester")
    resp = await tenant_a.api.post("/v1/schedules", json={"contact_id": str(contact.id)})
    assert resp.status_code == 201, resp.text
    sid, tenant = resp.json()["id"], str(tenant_a.id)
    handle = temporal.get_schedule_handle(sid)
    try:
        code, out, err = await ops(settings, "schedules", "pause", sid, "--tenant", tenant, "--note", "provider outage")
        assert code == 0 and out.split() == ["paused", sid], err
        state = (await handle.describe()).schedule.state
        assert state.paused and state.note == "provider outage"
        code, out, err = await ops(settings, "schedules", "pause", sid, "--tenant", str(tenant_b.id))
        assert code == 2 and "not found" in err  # a schedule id names its tenant; another's is refused
        code, out, err = await ops(settings, "schedules", "resume", sid, "--tenant", tenant)
        assert code == 0 and out.split() == ["unpaused", sid], err
        assert not (await handle.describe()).schedule.state.paused
        code, out, err = await ops(settings, "schedules", "trigger", sid, "--tenant", tenant)
        assert code == 0 and out.split() == ["triggered", sid], err
        for _ in range(100):
            runs = [w async for w in temporal.list_workflows(f'TemporalScheduledById = "{sid}"')]
            if runs:
                break
            await asyncio.sleep(0.2)
        assert len(runs) == 1 and runs[0].workflow_type == "SummaryWorkflow"
    finally:
        for run in [w async for w in temporal.list_workflows(f'TemporalScheduledById = "{sid}"')]:
            with contextlib.suppress(Exception):
                await temporal.get_workflow_handle(run.id, run_id=run.run_id).terminate("test cleanup")
        await handle.delete()
