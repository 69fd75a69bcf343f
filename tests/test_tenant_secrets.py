"""A tenant's webhook secret resolved by reference at delivery time; references are confined
to the tenant's own space."""

import uuid

import pytest

from devstack.receiver import WebhookReceiver
from lodestone.secrets import InvalidSecretRef
from lodestone.tenant_secrets import MAX_SECRET_REFS, check_tenant_ref, tenant_env_prefix
from services.tenants import new_webhook_secret
from tests.helpers import create_workflow, definition, submit, wait_job


async def test_webhook_is_signed_with_the_referenced_secret(settings, tenant_b):
    secret = new_webhook_secret()
    path = settings.data_path / "secrets" / "tenants" / str(tenant_b.id) / "webhook_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n")
    resp = await tenant_b.api.put("/v1/tenant/secrets", json={"refs": {"webhook_secret": f"file:{path}"}})
    assert resp.status_code == 200, resp.text
    assert (await tenant_b.api.get("/v1/tenant/secrets")).json() == {"refs": {"webhook_secret": f"file:{path}"}}
    try:
        with WebhookReceiver(secret) as hook:
            wf = await create_workflow(tenant_b.api, definition(hook.url))
            job = await wait_job(tenant_b.api, (await submit(tenant_b.api, wf["key"])).json()["job_id"])
        assert job["status"] == "delivered"
        assert hook.received and hook.received[0].verified  # signed with the file's secret, not the row's
        assert secret != tenant_b.webhook_secret
    finally:
        await tenant_b.api.put("/v1/tenant/secrets", json={"refs": {}})


@pytest.mark.parametrize(
    "ref",
    [
        "vault:lodestone/tenants/{other}/keys#webhook",
        "vault:lodestone/shared#webhook",
        "file:/srv/secrets/tenants/{other}/webhook",
        "file:/srv/secrets/tenants/{me}/../{other}/x",
        "env:WEBHOOK_SECRET",
        "env:" + tenant_env_prefix("00000000-0000-4000-8000-000000000001") + "X",
        "https://example.com/secret",
        "vault:lodestone/tenants/{me}",
    ],
)
async def test_references_outside_the_tenant_are_refused(ref, tenant_a, tenant_b):
    ref = ref.format(me=tenant_a.id, other=tenant_b.id)
    resp = await tenant_a.api.put("/v1/tenant/secrets", json={"refs": {"webhook_secret": ref}})
    assert resp.status_code == 422 and resp.json()["code"] == "invalid_secret_ref"


def test_references_inside_the_tenant_are_accepted(tenant_a):
    for ref in (
        f"vault:lodestone/tenants/{tenant_a.id}/keys#webhook",
        f"file:/srv/secrets/tenants/{tenant_a.id}/webhook",
        f"env:{tenant_env_prefix(tenant_a.id)}WEBHOOK",
    ):
        check_tenant_ref(tenant_a.id, ref)
    with pytest.raises(InvalidSecretRef):
        check_tenant_ref(tenant_a.id, f"vault:lodestone/tenants/{tenant_a.id}")  # no #field


@pytest.mark.parametrize("name", ["LLM_KEY", "svc token", "9lives", "x" * 65, ""])
async def test_a_malformed_secret_name_is_refused(name, tenant_a):
    ref = f"env:{tenant_env_prefix(tenant_a.id)}X"
    resp = await tenant_a.api.put("/v1/tenant/secrets", json={"refs": {name: ref}})
    assert resp.status_code == 422 and resp.json()["code"] == "unknown_secret"


async def test_a_tenant_names_secrets_of_its_own_inside_its_own_space(tenant_a, tenant_b):
    """For state machines' http Tasks: a header value {"secret": "svc_token"}."""
    mine = {"svc_token": f"env:{tenant_env_prefix(tenant_a.id)}SVC_TOKEN"}
    try:
        resp = await tenant_a.api.put("/v1/tenant/secrets", json={"refs": mine})
        assert resp.status_code == 200 and resp.json() == {"refs": mine}
        theirs = {"svc_token": f"env:{tenant_env_prefix(tenant_b.id)}SVC_TOKEN"}
        resp = await tenant_a.api.put("/v1/tenant/secrets", json={"refs": theirs})
        assert resp.status_code == 422 and resp.json()["code"] == "invalid_secret_ref"
        too_many = {f"s{i}": mine["svc_token"] for i in range(MAX_SECRET_REFS + 1)}
        assert (await tenant_a.api.put("/v1/tenant/secrets", json={"refs": too_many})).status_code == 422
        assert (await tenant_a.api.get("/v1/tenant/secrets")).json() == {"refs": mine}
    finally:
        await tenant_a.api.put("/v1/tenant/secrets", json={"refs": {}})


async def test_steps_call_the_llm_with_the_tenants_own_key(settings, tenant_b, llm_standin):
    path = settings.data_path / "secrets" / "tenants" / str(tenant_b.id) / "llm_api_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("tenant-b-own-llm-key")
    await tenant_b.api.put("/v1/tenant/secrets", json={"refs": {"llm_api_key": f"file:{path}"}})
    model = f"ok-{uuid.uuid4().hex[:8]}"
    try:
        with WebhookReceiver(tenant_b.webhook_secret) as hook:
            wf = await create_workflow(tenant_b.api, definition(hook.url, model=model))
            job = await wait_job(tenant_b.api, (await submit(tenant_b.api, wf["key"])).json()["job_id"])
    finally:
        await tenant_b.api.put("/v1/tenant/secrets", json={"refs": {}})
    assert job["status"] == "delivered"
    auths = {r["_authorization"] for r in llm_standin.requests if r["model"] == model}
    assert auths == {"Bearer tenant-b-own-llm-key"}  # never the platform's LLM_API_KEY
