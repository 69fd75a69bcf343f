"""The stack's internals are not a tenant's to read: /metrics on the API and the worker
show series labelled with tenant ids only to a scrape with METRICS_TOKEN."""

import re

import httpx

from tests.helpers import definition, store_unchecked, submit, wait_job

TENANT_LABEL = re.compile(r'[{,]tenant_id="')


async def test_metrics_name_tenants_only_to_a_scrape_with_the_token(settings, stack, engine, tenant_a):
    wf = await store_unchecked(engine, tenant_a.id, definition("http://10.0.0.1/refused-hook"))
    job = await wait_job(tenant_a.api, (await submit(tenant_a.api, wf["key"])).json()["job_id"], timeout=60)
    assert job["status"] == "failed"  # it ran its steps, so every tenant series has a sample
    tenant = str(tenant_a.id)
    token = stack.env()["METRICS_TOKEN"]
    urls = {"api": f"{settings.api_url}/metrics", "worker": f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"}
    async with httpx.AsyncClient(timeout=10) as http:
        for name, url in urls.items():
            for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": token}):
                resp = await http.get(url, headers=headers)
                assert resp.status_code == 200, (name, resp.text)
                assert tenant not in resp.text and not TENANT_LABEL.search(resp.text), (name, headers)
                assert "lodestone_" in resp.text and "temporal_" in resp.text  # the rest is served to anyone
            full = (await http.get(url, headers={"Authorization": f"Bearer {token}"})).text
            assert f'tenant_id="{tenant}"' in full, name
