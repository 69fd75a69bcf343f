"""Body-size caps per route (413) and the per-tenant submission rate (429 + Retry-After)."""

import asyncio
import socket

import pytest

from api.limits import TenantRateLimiter
from tests.helpers import create_workflow, definition, in_process_api


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


def auth(tenant) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": tenant.api.headers["authorization"]}


async def test_chunked_body_over_the_cap_is_413(settings, tenant_a):
    async def chunks():
        for _ in range(10):
            yield b" " * 4096

    async with in_process_api(settings, request_body_max_bytes=10_000) as api:
        resp = await api.post("/v1/workflows", content=chunks(),
                              headers={"content-type": "application/json", **auth(tenant_a)})
        assert resp.status_code == 413
        ok = await api.post("/v1/workflows", json=definition("http://127.0.0.1:9/hook"), headers=auth(tenant_a))
        assert ok.status_code == 201  # under the cap


async def test_submission_rate_is_per_tenant(settings, tenant_a, tenant_b):
    wf_a = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    wf_b = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    async with in_process_api(settings, submissions_per_minute=6, submissions_burst=3) as api:
        a = [await api.post("/v1/submissions", json={"workflow_key": wf_a["key"], "input": {"company": "A"}},
                            headers=auth(tenant_a)) for _ in range(4)]
        b = await api.post("/v1/submissions", json={"workflow_key": wf_b["key"], "input": {"company": "B"}},
                           headers=auth(tenant_b))
    assert [r.status_code for r in a] == [202, 202, 202, 429]
    assert a[3].json()["code"] == "rate_limited" and 1 <= int(a[3].headers["retry-after"]) <= 11
    assert b.status_code == 202  # another tenant's budget is its own


def test_bucket_refills_at_the_rate():
    bucket = TenantRateLimiter(per_minute=60, burst=2)
    assert bucket.take("t", now=0) == 0 and bucket.take("t", now=0) == 0
    assert bucket.take("t", now=0) == pytest.approx(1.0)
    assert bucket.take("t", now=1.0) == 0  # one token back after a second
    assert bucket.take("u", now=1.0) == 0
