"""Resumable uploads (tus 1.0 core, creation, expiration, termination) on the real stack:
cut mid-PATCH and resumed, offsets checked, tenant-scoped, size-limited, swept when
abandoned, carried across an API restart; and S3's pre-signed part URLs against moto."""

import asyncio
import fcntl
import hashlib
import os
import socket
import time
import uuid

import httpx

from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.tables import ResumableUpload
from services import uploads_resumable
from tests import test_uploads
from tests.helpers import create_workflow, definition, in_process_api, wait_job

TUS = {"Tus-Resumable": "1.0.0"}
LIMIT = test_uploads.LIMIT
small_tenant = test_uploads.small_tenant  # the fixture: a tenant whose upload limit is LIMIT
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
BASE = "/v1/uploads/resumable"


async def create(api: httpx.AsyncClient, length: int) -> str:
    resp = await api.post(BASE, headers={**TUS, "Upload-Length": str(length)})
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{BASE}/{resp.json()['upload_id']}"
    return resp.headers["location"]


async def patch(api: httpx.AsyncClient, location: str, offset: int, body: bytes) -> httpx.Response:
    return await api.patch(location, content=body, headers={**PATCH, "Upload-Offset": str(offset)})


async def head_offset(api: httpx.AsyncClient, location: str) -> int:
    resp = await api.head(location, headers=TUS)
    assert resp.status_code == 200, resp.status_code
    return int(resp.headers["upload-offset"])


def patch_then_cut(host: str, port: int, token: str, path: str, offset: int, declared: int, sent: bytes) -> None:
    """A PATCH that declares `declared` bytes, sends `sent`, and drops the connection."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nTus-Resumable: 1.0.0\r\n"
                f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
        )
        sock.sendall(sent)


async def wait_for(condition, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return value


async def test_options_names_the_protocol(tenant_a):
    resp = await tenant_a.api.options(BASE)
    assert resp.status_code == 204
    assert resp.headers["tus-version"] == "1.0.0" and "termination" in resp.headers["tus-extension"]


async def test_cut_mid_patch_resumes_whole_and_feeds_a_submission(tenant_a, llm_standin, settings):
    data = b"RESUMED-MARKER " + os.urandom(3_000_000)
    location = await create(tenant_a.api, len(data))
    first = 1_000_000
    resp = await patch(tenant_a.api, location, 0, data[:first])
    assert resp.status_code == 204, resp.text
    assert resp.headers["upload-offset"] == str(first) and resp.headers["tus-resumable"] == "1.0.0"

    # The second PATCH declares everything but the connection drops after 1 MB of it.
    cut_after = 1_000_000
    await asyncio.to_thread(
        patch_then_cut,
        settings.api_host,
        settings.api_port,
        tenant_a.api.headers["authorization"],
        location,
        first,
        len(data) - first,
        data[first : first + cut_after],
    )

    async def moved() -> int:
        return (offset := await head_offset(tenant_a.api, location)) > first and offset

    stored = await wait_for(moved)
    assert first < stored <= first + cut_after  # what arrived before the cut is kept
    assert (await patch(tenant_a.api, location, first, data[first:])).status_code == 409  # not where it stands

    resp = await patch(tenant_a.api, location, stored, data[stored:])
    assert resp.status_code == 204, resp.text
    assert resp.headers["upload-offset"] == str(len(data))
    assert await head_offset(tenant_a.api, location) == len(data)
    done = (await tenant_a.api.get(location)).json()
    assert done["complete"] and done["upload"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (settings.data_path / "objects" / done["upload"]["key"]).read_bytes() == data

    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        body = definition(hook.url)
        model = f"ok-{uuid.uuid4().hex[:8]}"
        body["steps"][0].update(model=model, instructions="Summarise: {{ input_file.excerpt }}")
        wf = await create_workflow(tenant_a.api, body)
        resp = await tenant_a.api.post(
            "/v1/submissions",
            json={"workflow_key": wf["key"], "input": {"company": "Acme"}, "input_upload_id": done["upload_id"]},
        )
        assert resp.status_code == 202, resp.text
        job = await wait_job(tenant_a.api, resp.json()["job_id"])
    assert job["status"] == "delivered", job
    prompt = next(r for r in llm_standin.requests if r["model"] == model)["messages"][0]["content"]
    assert "RESUMED-MARKER" in prompt


async def test_wrong_offset_is_409_and_keeps_nothing(tenant_a):
    location = await create(tenant_a.api, 1000)
    resp = await patch(tenant_a.api, location, 10, b"x" * 100)
    assert resp.status_code == 409 and resp.json()["code"] == "offset_mismatch"
    assert await head_offset(tenant_a.api, location) == 0
    assert (await tenant_a.api.delete(location, headers=TUS)).status_code == 204


def held(path) -> bool:  # type: ignore[no-untyped-def]
    """Whether a writer holds the partial file's lock."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


async def test_a_second_writer_is_409_busy(tenant_a, settings, engine):
    location = await create(tenant_a.api, 1_000_000)
    partial = await partial_of(engine, tenant_a.id, location, settings)
    token = tenant_a.api.headers["authorization"]
    with socket.create_connection((settings.api_host, settings.api_port), timeout=10) as sock:
        sock.sendall(
            (
                f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nTus-Resumable: 1.0.0\r\n"
                "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 1000000\r\n\r\n"
            ).encode()
            + b"w" * 100_000
        )  # and the connection stays open: this PATCH holds the upload

        async def first_writes() -> bool:
            return held(partial)

        await wait_for(first_writes)
        resp = await patch(tenant_a.api, location, 0, b"x" * 10)
        assert resp.status_code == 409 and resp.json()["code"] == "upload_busy"
    assert (await tenant_a.api.delete(location, headers=TUS)).status_code == 204


async def test_another_tenants_upload_is_404(tenant_a, tenant_b):
    location = await create(tenant_a.api, 1000)
    assert (await patch(tenant_a.api, location, 0, b"a" * 10)).status_code == 204
    assert (await tenant_b.api.head(location, headers=TUS)).status_code == 404
    assert (await tenant_b.api.get(location)).status_code == 404
    assert (await patch(tenant_b.api, location, 10, b"b" * 10)).status_code == 404
    assert (await tenant_b.api.delete(location, headers=TUS)).status_code == 404
    assert await head_offset(tenant_a.api, location) == 10  # untouched
    assert (await tenant_a.api.delete(location, headers=TUS)).status_code == 204


async def test_over_the_limit_is_413(small_tenant):
    resp = await small_tenant.api.post(BASE, headers={**TUS, "Upload-Length": str(LIMIT + 1)})
    assert resp.status_code == 413 and resp.json()["code"] == "payload_too_large"
    location = await create(small_tenant.api, 1000)
    resp = await patch(small_tenant.api, location, 0, b"y" * 1001)  # past Upload-Length
    assert resp.status_code == 413
    assert await head_offset(small_tenant.api, location) == 0
    assert (await small_tenant.api.delete(location, headers=TUS)).status_code == 204


async def test_protocol_errors_and_termination(tenant_a, engine, settings):
    assert (await tenant_a.api.post(BASE, headers={"Upload-Length": "10"})).status_code == 412
    assert (await tenant_a.api.post(BASE, headers=TUS)).status_code == 400  # no Upload-Length
    location = await create(tenant_a.api, 10)
    resp = await tenant_a.api.patch(location, content=b"z", headers={**TUS, "Upload-Offset": "0"})
    assert resp.status_code == 415
    partial = await partial_of(engine, tenant_a.id, location, settings)
    assert partial is not None and partial.exists()
    assert (await tenant_a.api.delete(location, headers=TUS)).status_code == 204
    assert not partial.exists()
    assert (await tenant_a.api.head(location, headers=TUS)).status_code == 404


async def partial_of(engine, tenant_id, location: str, settings):  # type: ignore[no-untyped-def]
    async with tenant_session(engine, tenant_id) as s:
        row = await s.get(ResumableUpload, uuid.UUID(location.rsplit("/", 1)[1]))
    return None if row is None else settings.data_path / "objects" / ".partial" / row.store_upload_id


async def test_expired_upload_is_swept(tenant_a, settings, engine):
    token = tenant_a.api.headers["authorization"].removeprefix("Bearer ")
    async with in_process_api(settings, token, upload_expiry_seconds=1, partial_sweep_interval_seconds=0.2) as api:
        location = await create(api, 1000)
        assert (await patch(api, location, 0, b"q" * 100)).status_code == 204
        partial = await partial_of(engine, tenant_a.id, location, settings)
        assert partial is not None and partial.stat().st_size == 100

        async def swept() -> bool:
            return await partial_of(engine, tenant_a.id, location, settings) is None

        await wait_for(swept)
        assert not partial.exists()
        assert (await api.head(location, headers=TUS)).status_code == 404


async def test_api_restart_mid_upload_resumes(tenant_a, settings, monkeypatch):
    token = tenant_a.api.headers["authorization"].removeprefix("Bearer ")
    data = os.urandom(2_000_000)
    async with in_process_api(settings, token) as api:
        location = await create(api, len(data))
        assert (await patch(api, location, 0, data[:700_000])).status_code == 204
    # A new process: the running hash is gone with the old one's memory.
    monkeypatch.setattr(uploads_resumable, "DIGESTS", uploads_resumable.Digests())
    async with in_process_api(settings, token) as api:
        assert await head_offset(api, location) == 700_000
        assert (await patch(api, location, 700_000, data[700_000:])).status_code == 204
        done = (await api.get(location)).json()
    assert done["upload"]["sha256"] == hashlib.sha256(data).hexdigest()


async def test_s3_parts_go_straight_to_the_store(tenant_a, settings, moto_port):
    token = tenant_a.api.headers["authorization"].removeprefix("Bearer ")
    part = 5 * 1024 * 1024
    data = os.urandom(part + 100_000)
    s3 = {
        "s3_endpoint": f"http://127.0.0.1:{moto_port}",
        "s3_access_key": "test",
        "s3_secret_key": "test",
        "s3_bucket": "resumable-test",
        "upload_part_size": part,
    }
    async with in_process_api(settings, token, **s3) as api, httpx.AsyncClient(timeout=30) as direct:
        location = await create(api, len(data))
        assert (await patch(api, location, 0, data[:10])).json()["code"] == "direct_parts"
        urls = (await api.get(f"{location}/parts")).json()
        assert [(p["number"], p["offset"], p["size"]) for p in urls["parts"]] == [(1, 0, part), (2, part, 100_000)]
        assert (await direct.put(urls["parts"][0]["url"], content=data[:part])).status_code == 200
        assert await head_offset(api, location) == part
        resp = await api.post(f"{location}/complete")
        assert resp.status_code == 409 and resp.json()["code"] == "upload_incomplete"
        assert (await direct.put(urls["parts"][1]["url"], content=data[part:])).status_code == 200
        resp = await api.post(f"{location}/complete")
        assert resp.status_code == 200, resp.text
        assert resp.json()["sha256"] == hashlib.sha256(data).hexdigest() and resp.json()["size"] == len(data)
        assert await head_offset(api, location) == len(data)


async def test_store_keeps_order_of_copied_and_gathered_chunks(tmp_path):
    """Small chunks are copied into batches, large ones passed by reference: mixed, in any
    order, the object and its hash are the bytes as sent; and so for pieces appended."""
    from lodestone.storage import FilesystemStore
    from lodestone.storage import resumable as pieces

    store = FilesystemStore(tmp_path)
    sizes = [1000, 300_000, 200_000, 5, 1024 * 1024, 700_000, 150_000, 3, 2 * 1024 * 1024 + 7, 131_072]
    chunks = [os.urandom(n) for n in sizes]
    data = b"".join(chunks)

    async def stream(parts):  # type: ignore[no-untyped-def]
        for part in parts:
            yield part

    stored = await store.put_stream("t/whole", stream(chunks), "application/octet-stream")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "t/whole").read_bytes() == data

    handle = await store.begin_parts("t/pieces", "application/octet-stream")
    digest = hashlib.sha256()
    async with pieces.writing(store, handle) as fd:
        first = await pieces.append(fd, 0, stream(chunks[:4]), len(data), digest)
    async with pieces.writing(store, handle) as fd:
        rest = await pieces.append(fd, first, stream(chunks[4:]), len(data) - first, digest)
    assert first + rest == len(data) and digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert (tmp_path / ".partial" / handle).read_bytes() == data
