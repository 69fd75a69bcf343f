"""Idempotency-Key: the same key and body give the same job; another body gives 409."""

import asyncio
import uuid

from tests.helpers import create_workflow, definition, submit


async def test_same_key_same_body_same_job(tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    key = uuid.uuid4().hex
    first = await submit(tenant_a.api, wf["key"], {"company": "Acme"}, key)
    second = await submit(tenant_a.api, wf["key"], {"company": "Acme"}, key)
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    conflict = await submit(tenant_a.api, wf["key"], {"company": "Other"}, key)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_conflict"
    fresh = await submit(tenant_a.api, wf["key"], {"company": "Acme"}, uuid.uuid4().hex)
    assert fresh.json()["job_id"] != first.json()["job_id"]


async def test_concurrent_twins_make_one_job(tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    key = uuid.uuid4().hex
    results = await asyncio.gather(*[submit(tenant_a.api, wf["key"], {"company": "Twin"}, key) for _ in range(8)])
    assert {r.status_code for r in results} == {202}
    assert len({r.json()["job_id"] for r in results}) == 1


async def test_keys_are_per_tenant(tenant_a, tenant_b):
    key = uuid.uuid4().hex
    wf_a = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    wf_b = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    a = await submit(tenant_a.api, wf_a["key"], {"company": "A"}, key)
    b = await submit(tenant_b.api, wf_b["key"], {"company": "B"}, key)
    assert a.status_code == b.status_code == 202
    assert a.json()["job_id"] != b.json()["job_id"]
