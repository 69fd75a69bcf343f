"""Job schedules on the real stack: a Temporal Schedule of any workflow definition whose every
run is an ordinary job (a row in GET /v1/jobs, delivered like a submission's), with pause,
resume, trigger, backfill and delete, from the API and from `lodestone schedules`."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from devstack.receiver import WebhookReceiver
from tests.helpers import create_workflow, definition, wait_job
from tests.test_schedules import _cli

INTERVAL = 2  # seconds


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    """check()'s first truthy answer, polled."""
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.3)
    return found


async def job_ids(api, key: str) -> set[str]:  # type: ignore[no-untyped-def]
    resp = await api.get("/v1/jobs", params={"workflow_key": key, "limit": 200})
    assert resp.status_code == 200, resp.text
    return {j["id"] for j in resp.json()["items"]}


async def cleanup(temporal: Client, schedule_id: str) -> None:
    """Deleting a schedule leaves its runs going: stop them, then delete it if it is still there."""
    async for run in temporal.list_workflows(f'TemporalScheduledById = "{schedule_id}"'):
        if run.status == WorkflowExecutionStatus.RUNNING:
            with contextlib.suppress(Exception):
                await temporal.get_workflow_handle(run.id).terminate("test cleanup")
    with contextlib.suppress(Exception):
        await temporal.get_schedule_handle(schedule_id).delete()


@pytest.fixture
async def workflow(tenant_a) -> AsyncIterator[tuple[dict[str, Any], WebhookReceiver]]:
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        yield await create_workflow(tenant_a.api, definition(hook.url)), hook


async def test_interval_schedule_runs_jobs_and_pauses_triggers_and_deletes(tenant_a, tenant_b, temporal, workflow):
    wf, hook = workflow
    body = {"workflow_key": wf["key"], "input": {"company": "Scheduled"}, "interval_seconds": INTERVAL}
    resp = await tenant_a.api.post("/v1/schedules", json=body)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    sid = created["id"]
    try:
        assert sid.startswith(f"job:{tenant_a.id}:") and created["kind"] == "job"
        assert (created["workflow_key"], created["interval_seconds"], created["overlap"]) == (wf["key"], 2, "skip")
        assert created["time_zone"] == "UTC" and len(created["next_action_times"]) >= 2

        # Runs are ordinary jobs: listed, delivered, and named by the schedule.
        jobs = await until(lambda: _at_least(tenant_a.api, wf["key"], 2))
        for job_id in jobs:
            assert (await wait_job(tenant_a.api, job_id))["status"] == "delivered"
        assert len(hook.received) >= 2 and all(r.verified for r in hook.received)
        shown = (await tenant_a.api.get(f"/v1/schedules/{sid}")).json()
        assert set(shown["recent_jobs"]) <= await job_ids(tenant_a.api, wf["key"]) and shown["recent_jobs"]

        # Another tenant finds none of it.
        for call in (tenant_b.api.get(f"/v1/schedules/{sid}"), tenant_b.api.post(f"/v1/schedules/{sid}/trigger")):
            assert (await call).status_code == 404
        assert sid not in {s["id"] for s in (await tenant_b.api.get("/v1/schedules")).json()["items"]}
        listed = await until(lambda: _listed(tenant_a.api, sid))
        assert listed["workflow_key"] == wf["key"] and listed["kind"] == "job"

        # Paused: no job starts, however many intervals pass.
        paused = await tenant_a.api.post(f"/v1/schedules/{sid}/pause", json={"note": "maintenance"})
        assert paused.status_code == 200 and paused.json()["paused"] and paused.json()["note"] == "maintenance"
        await until(lambda: _settled(tenant_a.api, sid))
        before = await job_ids(tenant_a.api, wf["key"])
        await asyncio.sleep(3 * INTERVAL)  # nothing to wait for: three fire times pass unused
        assert await job_ids(tenant_a.api, wf["key"]) == before

        # Trigger: one job now, even paused.
        resp = await tenant_a.api.post(f"/v1/schedules/{sid}/trigger")
        assert resp.status_code == 202 and resp.json()["overlap"] == "ALLOW_ALL", resp.text
        (new,) = await until(lambda: _new(tenant_a.api, wf["key"], before))
        assert (await wait_job(tenant_a.api, new))["status"] == "delivered"

        resumed = await tenant_a.api.post(f"/v1/schedules/{sid}/resume")
        assert resumed.status_code == 200 and not resumed.json()["paused"]
        assert len(await until(lambda: _new(tenant_a.api, wf["key"], before | {new}))) >= 1

        assert (await tenant_b.api.delete(f"/v1/schedules/{sid}")).status_code == 404
        assert (await tenant_a.api.delete(f"/v1/schedules/{sid}")).status_code == 204
        assert (await tenant_a.api.get(f"/v1/schedules/{sid}")).status_code == 404
    finally:
        await cleanup(temporal, sid)


async def _at_least(api, key: str, n: int) -> set[str] | None:  # type: ignore[no-untyped-def]
    found = await job_ids(api, key)
    return found if len(found) >= n else None


async def _new(api, key: str, before: set[str]) -> set[str] | None:  # type: ignore[no-untyped-def]
    return (await job_ids(api, key)) - before or None


async def _listed(api, sid: str) -> dict[str, Any] | None:  # type: ignore[no-untyped-def]
    return next((s for s in (await api.get("/v1/schedules")).json()["items"] if s["id"] == sid), None)


async def _settled(api, sid: str) -> bool:  # type: ignore[no-untyped-def]
    """No run of the schedule in flight: a paused schedule starts none after this."""
    return not (await api.get(f"/v1/schedules/{sid}")).json()["running_jobs"]


async def test_backfill_runs_each_past_fire_time_once(tenant_a, temporal, workflow):
    wf, _ = workflow
    body = {"workflow_key": wf["key"], "input": {"company": "Past"}, "cron": "* * * * *", "paused": True}
    body |= {"time_zone": "Europe/Berlin", "overlap": "buffer_all"}
    resp = await tenant_a.api.post("/v1/schedules", json=body)
    assert resp.status_code == 201, resp.text
    sid = resp.json()["id"]
    try:
        assert resp.json()["cron"] == ["* * * * *"] and resp.json()["paused"] is True
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        start, end = minute - timedelta(minutes=4), minute - timedelta(minutes=1)  # fire times -4, -3, -2
        resp = await tenant_a.api.post(
            f"/v1/schedules/{sid}/backfill", json={"start": start.isoformat(), "end": end.isoformat()}
        )
        assert resp.status_code == 202, resp.text
        jobs = await until(lambda: _at_least(tenant_a.api, wf["key"], 3))
        for job_id in jobs:
            assert (await wait_job(tenant_a.api, job_id))["status"] == "delivered"
        again = await tenant_a.api.post(
            f"/v1/schedules/{sid}/backfill", json={"start": start.isoformat(), "end": end.isoformat()}
        )
        assert again.status_code == 202  # the same fire times: the same runs, no new job
        await until(lambda: _settled(tenant_a.api, sid))
        assert len(await job_ids(tenant_a.api, wf["key"])) == 3
    finally:
        await cleanup(temporal, sid)


@pytest.mark.parametrize(
    ("change", "code", "pointer"),
    [
        ({"cron": "not a cron"}, "invalid_schedule", "/cron/0"),
        ({"cron": "99 * * * *"}, "invalid_schedule", "/cron"),
        ({"time_zone": "Mars/Olympus"}, "invalid_schedule", "/time_zone"),
        ({"interval_seconds": 60}, "invalid_schedule", "/cron"),  # both cron and an interval
        ({"workflow_key": "no-such-workflow"}, "unknown_workflow", "/workflow_key"),
        ({"input": {"company": 7}}, "invalid_input", "/input/company"),
    ],
)
async def test_refusals_name_the_field(tenant_a, workflow, change, code, pointer):
    wf, _ = workflow
    body = {"workflow_key": wf["key"], "input": {"company": "X"}, "cron": "0 9 * * 1"} | change
    resp = await tenant_a.api.post("/v1/schedules", json=body)
    assert resp.status_code == 422, resp.text
    assert (resp.json()["code"], resp.json().get("pointer")) == (code, pointer), resp.text


async def test_cli_covers_job_schedules(settings, tenant_a, tenant_b, temporal, workflow):
    wf, _ = workflow
    tenant = ("--tenant", str(tenant_a.id))
    code, out, err = await _cli(
        settings, "create", *tenant, "--workflow", wf["key"], "--input", '{"company": "Cli"}', "--cron", "0 9 * * 1",
        "--time-zone", "Europe/Berlin", "--paused", "--note", "from the CLI",
    )  # fmt: skip
    assert code == 0, err
    fields = dict(line.split("\t", 1) for line in out.splitlines())
    sid = fields["id:"]
    try:
        assert sid.startswith(f"job:{tenant_a.id}:") and fields["time_zone:"] == "Europe/Berlin"
        assert fields["paused:"] == "True" and fields["workflow_key:"] == wf["key"]
        code, out, err = await _cli(settings, "show", sid, "--tenant", str(tenant_b.id))
        assert code == 2 and "not found" in err
        code, out, err = await _cli(settings, "list", *tenant)
        assert code == 0 and any(line.split("\t")[:2] == [sid, wf["key"]] for line in out.splitlines()), (out, err)
        code, out, err = await _cli(settings, "trigger", sid, *tenant)
        assert code == 0 and out.startswith("triggered"), err
        (job_id,) = await until(lambda: _new(tenant_a.api, wf["key"], set()))
        assert (await wait_job(tenant_a.api, job_id))["status"] == "delivered"
        code, _, err = await _cli(settings, "resume", sid, *tenant)
        assert code == 0, err
        code, _, err = await _cli(settings, "create", *tenant, "--workflow", wf["key"], "--cron", "0 9 * * 1")
        assert code == 2 and "company" in err  # the input does not meet the schema
        code, _, err = await _cli(settings, "delete", sid, *tenant, "--yes")
        assert code == 0, err
        assert (await tenant_a.api.get(f"/v1/schedules/{sid}")).status_code == 404
    finally:
        await cleanup(temporal, sid)
