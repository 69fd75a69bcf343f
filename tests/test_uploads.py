"""POST /v1/uploads streams to object storage; submissions take an upload or a URL."""

import asyncio
import hashlib
import os
import select as selectors_
import socket
import uuid

import pytest
from sqlmodel import select

from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.tables import Tenant, Upload
from tests.conftest import _tenant
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.standins.file_source import FileSource

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
async def small_tenant(settings, engine):
    """A tenant whose upload limit is 1 MiB."""
    ctx = await _tenant(settings, engine, "Small uploads")
    async with tenant_session(engine, ctx.id) as s:
        tenant = await s.get(Tenant, ctx.id)
        tenant.upload_limit_bytes = LIMIT
        s.add(tenant)
    yield ctx
    await ctx.api.aclose()


async def uploads_of(engine, tenant_id) -> list[Upload]:
    async with tenant_session(engine, tenant_id) as s:
        return list((await s.exec(select(Upload))).all())


def partial_files(settings) -> list:
    return list((settings.data_path / "objects" / ".partial").iterdir())


def upload_objects(settings, tenant_id) -> set:
    return set((settings.data_path / "objects" / str(tenant_id) / "uploads").glob("*/input"))


async def test_upload_with_content_length(tenant_a, settings):
    data = os.urandom(300_000)
    resp = await tenant_a.api.post("/v1/uploads", content=data, headers={"content-type": "text/csv"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["size"] == len(data) and body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["key"] == f"{tenant_a.id}/uploads/{body['upload_id']}/input"
    assert (settings.data_path / "objects" / body["key"]).read_bytes() == data


async def test_chunked_upload(tenant_a, settings):
    parts = [os.urandom(70_000) for _ in range(5)]

    async def gen():
        for p in parts:
            yield p

    resp = await tenant_a.api.post("/v1/uploads", content=gen())
    assert resp.status_code == 201, resp.text
    assert resp.json()["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


async def test_declared_size_over_limit_is_413_before_reading(small_tenant, engine, settings):
    resp = await small_tenant.api.post("/v1/uploads", content=os.urandom(LIMIT + 1))
    assert resp.status_code == 413 and resp.json()["code"] == "payload_too_large"
    assert await uploads_of(engine, small_tenant.id) == []


def chunked_upload_reading_early_answer(host: str, port: int, token: str, chunks: int) -> bytes:
    """Send a chunked body the way a careful client does: watching for an early answer."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        for _ in range(chunks):
            if selectors_.select([sock], [], [], 0.02)[0]:
                break  # the server has answered before the body ended
            chunk = os.urandom(64 * 1024)
            try:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        return sock.recv(65536)


async def test_chunked_body_over_limit_is_413_and_leaves_nothing(small_tenant, engine, settings):
    answer = await asyncio.to_thread(
        chunked_upload_reading_early_answer,
        settings.api_host,
        settings.api_port,
        small_tenant.api.headers["authorization"],
        40,
    )  # 2.5 MiB, never declared
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert await uploads_of(engine, small_tenant.id) == []
    assert not (settings.data_path / "objects" / str(small_tenant.id)).exists()
    assert partial_files(settings) == []


async def test_client_disconnect_leaves_no_object_and_no_row(tenant_b, engine, settings):
    token = tenant_b.api.headers["authorization"]
    before = len(await uploads_of(engine, tenant_b.id))
    objects_before = upload_objects(settings, tenant_b.id)  # other tests' uploads stay

    def send_half() -> None:
        with socket.create_connection((settings.api_host, settings.api_port)) as sock:
            sock.sendall(
                (
                    f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
                    f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
                ).encode()
            )
            sock.sendall(os.urandom(3 * 1024 * 1024))

    await asyncio.to_thread(send_half)
    for _ in range(50):  # the server notices the disconnect asynchronously
        if partial_files(settings) == []:
            break
        await asyncio.sleep(0.1)
    assert partial_files(settings) == []
    assert len(await uploads_of(engine, tenant_b.id)) == before
    assert upload_objects(settings, tenant_b.id) == objects_before


async def test_submission_reads_a_bounded_excerpt_of_the_upload(tenant_a, llm_standin, settings):
    head = b"FIRST-MARKER " + b"x" * settings.input_excerpt_bytes
    data = head + b" LATE-MARKER " + os.urandom(50_000).hex().encode()
    upload = (await tenant_a.api.post("/v1/uploads", content=data)).json()
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        body = definition(hook.url)
        model = f"ok-{uuid.uuid4().hex[:8]}"
        body["steps"][0].update(model=model, instructions="Summarise: {{ input_file.excerpt }} ({{ input_file.size }})")
        wf = await create_workflow(tenant_a.api, body)
        resp = await tenant_a.api.post(
            "/v1/submissions",
            json={"workflow_key": wf["key"], "input": {"company": "Acme"}, "input_upload_id": upload["upload_id"]},
        )
        job = await wait_job(tenant_a.api, resp.json()["job_id"])
    assert job["status"] == "delivered", job
    prompt = next(r for r in llm_standin.requests if r["model"] == model)["messages"][0]["content"]
    assert "FIRST-MARKER" in prompt and "LATE-MARKER" not in prompt
    assert f"({len(data)})" in prompt
    assert len(prompt.encode()) < settings.input_excerpt_bytes + 200


async def test_submission_cannot_use_another_tenants_upload(tenant_a, tenant_b):
    upload = (await tenant_a.api.post("/v1/uploads", content=b"private")).json()
    wf = await create_workflow(tenant_b.api, definition("http://127.0.0.1:9/hook"))
    resp = await tenant_b.api.post(
        "/v1/submissions",
        json={"workflow_key": wf["key"], "input": {"company": "B"}, "input_upload_id": upload["upload_id"]},
    )
    assert resp.status_code == 404


async def test_submission_ingests_input_url(tenant_a, settings):
    data = os.urandom(2_500_000)
    source = FileSource(data)
    try:
        with WebhookReceiver(tenant_a.webhook_secret) as hook:
            wf = await create_workflow(tenant_a.api, definition(hook.url))
            resp = await tenant_a.api.post(
                "/v1/submissions",
                json={"workflow_key": wf["key"], "input": {"company": "Acme"}, "input_url": source.url()},
            )
            job = await wait_job(tenant_a.api, resp.json()["job_id"])
    finally:
        source.close()
    assert job["status"] == "delivered", job
    stored = settings.data_path / "objects" / f"{tenant_a.id}/jobs/{job['id']}/input"
    assert stored.read_bytes() == data


async def test_input_url_checks(tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/", "not a url"):
        resp = await tenant_a.api.post(
            "/v1/submissions", json={"workflow_key": wf["key"], "input": {"company": "A"}, "input_url": url}
        )
        assert resp.status_code == 422, url
    source = FileSource(b"unused")
    try:
        resp = await submit(tenant_a.api, wf["key"])  # control: no input object is fine
        assert resp.status_code == 202
        resp = await tenant_a.api.post(
            "/v1/submissions",
            json={"workflow_key": wf["key"], "input": {"company": "A"}, "input_url": source.url("/metadata")},
        )
        job = await wait_job(tenant_a.api, resp.json()["job_id"])
    finally:
        source.close()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "InputURLRefused" and job["error"]["failed_step"] == "ingest"
    assert "169.254.169.254" in job["error"]["message"]
