"""Summary schedules on the real stack: the API, the CLI, tenant isolation, trigger and
backfill against the Temporal dev server. These check the schedule's behaviour (runs
started), not the summaries those runs produce; test_summary covers that."""

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowExecutionStatus

from activities.conversation import PurgeInput
from lodestone.db import tenant_session
from schema.conversations import Contact
from services.retention import PURGE_SCHEDULE_ID, ensure_purge_schedule
from tests.conversation_helpers import seed_contact

EVERY = timedelta(days=15)


async def _contact(engine, tenant_id: uuid.UUID) -> uuid.UUID:
    return (await seed_contact(engine, tenant_id, name="Schedule Tester")).id


async def test_contact_without_whatsapp_number_is_422(settings, engine, tenant_a):
    contact = Contact(tenant_id=tenant_a.id, wa_id=str(uuid.uuid4().int % 10**11), name="No Number")
    async with tenant_session(engine, tenant_a.id) as s:
        s.add(contact)
    resp = await tenant_a.api.post("/v1/schedules", json={"contact_id": str(contact.id)})
    assert resp.status_code == 422 and resp.json()["code"] == "contact_not_reachable"


def _bearer(tenant, settings, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.token_for(settings, role)}"}


async def _runs(temporal: Client, schedule_id: str, want: int, timeout: float = 20) -> list:
    """Workflows this schedule started (visibility lags a little: poll)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [w async for w in temporal.list_workflows(f'TemporalScheduledById = "{schedule_id}"')]
        if len(runs) >= want or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def contact_id(engine, tenant_a) -> uuid.UUID:
    return await _contact(engine, tenant_a.id)


@pytest.fixture(scope="module")
async def schedule_id(tenant_a, contact_id, temporal) -> AsyncIterator[str]:
    resp = await tenant_a.api.post("/v1/schedules", json={"contact_id": str(contact_id), "interval_days": 15})
    assert resp.status_code == 201, resp.text
    sid = resp.json()["id"]
    assert sid == f"summary:{tenant_a.id}:{contact_id}"
    yield sid
    # Deleting a schedule leaves its runs going; stop the ones this module started.
    for run in await _runs(temporal, sid, 0, timeout=0):
        if run.status == WorkflowExecutionStatus.RUNNING:
            with contextlib.suppress(Exception):
                await temporal.get_workflow_handle(run.id, run_id=run.run_id).terminate("test cleanup")
    with contextlib.suppress(Exception):
        await temporal.get_schedule_handle(sid).delete()


async def test_create_validates_and_rejects_duplicates(tenant_a, tenant_b, settings, contact_id, schedule_id):
    again = await tenant_a.api.post("/v1/schedules", json={"contact_id": str(contact_id)})
    assert again.status_code == 409 and again.json()["code"] == "schedule_exists"
    missing = await tenant_a.api.post("/v1/schedules", json={"contact_id": str(uuid.uuid4())})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    foreign = await tenant_b.api.post("/v1/schedules", json={"contact_id": str(contact_id)})
    assert foreign.status_code == 404  # RLS hides tenant A's contact
    bad = await tenant_a.api.post("/v1/schedules", json={"contact_id": str(contact_id), "interval_days": 0})
    assert bad.status_code == 422
    viewer = await tenant_a.api.post(
        "/v1/schedules", json={"contact_id": str(contact_id)}, headers=_bearer(tenant_a, settings, "viewer")
    )
    assert viewer.status_code == 403


async def test_get_shows_interval_and_skip_policy(tenant_a, settings, schedule_id, contact_id):
    resp = await tenant_a.api.get(f"/v1/schedules/{schedule_id}", headers=_bearer(tenant_a, settings, "viewer"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["interval_days"] == 15 and body["overlap"] == "SKIP" and body["contact_id"] == str(contact_id)
    assert body["paused"] is False and len(body["next_action_times"]) == 3
    first = datetime.fromisoformat(body["next_action_times"][0])
    # Phased from creation: the first summary is one interval away, not on the epoch grid.
    assert EVERY - timedelta(minutes=5) < first - datetime.now(UTC) <= EVERY


async def test_list_shows_only_the_tenants_schedules(tenant_a, tenant_b, schedule_id):
    deadline = time.monotonic() + 20
    while True:
        ids = [s["id"] for s in (await tenant_a.api.get("/v1/schedules")).json()["items"]]
        if schedule_id in ids or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    # Both kinds of schedule (summaries, and job schedules other tests make) and only the tenant's
    assert schedule_id in ids and all(
        i.split(":")[:2] in (["summary", str(tenant_a.id)], ["job", str(tenant_a.id)]) for i in ids
    )
    assert schedule_id not in [s["id"] for s in (await tenant_b.api.get("/v1/schedules")).json()["items"]]


async def test_pause_and_unpause_show_in_get(tenant_a, settings, schedule_id):
    editor = _bearer(tenant_a, settings, "editor")
    paused = await tenant_a.api.post(f"/v1/schedules/{schedule_id}/pause", json={"note": "on holiday"}, headers=editor)
    assert paused.status_code == 200, paused.text
    got = (await tenant_a.api.get(f"/v1/schedules/{schedule_id}")).json()
    assert got["paused"] is True and got["note"] == "on holiday"
    assert (await tenant_a.api.post(f"/v1/schedules/{schedule_id}/unpause", headers=editor)).status_code == 200
    assert (await tenant_a.api.get(f"/v1/schedules/{schedule_id}")).json()["paused"] is False


async def test_another_tenant_gets_404_and_changes_nothing(tenant_a, tenant_b, schedule_id):
    before = (await tenant_a.api.get(f"/v1/schedules/{schedule_id}")).json()
    url = f"/v1/schedules/{schedule_id}"
    attempts = [
        tenant_b.api.get(url),
        tenant_b.api.post(f"{url}/pause", json={"note": "mine now"}),
        tenant_b.api.post(f"{url}/unpause"),
        tenant_b.api.post(f"{url}/trigger"),
        tenant_b.api.post(f"{url}/backfill", json={"start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"}),
        tenant_b.api.delete(url),
    ]
    for resp in [await a for a in attempts]:
        assert resp.status_code == 404, resp.text
        assert resp.json()["detail"] == f"schedule {schedule_id} not found"
    nonexistent = await tenant_b.api.get(f"/v1/schedules/summary:{tenant_b.id}:{uuid.uuid4()}")
    assert nonexistent.status_code == 404 and nonexistent.json()["detail"].endswith("not found")
    after = (await tenant_a.api.get(url)).json()
    assert after["paused"] is False and after["note"] == before["note"]
    assert after["recent_actions"] == before["recent_actions"]


async def test_trigger_starts_a_summary_run(tenant_a, settings, temporal, schedule_id):
    editor = _bearer(tenant_a, settings, "editor")
    resp = await tenant_a.api.post(f"/v1/schedules/{schedule_id}/trigger", headers=editor)
    assert resp.status_code == 202 and resp.json()["running"] == []
    runs = await _runs(temporal, schedule_id, 1)
    assert len(runs) == 1
    assert runs[0].workflow_type == "SummaryWorkflow" and runs[0].id.startswith(f"{schedule_id}-")
    assert runs[0].search_attributes["TenantId"] == [str(tenant_a.id)]
    got = (await tenant_a.api.get(f"/v1/schedules/{schedule_id}")).json()
    assert runs[0].id in got["recent_actions"]


async def test_backfill_of_two_intervals_starts_two_runs(tenant_a, settings, temporal, schedule_id):
    url = f"/v1/schedules/{schedule_id}/backfill"
    first = datetime.fromisoformat(
        (await tenant_a.api.get(f"/v1/schedules/{schedule_id}")).json()["next_action_times"][0]
    )
    # A window that starts exactly on a fire time: [start, end) holds start and start + 15 days only.
    start, end = first - 4 * EVERY, first - 2 * EVERY
    window = {"start": start.isoformat(), "end": end.isoformat()}
    assert (await tenant_a.api.post(url, json=window, headers=_bearer(tenant_a, settings, "editor"))).status_code == 403
    for bad in (
        {"start": window["end"], "end": window["start"]},
        {"start": (end - timedelta(days=367)).isoformat(), "end": window["end"]},
        {"start": window["start"], "end": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        {"start": "2024-01-01T00:00:00", "end": "2024-01-31T00:00:00"},
    ):  # no timezone
        assert (await tenant_a.api.post(url, json=bad)).status_code == 422, bad

    before = len(await _runs(temporal, schedule_id, 0, timeout=0))  # e.g. the triggered run
    resp = await tenant_a.api.post(url, json=window)
    assert resp.status_code == 202, resp.text
    runs = await _runs(temporal, schedule_id, before + 2)
    await asyncio.sleep(1)  # a third run, if one were coming, would show by now
    runs = await _runs(temporal, schedule_id, before + 3, timeout=0)
    backfilled = sorted(
        r.search_attributes["TemporalScheduledStartTime"][0]
        for r in runs
        if start <= r.search_attributes["TemporalScheduledStartTime"][0] < end
    )
    assert backfilled == [start, start + EVERY]
    assert len(runs) == before + 2
    recent = (await tenant_a.api.get(f"/v1/schedules/{schedule_id}")).json()["recent_actions"]
    assert {f"{schedule_id}-{t:%Y-%m-%dT%H:%M:%SZ}" for t in backfilled} <= set(recent)


async def _cli(settings, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DATA_DIR": str(settings.data_path),
        "POSTGRES_PORT": str(settings.postgres_port),
        "TEMPORAL_PORT": str(settings.temporal_port),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "schedules",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_lists_shows_and_refuses(settings, tenant_a, tenant_b, schedule_id):
    code, out, err = await _cli(settings, "list", "--tenant", str(tenant_a.id))
    assert code == 0, err
    assert schedule_id in out.split()
    code, out, err = await _cli(settings, "show", schedule_id, "--tenant", str(tenant_a.id))
    assert code == 0 and "overlap:\tSKIP" in out and "interval_days:\t15" in out, (out, err)
    code, out, err = await _cli(settings, "show", schedule_id, "--tenant", str(tenant_b.id))
    assert code == 2 and "not found" in err and out == ""
    code, _, err = await _cli(settings, "create", str(uuid.uuid4()), "--tenant", str(tenant_a.id))
    assert code == 2 and "contact" in err and "not found" in err


async def test_delete_is_admin_only_and_final(tenant_a, settings, schedule_id):
    url = f"/v1/schedules/{schedule_id}"
    assert (await tenant_a.api.delete(url, headers=_bearer(tenant_a, settings, "editor"))).status_code == 403
    assert (await tenant_a.api.delete(url)).status_code == 204
    assert (await tenant_a.api.get(url)).status_code == 404
    assert (await tenant_a.api.delete(url)).status_code == 404
    assert (await tenant_a.api.post(f"{url}/trigger")).status_code == 404


async def _purge_days(temporal: Client) -> int:
    action = (await temporal.get_schedule_handle(PURGE_SCHEDULE_ID).describe()).schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    return (await temporal.data_converter.decode(action.args, [PurgeInput]))[0].retention_days  # type: ignore[arg-type]


async def test_ensure_purge_schedule_is_idempotent(settings, stack, temporal):
    # The worker ensured it at startup, so this finds it as it should be.
    assert await ensure_purge_schedule(temporal, settings) == "unchanged"
    assert await _purge_days(temporal) == settings.message_retention_days
    shorter = settings.model_copy(update={"message_retention_days": 30})
    assert await ensure_purge_schedule(temporal, shorter) == "updated"
    assert await _purge_days(temporal) == 30
    assert await ensure_purge_schedule(temporal, settings) == "updated"
    desc = await temporal.get_schedule_handle(PURGE_SCHEDULE_ID).describe()
    assert desc.schedule.policy.overlap.name == "SKIP"
    assert desc.schedule.spec.intervals[0].every == timedelta(days=1)
