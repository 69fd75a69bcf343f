"""Tenant isolation, at the database (row-level security) and at the API."""

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.tables import TENANT_TABLES, ChannelRoute, Job, WorkflowDefinition
from tests.helpers import create_workflow, definition, submit, wait_job


@pytest.fixture(scope="module")
async def delivered_job_a(tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url))
        job_id = (await submit(tenant_a.api, wf["key"], {"company": "Secret Co"})).json()["job_id"]
        return await wait_job(tenant_a.api, job_id)


async def test_app_role_is_not_owner_or_superuser(owner_engine, engine):
    async with engine.connect() as conn:
        role = (
            await conn.execute(
                text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            )
        ).one()
        owners = (
            (await conn.execute(text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")))
            .scalars()
            .all()
        )
    assert role.rolsuper is False and role.rolbypassrls is False
    assert role.rolname not in owners
    async with owner_engine.connect() as conn:
        flags = dict(
            (
                await conn.execute(
                    text(
                        "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = ANY(:t)"
                    ),
                    {"t": ["tenants", *TENANT_TABLES]},
                )
            ).all()
        )
    assert flags == dict.fromkeys(["tenants", *TENANT_TABLES], True)


async def test_rls_hides_other_tenants_rows(engine, tenant_a, tenant_b, delivered_job_a):
    job_id = uuid.UUID(delivered_job_a["id"])
    async with tenant_session(engine, tenant_b.id) as s:
        assert await s.get(Job, job_id) is None
        assert all(j.tenant_id == tenant_b.id for j in (await s.exec(select(Job))).all())
    async with tenant_session(engine, tenant_a.id) as s:
        assert (await s.get(Job, job_id)) is not None


# The two route tables are the deliberate exceptions: every tenant reads them, only owners write.
PRIVATE_TABLES = ["tenants", *(t for t in TENANT_TABLES if t not in ("channel_routes", "form_routes"))]


async def test_no_tenant_set_sees_nothing(engine, delivered_job_a):
    async with AsyncSession(engine) as s:
        for table in PRIVATE_TABLES:
            count = (await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            assert count == 0, table


async def test_channel_routes_are_readable_but_only_their_owner_writes(engine, tenant_a, tenant_b):
    async with tenant_session(engine, tenant_a.id) as s:
        s.add(ChannelRoute(phone_number_id=f"iso-{uuid.uuid4().hex[:8]}", tenant_id=tenant_a.id))
    async with tenant_session(engine, tenant_b.id) as s:
        routes = (await s.exec(select(ChannelRoute).where(ChannelRoute.tenant_id == tenant_a.id))).all()
        assert routes  # readable: a webhook must find its tenant
        result = await s.execute(
            text("UPDATE channel_routes SET tenant_id = :b WHERE tenant_id = :a"), {"a": tenant_a.id, "b": tenant_b.id}
        )
        assert result.rowcount == 0  # but not B's to change
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(engine, tenant_b.id) as s:
            s.add(ChannelRoute(phone_number_id=f"iso-{uuid.uuid4().hex[:8]}", tenant_id=tenant_a.id))


async def test_rls_blocks_writing_into_another_tenant(engine, tenant_a, tenant_b):
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(engine, tenant_b.id) as s:
            s.add(WorkflowDefinition(tenant_id=tenant_a.id, key="sneaky", version=1, definition={}))


async def test_api_returns_404_across_tenants(tenant_a, tenant_b, delivered_job_a):
    job_id = delivered_job_a["id"]
    artifact_id = delivered_job_a["artifacts"][0]["id"]
    for path in (f"/v1/jobs/{job_id}", f"/v1/artifacts/{artifact_id}"):
        resp = await tenant_b.api.get(path)
        assert resp.status_code == 404, path
        assert "Secret Co" not in resp.text
    assert (await tenant_a.api.get(f"/v1/jobs/{job_id}")).status_code == 200
    listed = (await tenant_b.api.get("/v1/jobs?limit=200")).json()["items"]
    assert job_id not in {j["id"] for j in listed}
    assert (await tenant_b.api.get(f"/v1/workflows/{delivered_job_a['workflow_key']}")).status_code == 404
    # B cannot run A's workflow definition either.
    assert (await submit(tenant_b.api, delivered_job_a["workflow_key"])).status_code == 404


async def test_job_list_pages_with_cursor(tenant_b):
    wf = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    ids = {(await submit(tenant_b.api, wf["key"])).json()["job_id"] for _ in range(3)}
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "workflow_key": wf["key"], **({"cursor": cursor} if cursor else {})}
        page = (await tenant_b.api.get("/v1/jobs", params=params)).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(seen) == ids and len(seen) == 3
    assert (await tenant_b.api.get("/v1/jobs", params={"cursor": "garbage"})).status_code == 400
