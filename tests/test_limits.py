"""Body-size caps per route (413), the per-tenant submission rate (429 + Retry-After), and
the caps on uploads in flight (429 per tenant, 503 per API process)."""

import asyncio
import socket
import time

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from api.limits import UploadSlots
from tests.conftest import _tenant
from tests.helpers import create_workflow, definition, in_process_api


async def test_declared_body_over_the_cap_is_413_before_any_byte(settings, tenant_a):
    """Headers only: the answer comes without the body ever being sent."""

    def ask() -> bytes:
        with socket.create_connection((settings.api_host, settings.api_port), timeout=10) as sock:
            sock.sendall(
                (
                    f"POST /v1/workflows HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: {tenant_a.api.headers['authorization']}\r\n"
                    f"Content-Type: application/json\r\n"
                    f"Content-Length: {settings.request_body_max_bytes + 1}\r\n\r\n"
                ).encode()
            )
            answer = b""
            while chunk := sock.recv(65536):  # the server closes after answering
                answer += chunk
            return answer

    answer = await asyncio.to_thread(ask)
    assert answer.startswith(b"HTTP/1.1 413") and b"payload_too_large" in answer


def uploads_in_flight(settings) -> float:  # type: ignore[no-untyped-def]
    """The API server's lodestone_uploads_in_flight gauge, from its GET /metrics."""
    metrics = httpx.get(f"{settings.api_url}/metrics", timeout=10).text
    return next(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "lodestone_uploads_in_flight"
    )


def auth(tenant) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": tenant.api.headers["authorization"]}


async def test_chunked_body_over_the_cap_is_413(settings, tenant_a):
    async def chunks():
        for _ in range(10):
            yield b" " * 4096

    async with in_process_api(settings, request_body_max_bytes=10_000) as api:
        resp = await api.post(
            "/v1/workflows", content=chunks(), headers={"content-type": "application/json", **auth(tenant_a)}
        )
        assert resp.status_code == 413
        ok = await api.post("/v1/workflows", json=definition("http://127.0.0.1:9/hook"), headers=auth(tenant_a))
        assert ok.status_code == 201  # under the cap


async def test_submission_rate_is_per_tenant(settings, engine):
    # Fresh tenants: a tenant's bucket is in PostgreSQL, shared with every test's API.
    tenant_a, tenant_b = await _tenant(settings, engine, "Rate A"), await _tenant(settings, engine, "Rate B")
    wf_a = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    wf_b = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    async with in_process_api(settings, submissions_per_minute=6, submissions_burst=3) as api:
        a = [
            await api.post(
                "/v1/submissions", json={"workflow_key": wf_a["key"], "input": {"company": "A"}}, headers=auth(tenant_a)
            )
            for _ in range(4)
        ]
        b = await api.post(
            "/v1/submissions", json={"workflow_key": wf_b["key"], "input": {"company": "B"}}, headers=auth(tenant_b)
        )
    assert [r.status_code for r in a] == [202, 202, 202, 429]
    assert a[3].json()["code"] == "rate_limited" and 1 <= int(a[3].headers["retry-after"]) <= 11
    assert b.status_code == 202  # another tenant's budget is its own


class HeldBody:
    """A request body that sends its first chunk, then waits until released: while it
    waits, the upload holds its slot."""

    def __init__(self, release: asyncio.Event, size: int = 100_000) -> None:
        self.release, self.size = release, size
        self.started = asyncio.Event()

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield b"x" * (self.size // 2)
        self.started.set()  # the API is reading the body, so it has taken the slot
        await self.release.wait()
        yield b"x" * (self.size - self.size // 2)


async def test_uploads_in_flight_are_capped_per_tenant_and_per_process(settings, tenant_a, tenant_b):
    release = asyncio.Event()
    async with in_process_api(settings, uploads_in_flight=3, tenant_uploads_in_flight=2) as api:
        held = []

        async def hold(tenant):  # type: ignore[no-untyped-def]
            body = HeldBody(release)
            held.append(asyncio.create_task(api.post("/v1/uploads", content=body, headers=auth(tenant))))
            await asyncio.wait_for(body.started.wait(), 10)

        await hold(tenant_a)
        await hold(tenant_a)
        third_of_a = await api.post("/v1/uploads", content=b"y" * 10, headers=auth(tenant_a))
        await hold(tenant_b)  # tenant_a's cap does not touch tenant_b
        process_full = await api.post("/v1/uploads", content=b"y" * 10, headers=auth(tenant_b))
        gauge_while_held = REGISTRY.get_sample_value("lodestone_uploads_in_flight")
        release.set()
        done = await asyncio.gather(*held)
        after = await api.post("/v1/uploads", content=b"z" * 10, headers=auth(tenant_a))
        gauge_after = REGISTRY.get_sample_value("lodestone_uploads_in_flight")

    assert third_of_a.status_code == 429 and third_of_a.json()["code"] == "too_many_uploads"
    assert process_full.status_code == 503 and process_full.json()["code"] == "uploads_busy"
    for refused in (third_of_a, process_full):
        assert refused.headers["retry-after"] == "10" and refused.headers["connection"] == "close"
    assert [r.status_code for r in done] == [201, 201, 201] and {r.json()["size"] for r in done} == {100_000}
    assert after.status_code == 201  # every slot came back
    assert (gauge_while_held, gauge_after) == (3, 0)


async def test_an_upload_past_the_tenant_cap_is_refused_before_its_body(settings, engine):
    """On the real server: the tenant's uploads in flight are held open by sockets that sent
    half a body; one more, sending headers only, is answered 429 without its body."""
    tenant = await _tenant(settings, engine, "Busy uploader")
    head = (
        f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: {tenant.api.headers['authorization']}\r\n"
        f"Content-Length: {1024 * 1024}\r\n\r\n"
    ).encode()

    def run() -> bytes:
        held = [
            socket.create_connection((settings.api_host, settings.api_port), timeout=10)
            for _ in range(settings.tenant_uploads_in_flight)
        ]
        try:
            for sock in held:
                sock.sendall(head + b"x" * 512 * 1024)
            for _ in range(100):  # until the server's gauge shows every held upload streaming
                if uploads_in_flight(settings) >= len(held):
                    break
                time.sleep(0.1)
            return ask_once()
        finally:
            for sock in held:
                sock.close()

    def ask_once() -> bytes:
        with socket.create_connection((settings.api_host, settings.api_port), timeout=10) as sock:
            sock.sendall(head)  # and no body
            answer = b""
            while chunk := sock.recv(65536):  # Connection: close, so the server ends it
                answer += chunk
            return answer

    try:
        answer = await asyncio.to_thread(run)
    finally:
        await tenant.api.aclose()
    assert answer.startswith(b"HTTP/1.1 429") and b"too_many_uploads" in answer and b"retry-after: 10" in answer.lower()


async def test_an_upload_that_fails_gives_its_slot_back(settings, tenant_a):
    async def over_limit():  # chunked, so the limit is only found while streaming
        for _ in range(3):
            yield b"x" * 1000

    async def breaks():
        yield b"x" * 1000
        raise ConnectionResetError("the client's body broke off")

    async with in_process_api(settings, uploads_in_flight=1, tenant_uploads_in_flight=1, upload_max_bytes=2000) as api:
        too_large = await api.post("/v1/uploads", content=over_limit(), headers=auth(tenant_a))
        # The API answers an error it did not expect with a 500 problem, not by raising it.
        assert (await api.post("/v1/uploads", content=breaks(), headers=auth(tenant_a))).status_code == 500
        ok = await api.post("/v1/uploads", content=b"x" * 1500, headers=auth(tenant_a))
    assert too_large.status_code == 413
    assert ok.status_code == 201, ok.text  # 429 if either failure had kept its slot


def test_upload_slots_count_per_tenant():
    slots = UploadSlots(total=3, per_tenant=2)
    assert [slots.take("a"), slots.take("a"), slots.take("a")] == [None, None, "tenant"]
    assert [slots.take("b"), slots.take("b")] == [None, "process"]
    slots.release("a")
    assert slots.take("b") is None and slots.in_flight == {"a": 1, "b": 2}
    for tenant in ("a", "b", "b"):
        slots.release(tenant)
    assert slots.in_flight == {}
