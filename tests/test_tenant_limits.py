"""GET/PUT /v1/tenant/limits on the session stack: the deployment's settings until a tenant
overrides them, overrides that stay the tenant's own, and bad bodies refused."""

import uuid

import httpx

from tests.conftest import _tenant


async def test_a_tenant_overrides_its_limits_and_no_other_tenants(settings, engine):
    own = await _tenant(settings, engine, f"Limits {uuid.uuid4().hex[:6]}")
    other = await _tenant(settings, engine, f"Limits {uuid.uuid4().hex[:6]}")
    defaults = {
        "max_running_jobs": settings.tenant_max_running_jobs,
        "max_llm_calls": settings.tenant_max_llm_calls,
        "max_renders": settings.tenant_max_renders,
        "submissions_per_minute": settings.submissions_per_minute,
        "submissions_burst": settings.submissions_burst,
    }
    first = (await own.api.get("/v1/tenant/limits")).json()
    assert first["effective"] == defaults and all(v is None for v in first["overrides"].values()), first

    put = await own.api.put("/v1/tenant/limits", json={"max_running_jobs": 3, "max_llm_calls": 2})
    assert put.status_code == 200, put.text
    assert put.json()["effective"] == {**defaults, "max_running_jobs": 3, "max_llm_calls": 2}
    assert (await own.api.get("/v1/tenant/limits")).json() == put.json()
    assert (await other.api.get("/v1/tenant/limits")).json()["effective"] == defaults

    # Replacing: what the new body leaves out goes back to the setting.
    again = await own.api.put("/v1/tenant/limits", json={"max_renders": 1})
    assert again.json()["effective"] == {**defaults, "max_renders": 1}
    for own_client in (own.api, other.api):
        await own_client.aclose()


async def test_bad_limits_are_refused_and_change_nothing(settings, engine):
    own = await _tenant(settings, engine, f"Limits {uuid.uuid4().hex[:6]}")
    assert (await own.api.put("/v1/tenant/limits", json={"max_llm_calls": 5})).status_code == 200
    for body in ({"max_llm_calls": 0}, {"max_jobs": 3}, {"max_renders": "many"}, {"max_renders": 10**9}, [1]):
        resp = await own.api.put("/v1/tenant/limits", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    assert (await own.api.get("/v1/tenant/limits")).json()["effective"]["max_llm_calls"] == 5
    viewer = own.token_for(settings, "viewer")
    async with httpx.AsyncClient(base_url=settings.api_url, headers={"Authorization": f"Bearer {viewer}"}) as api:
        assert (await api.put("/v1/tenant/limits", json={"max_llm_calls": 9})).status_code == 403
    await own.api.aclose()
