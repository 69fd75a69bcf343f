"""A full disk, a crash mid-upload and a stalled body, on a real API and worker: processes
of their own, on the session's PostgreSQL and Temporal, with their object store on an
8 MiB tmpfs and a task queue of their own."""

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.processes import free_port, wait_for_port
from devstack.receiver import WebhookReceiver
from tests.helpers import create_workflow, definition, in_process_api, wait_job
from tests.tiny_disk import fill, tiny_tmpfs

IDLE_TIMEOUT = 2.0
MAX_AGE = 3.0


@dataclass
class DiskStack:
    data: Path
    objects: Path
    api_url: str
    api_port: int
    env: dict[str, str]
    api: subprocess.Popen

    @property
    def partial(self) -> Path:
        return self.objects / ".partial"

    def partials(self) -> list[Path]:
        return sorted(self.partial.iterdir()) if self.partial.exists() else []

    def start_api(self) -> None:
        with open(self.data / "api.log", "ab") as out:
            self.api = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "api"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for_port("127.0.0.1", self.api_port, 60, self.api)

    def gauge(self) -> float:
        text = httpx.get(f"{self.api_url}/metrics", timeout=10).text
        return next(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "lodestone_uploads_in_flight"
        )


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def disk(stack, tmp_path_factory) -> Iterator[DiskStack]:
    data = tmp_path_factory.mktemp("full-disk")
    api_port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "DATABASE_"))}
    env = {
        **inherited,
        **stack.env(),
        "DATA_DIR": str(data),
        "API_PORT": str(api_port),
        "AUTH_ISSUER": stack.settings.issuer,
        "WORKER_METRICS_PORT": str(free_port()),
        "TEMPORAL_TASK_QUEUE": f"full-disk-{uuid.uuid4().hex[:8]}",
        "REQUEST_BODY_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
        "PARTIAL_MAX_AGE_SECONDS": str(MAX_AGE),
        "PARTIAL_SWEEP_INTERVAL_SECONDS": "1",
    }
    with tiny_tmpfs(data / "objects") as objects:
        ds = DiskStack(data, objects, f"http://127.0.0.1:{api_port}", api_port, env, None)  # type: ignore[arg-type]
        worker = None
        try:
            ds.start_api()
            with open(data / "worker.log", "ab") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "cli.main", "worker"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            wait_for_port("127.0.0.1", int(env["WORKER_METRICS_PORT"]), 60, worker)
            yield ds
        finally:
            _stop(worker)
            _stop(ds.api)


def raw_upload(
    port: int, token: str, length: int, body: bytes, stall: float = 0.0, timeout: float = 60
) -> tuple[bytes, float]:
    """POST /v1/uploads declaring `length` bytes, send `body` (stopping early if the server
    answers first), then wait for the answer; returns it and the seconds it took after the
    last byte sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            (
                f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nContent-Length: {length}\r\n\r\n"
            ).encode()
        )
        for at in range(0, len(body), 64 * 1024):
            if select.select([sock], [], [], 0)[0]:
                break  # answered before the body ended
            try:
                sock.sendall(body[at : at + 64 * 1024])
            except (BrokenPipeError, ConnectionResetError):
                break
        sent = time.monotonic()
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer, time.monotonic() - sent


async def test_upload_on_a_full_disk_is_507_storage_full_and_leaves_nothing(disk, tenant_a):
    filler = fill(disk.objects / "filler")
    try:
        answer, _ = await asyncio.to_thread(
            raw_upload,
            disk.api_port,
            tenant_a.api.headers["authorization"],
            2 * 1024 * 1024,
            os.urandom(2 * 1024 * 1024),
        )
    finally:
        filler.unlink()
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert answer.startswith(b"HTTP/1.1 507"), answer[:300]
    assert b"application/problem+json" in head and b"retry-after: 60" in head
    assert b'"code":"storage_full"' in answer
    assert disk.partials() == []
    assert await asyncio.to_thread(disk.gauge) == 0
    ok = await asyncio.to_thread(
        httpx.post,
        f"{disk.api_url}/v1/uploads",
        content=b"fits now",
        headers={"Authorization": tenant_a.api.headers["authorization"]},
        timeout=30,
    )
    assert ok.status_code == 201, ok.text  # space back, uploads back


async def _pending_failure(temporal, workflow_id: str) -> tuple[str, int] | None:
    desc = await temporal.get_workflow_handle(workflow_id).describe()
    for pending in desc.raw_description.pending_activities:
        if pending.last_failure.message:
            return str(pending.last_failure), pending.attempt  # text: the server may wrap a large one
    return None


async def test_a_step_that_cannot_write_retries_as_storage_full_and_finishes_once_space_frees(disk, tenant_a, temporal):
    """A job's step output cannot be stored on the full disk: the activity fails with the
    retryable StorageFull, is retried, leaves no temporary file at any attempt, and the job
    is delivered once space is freed."""
    api = httpx.AsyncClient(
        base_url=disk.api_url, headers={"Authorization": tenant_a.api.headers["authorization"]}, timeout=30
    )
    filler = fill(disk.objects / "filler")
    freed = False
    try:
        with WebhookReceiver(tenant_a.webhook_secret) as hook:
            wf = await create_workflow(api, definition(hook.url))
            resp = await api.post("/v1/submissions", json={"workflow_key": wf["key"], "input": {"company": "Full"}})
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["job_id"]
            seen, leftovers = None, []
            # A partial file exists for the moment an attempt writes to the full disk; one still
            # there a second after it was first seen was left behind by its attempt (the sweep
            # would only take it at PARTIAL_MAX_AGE_SECONDS).
            first_seen: dict[Path, float] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                seen = await _pending_failure(temporal, job_id)
                for partial in disk.partials():
                    first = first_seen.setdefault(partial, time.monotonic())
                    if time.monotonic() - first >= 1.0 and partial not in leftovers:
                        leftovers.append(partial)
                if seen and seen[1] >= 4:  # failed three times, retried each time
                    break
                await asyncio.sleep(0.1)
            filler.unlink()
            freed = True
            job = await wait_job(api, job_id, timeout=120)
    finally:
        if not freed:
            filler.unlink()
        await api.aclose()
    assert seen is not None and 'type: "StorageFull"' in seen[0], seen
    assert leftovers == []
    assert job["status"] == "delivered", job
    assert disk.partials() == []


async def test_an_api_killed_mid_upload_has_its_partial_reclaimed_but_a_live_upload_keeps_its_own(disk, tenant_a):
    """Two uploads stream 3 MiB each, then trickle a byte a second (under the body idle
    timeout), so their partial files go unmodified past PARTIAL_MAX_AGE_SECONDS while the
    worker sweeps every second: both are kept, being written. Then the API is killed -9:
    the partials stay behind, and the worker's sweep removes them once old enough."""
    head = (
        f"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: {tenant_a.api.headers['authorization']}\r\n"
        f"Content-Length: {8 * 1024 * 1024}\r\n\r\n"
    ).encode()
    socks = [socket.create_connection(("127.0.0.1", disk.api_port), timeout=10) for _ in range(2)]
    try:
        for sock in socks:
            sock.sendall(head + os.urandom(3 * 1024 * 1024))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(p.stat().st_size for p in disk.partials()) < 4 * 1024 * 1024:
            await asyncio.sleep(0.1)
        written = {p.name: p.stat().st_size for p in disk.partials()}
        assert len(written) == 2, written
        for _ in range(int(MAX_AGE) + 3):  # past the max age, with sweeps every second
            for sock in socks:
                sock.sendall(b"x")
            await asyncio.sleep(1)
        assert {p.name: p.stat().st_size for p in disk.partials()} == written  # live: kept as they were
        assert min(time.time() - p.stat().st_mtime for p in disk.partials()) > MAX_AGE

        disk.api.send_signal(signal.SIGKILL)
        disk.api.wait()
        assert [p.name for p in disk.partials()] == sorted(written)  # the crash left them
        deadline = time.monotonic() + 30
        while disk.partials() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert disk.partials() == []
    finally:
        for sock in socks:
            sock.close()
        if disk.api.poll() is not None:
            await asyncio.to_thread(disk.start_api)


async def test_a_stalled_body_is_408_and_frees_its_upload_slot(disk, tenant_a):
    """Headers and a few bytes, then nothing: the server answers 408 within the body idle
    timeout, the upload's slot is back (gauge 0) and no partial file is left."""
    answer, waited = await asyncio.to_thread(
        raw_upload,
        disk.api_port,
        tenant_a.api.headers["authorization"],
        1024 * 1024,
        b"only the start",
        timeout=IDLE_TIMEOUT + 30,
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b'"code":"body_timeout"' in answer and b"connection: close" in answer.lower()
    assert waited < IDLE_TIMEOUT + 15
    assert await asyncio.to_thread(disk.gauge) == 0
    assert disk.partials() == []


async def test_an_api_reclaims_old_partials_when_it_starts(settings, tmp_path):
    """What an earlier API process left when it died, unmodified for
    PARTIAL_MAX_AGE_SECONDS, is removed when the next one starts; a recent one is kept."""
    partial = tmp_path / "objects" / ".partial"
    partial.mkdir(parents=True)
    old, recent = partial / "0ld", partial / "rec3nt"
    for path in (old, recent):
        path.write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - 120, time.time() - 120))
    async with in_process_api(settings, data_dir=tmp_path, partial_max_age_seconds=60):
        for _ in range(100):
            if not old.exists():
                break
            await asyncio.sleep(0.05)
    assert not old.exists() and recent.exists()
