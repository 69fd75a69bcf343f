"""Every endpoint that takes an object id, called by tenant B on tenant A's object: 404,
nothing leaked, nothing changed. And 500 interleaved requests over a 2-connection pool."""

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.app import create_app
from devstack.receiver import WebhookReceiver
from services.schedules import create_summary_schedule
from tests.conversation_helpers import seed_contact
from tests.helpers import create_workflow, definition, in_process_api, submit, wait_job


@pytest.fixture(scope="module")
async def objects_a(settings, engine, temporal, tenant_a):
    """One of each kind of object, all tenant A's."""
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, key="cross-tenant-secret-wf"))
        job_id = (await submit(tenant_a.api, wf["key"], {"company": "Secret Co"})).json()["job_id"]
        job = await wait_job(tenant_a.api, job_id)
    upload = (await tenant_a.api.post("/v1/uploads", content=b"secret upload")).json()
    contact = await seed_contact(engine, tenant_a.id, messages=2)
    schedule = await create_summary_schedule(temporal, settings, tenant_a.id, contact.id)
    yield {
        "job": job["id"],
        "artifact": job["artifacts"][0]["id"],
        "workflow": wf["key"],
        "schedule": schedule.id,
        "phone": contact.phone_number_id,
        "upload": upload["upload_id"],
    }
    await temporal.get_schedule_handle(schedule.id).delete()


def calls(o: dict) -> list[tuple[str, str, dict | None]]:
    past = datetime.now(UTC) - timedelta(days=2)
    return [
        ("GET", f"/v1/jobs/{o['job']}", None),
        ("GET", f"/v1/artifacts/{o['artifact']}", None),
        ("GET", f"/v1/artifacts/{o['artifact']}/link", None),
        ("GET", f"/v1/workflows/{o['workflow']}", None),
        ("GET", f"/v1/schedules/{o['schedule']}", None),
        ("POST", f"/v1/schedules/{o['schedule']}/pause", {"note": "x"}),
        ("POST", f"/v1/schedules/{o['schedule']}/unpause", {"note": "x"}),
        ("POST", f"/v1/schedules/{o['schedule']}/trigger", None),
        (
            "POST",
            f"/v1/schedules/{o['schedule']}/backfill",
            {"start": (past - timedelta(days=1)).isoformat(), "end": past.isoformat()},
        ),
        ("DELETE", f"/v1/schedules/{o['schedule']}", None),
        ("DELETE", f"/v1/channels/whatsapp/{o['phone']}", None),
        ("POST", "/v1/submissions", {"workflow_key": o["workflow"], "input": {"company": "x"}}),
        ("POST", "/v1/submissions", {"workflow_key": "x", "input": {}, "input_upload_id": o["upload"]}),
    ]


# Routes whose path names an object; the matrix below must cover each one. The signed
# download takes no token (its link names the tenant): tests/test_artifact_links.py covers it.
# Likewise a public form: the slug names its tenant (tests/test_forms.py).
SIGNED_ROUTES = {"/v1/artifacts/{artifact_id}/download", "/v1/public/forms/{slug}/submissions"}
ID_ROUTES_COVERED = {
    "/v1/jobs/{job_id}",
    "/v1/artifacts/{artifact_id}",
    "/v1/artifacts/{artifact_id}/link",
    "/v1/workflows/{key}",
    "/v1/schedules/{schedule_id}",
    "/v1/schedules/{schedule_id}/pause",
    "/v1/schedules/{schedule_id}/unpause",
    "/v1/schedules/{schedule_id}/trigger",
    "/v1/schedules/{schedule_id}/backfill",
    "/v1/channels/whatsapp/{phone_number_id}",
}


def test_matrix_covers_every_route_with_an_object_id():
    app = create_app()
    id_routes = {r.path for r in app.routes if "{" in getattr(r, "path", "") and r.path.startswith("/v1/")}
    assert id_routes - ID_ROUTES_COVERED - SIGNED_ROUTES == set(), "add the new route to the cross-tenant matrix"


async def test_tenant_b_gets_404_and_changes_nothing(objects_a, tenant_a, tenant_b):
    before = {
        path: (await tenant_a.api.get(path)).json()
        for path in (f"/v1/jobs/{objects_a['job']}", f"/v1/schedules/{objects_a['schedule']}")
    }
    for method, path, body in calls(objects_a):
        if method == "GET":
            resp = await tenant_b.api.get(path)
        else:
            resp = await tenant_b.api.request(method, path, json=body)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
        # The detail may echo the id B sent (a schedule id embeds the tenant); nothing more.
        echoed = resp.text.replace(objects_a["schedule"], "")
        assert "Secret Co" not in echoed and str(tenant_a.id) not in echoed
    for path, old in before.items():
        now = (await tenant_a.api.get(path)).json()
        assert now.get("status") == old.get("status") and now.get("paused") == old.get("paused"), path
    channels = (await tenant_a.api.get("/v1/channels/whatsapp")).json()
    assert objects_a["phone"] in re.findall(r"[\w.-]+", str(channels))


async def test_interleaved_requests_over_a_small_pool_never_mix_tenants(settings, tenant_a, tenant_b, objects_a):
    wf_b = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    job_b = (await submit(tenant_b.api, wf_b["key"])).json()["job_id"]
    own = {tenant_a.id: objects_a["job"], tenant_b.id: job_b}
    errors: list[str] = []
    sem = asyncio.Semaphore(16)

    async def one(i: int, api: httpx.AsyncClient, tenant, other) -> None:  # type: ignore[no-untyped-def]
        headers = {"Authorization": tokens[tenant]}
        async with sem:
            if i % 2:
                resp = await api.get("/v1/jobs", params={"limit": 200}, headers=headers)
                ids = {j["id"] for j in resp.json()["items"]}
                if own[other] in ids or own[tenant] not in ids:
                    errors.append(f"list {i}")
            else:
                mine = await api.get(f"/v1/jobs/{own[tenant]}", headers=headers)
                theirs = await api.get(f"/v1/jobs/{own[other]}", headers=headers)
                if mine.status_code != 200 or theirs.status_code != 404:
                    errors.append(f"get {i}: {mine.status_code}/{theirs.status_code}")

    tokens = {t.id: t.api.headers["authorization"] for t in (tenant_a, tenant_b)}
    async with in_process_api(settings, db_pool_size=1) as api:  # pool 1 + overflow 1: two connections
        await asyncio.gather(
            *[one(i, api, t.id, o.id) for i in range(250) for t, o in ((tenant_a, tenant_b), (tenant_b, tenant_a))]
        )
    assert errors == []
