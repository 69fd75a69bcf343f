"""Public forms: unauthenticated submissions, validated against the form's fields,
rate-limited per tenant, and confined to the form's tenant."""

import uuid

import httpx

from devstack.receiver import WebhookReceiver
from tests.conftest import _tenant
from tests.helpers import create_workflow, definition, in_process_api, wait_job

FIELDS = {
    "type": "object",
    "required": ["company"],
    "additionalProperties": False,
    "properties": {"company": {"type": "string", "minLength": 1, "maxLength": 100}},
}


async def _form(api: httpx.AsyncClient, workflow_key: str) -> dict:
    resp = await api.post(
        "/v1/forms", json={"slug": f"lead-{uuid.uuid4().hex[:8]}", "workflow_key": workflow_key, "field_schema": FIELDS}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_anyone_can_submit_a_valid_form(settings, tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url))
        form = await _form(tenant_a.api, wf["key"])
        async with httpx.AsyncClient() as anonymous:
            resp = await anonymous.post(form["public_url"], json={"company": "Walk-in Ltd"})
            assert resp.status_code == 202, resp.text
            again = await anonymous.post(
                form["public_url"], json={"company": "Walk-in Ltd"}, headers={"Idempotency-Key": "k1"}
            )
            same = await anonymous.post(
                form["public_url"], json={"company": "Walk-in Ltd"}, headers={"Idempotency-Key": "k1"}
            )
        job = await wait_job(tenant_a.api, resp.json()["job_id"])  # the tenant sees the job as its own
    assert job["status"] == "delivered" and hook.wait_for_success(5) is not None
    assert again.json()["job_id"] == same.json()["job_id"]
    assert set(resp.json()) == {"job_id", "status"}  # no links into the tenant's private API


async def test_bad_fields_unknown_slug_and_taken_slug(settings, tenant_a, tenant_b):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    form = await _form(tenant_a.api, wf["key"])
    async with httpx.AsyncClient() as anonymous:
        for bad in ({}, {"company": ""}, {"company": "x", "extra": 1}, {"company": 7}):
            resp = await anonymous.post(form["public_url"], json=bad)
            assert resp.status_code == 422 and resp.json()["code"] == "invalid_input", bad
        missing = await anonymous.post(
            f"{settings.api_url}/v1/public/forms/no-such-form/submissions", json={"company": "x"}
        )
        assert missing.status_code == 404
    taken = await tenant_b.api.post("/v1/forms", json={"slug": form["slug"], "workflow_key": "x"})
    assert taken.status_code == 409
    assert form["slug"] not in {f["slug"] for f in (await tenant_b.api.get("/v1/forms")).json()}


async def test_public_form_rate_is_per_tenant(settings, engine):
    tenant_a = await _tenant(settings, engine, "Form rate")  # its own bucket (in PostgreSQL, shared by every API)
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    form = await _form(tenant_a.api, wf["key"])
    async with in_process_api(
        settings, public_form_submissions_per_minute=6, public_form_submissions_burst=2
    ) as anonymous:
        codes = [
            (await anonymous.post(f"/v1/public/forms/{form['slug']}/submissions", json={"company": f"c{i}"}))
            for i in range(3)
        ]
    assert [c.status_code for c in codes] == [202, 202, 429]
    assert int(codes[2].headers["retry-after"]) >= 1
