"""Body-size caps per route (413) and the per-tenant submission rate (429 + Retry-After)."""

import asyncio
import socket

import httpx
import pytest

from api.app import create_app
from api.limits import TenantRateLimiter
from tests.helpers import create_workflow, definition


async def test_declared_body_over_the_cap_is_413_before_any_byte(settings, tenant_a):
    """Headers only: the answer comes without the body ever being sent."""
    def ask() -> bytes:
        with socket.create_connection((settings.api_host, settings.api_port), timeout=10) as sock:
            sock.sendall((f"POST /v1/workflows HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: {tenant_a.api.headers['authorization']}\r\n"
                          f"Content-Type: application/json\r\n"
                          f"Content-Length: {settings.request_body_max_bytes + 1}\r\n\r\n").encode())
            answer = b""
            while chunk := sock.recv(65536):  # the server closes after answering
                answer += chunk
            return answer

    answer = await asyncio.to_thread(ask)
    assert answer.startswith(b"HTTP/1.1 413") and b"payload_too_large" in answer


@pytest.fixture
async def in_process(settings, tenant_a):
    async def make(**overrides):
        app = create_app(settings.model_copy(update=overrides))
        return app

    return make


async def test_chunked_body_over_the_cap_is_413(settings, tenant_a, in_process):
    app = await in_process(request_body_max_bytes=10_000)

    async def chunks():
        for _ in range(10):
            yield b" " * 4096

    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test",
            headers={"Authorization": tenant_a.api.headers["authorization"]}) as api:
        resp = await api.post("/v1/workflows", content=chunks(), headers={"content-type": "application/json"})
        assert resp.status_code == 413
        ok = await api.post("/v1/workflows", json=definition("http://127.0.0.1:9/hook"))  # under the cap
        assert ok.status_code == 201


async def test_submission_rate_is_per_tenant(settings, tenant_a, tenant_b, in_process):
    app = await in_process(submissions_per_minute=6, submissions_burst=3)
    wf_a = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    wf_b = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = [httpx.AsyncClient(transport=transport, base_url="http://api.test",
                                     headers={"Authorization": t.api.headers["authorization"]})
                   for t in (tenant_a, tenant_b)]
        try:
            a = [await clients[0].post("/v1/submissions", json={"workflow_key": wf_a["key"],
                                                                 "input": {"company": "A"}}) for _ in range(4)]
            b = await clients[1].post("/v1/submissions", json={"workflow_key": wf_b["key"], "input": {"company": "B"}})
        finally:
            for c in clients:
                await c.aclose()
    assert [r.status_code for r in a] == [202, 202, 202, 429]
    assert a[3].json()["code"] == "rate_limited" and 1 <= int(a[3].headers["retry-after"]) <= 11
    assert b.status_code == 202  # another tenant's budget is its own


def test_bucket_refills_at_the_rate():
    bucket = TenantRateLimiter(per_minute=60, burst=2)
    assert bucket.take("t", now=0) == 0 and bucket.take("t", now=0) == 0
    assert bucket.take("t", now=0) == pytest.approx(1.0)
    assert bucket.take("t", now=1.0) == 0  # one token back after a second
    assert bucket.take("u", now=1.0) == 0
