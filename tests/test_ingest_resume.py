"""Kill -9 the worker part-way through an ingest: the next attempt uploads only the parts
that were not done, on both stores."""

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import uuid

import pytest

from activities.ingest import IngestInput, IngestResult
from lodestone.settings import Settings
from lodestone.storage import make_store
from tests.ingest_worker import IngestProbeWorkflow
from tests.standins.file_source import FileSource

PART = 5 * 1024 * 1024


def worker_env(settings: Settings, s3_endpoint: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "DATABASE_"))}
    env.update(
        DATA_DIR=str(settings.data_path),
        POSTGRES_PORT=str(settings.postgres_port),
        TEMPORAL_PORT=str(settings.temporal_port),
        UPLOAD_PART_SIZE=str(PART),
        OUTBOUND_ALLOW_CIDRS='["127.0.0.1/32"]',
    )
    if s3_endpoint:
        env.update(S3_ENDPOINT=s3_endpoint, S3_ACCESS_KEY="test", S3_SECRET_KEY="test", S3_BUCKET="resume")
    return env


def start_worker(env: dict[str, str], queue: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.ingest_worker", queue],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def wait_for_parts(handle, parts: int, timeout: float = 60) -> None:
    """Until the server holds a heartbeat that records `parts` finished parts."""
    from temporalio.converter import default

    for _ in range(int(timeout / 0.2)):
        desc = await handle.describe()
        for pending in desc.raw_description.pending_activities:
            if pending.heartbeat_details.payloads:
                cp = default().payload_converter.from_payloads(pending.heartbeat_details.payloads)[0]
                if len(cp["parts"]) >= parts:
                    return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no heartbeat with {parts} parts within {timeout}s")


@pytest.mark.parametrize("backend", ["fs", "s3"])
async def test_killed_ingest_resumes_from_last_part(backend, settings, stack, temporal, tenant_a, request):
    s3 = f"http://127.0.0.1:{request.getfixturevalue('moto_port')}" if backend == "s3" else None
    data = os.urandom(2 * PART + 300_000)  # three parts: two full, one short
    source = FileSource(data, stall_at=2 * PART + 100_000)
    env, queue = worker_env(settings, s3), f"ingest-{uuid.uuid4()}"
    first = start_worker(env, queue)
    second = None
    try:
        job_id = str(uuid.uuid4())
        handle = await temporal.start_workflow(
            IngestProbeWorkflow.run,
            IngestInput(str(tenant_a.id), job_id, source.url()),
            id=f"ingest-{job_id}",
            task_queue=queue,
        )
        await wait_for_parts(handle, 2)
        first.send_signal(signal.SIGKILL)
        first.wait()
        source.release.set()
        second = start_worker(env, queue)
        result: IngestResult = await asyncio.wait_for(handle.result(), 60)
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
        source.close()
    assert (result.parts, result.resumed_from_part, result.parts_uploaded) == (3, 2, 1)
    assert result.size == len(data)
    assert source.ranges == [None, f"bytes={2 * PART}-"]
    store = make_store(
        Settings(
            _env_file=None,
            data_dir=settings.data_path,
            s3_endpoint=s3,
            s3_access_key="test" if s3 else None,
            s3_secret_key="test" if s3 else None,
            s3_bucket="resume",
        )
    )
    stored = await store.get_bytes(result.key)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_an_ingest_whose_partial_was_reclaimed_starts_over(settings, stack, temporal, tenant_a, tmp_path):
    """The worker is killed after two parts and its partial is reclaimed (as the sweep does
    once it is unmodified for PARTIAL_MAX_AGE_SECONDS) before the retry: the retry finds
    its upload gone, starts over in a new one, and stores the whole input."""
    from lodestone.storage import FilesystemStore

    data = os.urandom(2 * PART + 300_000)
    source = FileSource(data, stall_at=2 * PART + 100_000)
    env, queue = {**worker_env(settings, None), "DATA_DIR": str(tmp_path)}, f"ingest-{uuid.uuid4()}"
    store = FilesystemStore(tmp_path / "objects", part_size=PART)
    first = start_worker(env, queue)
    second = None
    try:
        job_id = str(uuid.uuid4())
        handle = await temporal.start_workflow(
            IngestProbeWorkflow.run,
            IngestInput(str(tenant_a.id), job_id, source.url()),
            id=f"ingest-{job_id}",
            task_queue=queue,
        )
        await wait_for_parts(handle, 2)
        first.send_signal(signal.SIGKILL)
        first.wait()
        source.stall_at = None
        source.release.set()
        assert await store.reclaim_partials(max_age=0.001) == 1
        second = start_worker(env, queue)
        result: IngestResult = await asyncio.wait_for(handle.result(), 60)
    finally:
        for proc in (first, second):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
        source.close()
    assert (result.parts, result.resumed_from_part, result.parts_uploaded) == (3, 0, 3)
    assert source.ranges == [None, f"bytes={2 * PART}-", None]
    assert await store.get_bytes(result.key) == data
    assert list(store.partial.iterdir()) == []


async def test_failed_ingest_attempts_leave_no_partial_files(settings, stack, temporal, tenant_a, tmp_path):
    """An input URL that cannot be fetched fails attempt after attempt (retryable): each
    attempt's upload, empty, is dropped, not left in .partial."""
    from devstack.processes import free_port

    env, queue = {**worker_env(settings, None), "DATA_DIR": str(tmp_path)}, f"ingest-{uuid.uuid4()}"
    worker = start_worker(env, queue)
    job_id = str(uuid.uuid4())
    handle = await temporal.start_workflow(
        IngestProbeWorkflow.run,
        IngestInput(str(tenant_a.id), job_id, f"http://127.0.0.1:{free_port()}/gone"),
        id=f"ingest-{job_id}",
        task_queue=queue,
    )
    try:
        for _ in range(300):
            desc = await handle.describe()
            if any(p.attempt >= 4 for p in desc.raw_description.pending_activities):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the ingest was not retried three times")
        failure = desc.raw_description.pending_activities[0].last_failure
        assert 'type: "InputUnavailable"' in str(failure)  # the server may wrap a large failure
        assert list((tmp_path / "objects" / ".partial").iterdir()) == []
    finally:
        await handle.terminate()
        worker.kill()
        worker.wait()
