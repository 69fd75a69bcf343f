"""Both object stores run the same tests: the filesystem store and S3 (moto's server)."""

import hashlib
import os
import uuid

import pytest

from lodestone.settings import Settings
from lodestone.storage import (
    CHUNK,
    FilesystemStore,
    InvalidKey,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    S3Store,
    StorageFull,
    check_key,
    job_key,
)

# Crosses the 256 KiB chunk boundary twice, yet small enough for moto's memory.
BIG = 600_000


@pytest.fixture(scope="module", params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ObjectStore:
    if request.param == "fs":
        return FilesystemStore(tmp_path_factory.mktemp("objects"))
    port = request.getfixturevalue("moto_port")
    return S3Store(
        Settings(
            _env_file=None,
            s3_endpoint=f"http://127.0.0.1:{port}",
            s3_access_key="test",
            s3_secret_key="test",
            s3_bucket="lodestone-test",
        )
    )


@pytest.fixture(scope="module")
def big() -> bytes:
    return os.urandom(BIG)


def _key(name: str = "blob.bin") -> str:
    return job_key(uuid.uuid4(), uuid.uuid4(), name)


async def _read(store: ObjectStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.iter_range(key, start, end)])


async def test_put_returns_size_and_sha256(store):
    key = _key("report.html")
    data = b"<h1>Acme Anvils</h1>"
    stored = await store.put_bytes(key, data, "text/html")
    assert stored.key == key
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()


async def test_get_bytes_and_size_round_trip(store, big):
    key = _key()
    await store.put_bytes(key, big, "application/octet-stream")
    assert await store.get_bytes(key) == big
    assert await store.size(key) == BIG


async def test_overwrite_replaces_content(store):
    key = _key()
    await store.put_bytes(key, b"first version", "text/plain")
    await store.put_bytes(key, b"second", "text/plain")
    assert await store.get_bytes(key) == b"second"
    assert await store.size(key) == 6


async def test_empty_object(store):
    key = _key()
    stored = await store.put_bytes(key, b"", "text/plain")
    assert stored.size == 0
    assert await store.get_bytes(key) == b""
    assert await store.size(key) == 0


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(0, None, id="full"),
        pytest.param(1000, 1999, id="middle"),  # end is inclusive
        pytest.param(BIG - 100, None, id="tail"),
        pytest.param(CHUNK - 10, CHUNK + 9, id="chunk-boundary"),
        pytest.param(5, BIG - 5, id="many-chunks"),
    ],
)
async def test_iter_range(store, big, start, end):
    key = _key()
    await store.put_bytes(key, big, "application/octet-stream")
    expected = big[start:] if end is None else big[start : end + 1]
    got = await _read(store, key, start, end)
    assert len(got) == len(expected)
    assert got == expected


async def test_iter_range_single_byte(store, big):
    key = _key()
    await store.put_bytes(key, big, "application/octet-stream")
    assert await _read(store, key, CHUNK, CHUNK) == big[CHUNK : CHUNK + 1]


async def test_missing_key_raises_object_not_found(store):
    key = _key("never-written.bin")
    with pytest.raises(ObjectNotFound):
        await store.get_bytes(key)
    with pytest.raises(ObjectNotFound):
        await store.size(key)
    with pytest.raises(ObjectNotFound):
        await _read(store, key)
    with pytest.raises(ObjectNotFound):
        await _read(store, key, 10, 20)


async def test_delete_then_not_found(store):
    key = _key()
    await store.put_bytes(key, b"short-lived", "text/plain")
    assert await store.size(key) == 11
    await store.delete(key)
    with pytest.raises(ObjectNotFound):
        await store.get_bytes(key)
    with pytest.raises(ObjectNotFound):
        await store.size(key)
    # Deleting again is not an error.
    await store.delete(key)


async def test_delete_leaves_other_objects(store):
    keep, drop = _key("keep.txt"), _key("drop.txt")
    await store.put_bytes(keep, b"keep", "text/plain")
    await store.put_bytes(drop, b"drop", "text/plain")
    await store.delete(drop)
    assert await store.get_bytes(keep) == b"keep"


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "", "a/../b", "t/jobs/j/../../x"])
async def test_store_rejects_invalid_keys(store, bad):
    with pytest.raises(InvalidKey):
        await store.put_bytes(bad, b"x", "text/plain")
    with pytest.raises(InvalidKey):
        await store.get_bytes(bad)
    with pytest.raises(InvalidKey):
        await store.size(bad)
    with pytest.raises(InvalidKey):
        await store.delete(bad)


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "", "a/../b", ".hidden", "a b", "a\nb"])
def test_check_key_rejects(bad):
    with pytest.raises(InvalidKey):
        check_key(bad)


@pytest.mark.parametrize("good", ["a", "t1/jobs/j1/report.html", "A-b_c.d/e.pdf"])
def test_check_key_accepts(good):
    assert check_key(good) == good


def test_job_key_layout():
    tenant, job = uuid.uuid4(), uuid.uuid4()
    assert job_key(tenant, job, "report.html") == f"{tenant}/jobs/{job}/report.html"
    with pytest.raises(InvalidKey):
        job_key(tenant, job, "../escape")


async def test_directory_between_keys_is_not_an_object(store):
    await store.put_bytes("t/jobs/j/a.txt", b"data", "text/plain")
    for op in (store.size("t/jobs"), store.get_bytes("t/jobs")):
        with pytest.raises(ObjectNotFound):
            await op
    await store.delete("t/jobs")  # no error, and the object under it survives
    assert await store.get_bytes("t/jobs/j/a.txt") == b"data"


@pytest.mark.parametrize("key", ["x/./y", "a/", "a/.", "./a"])
def test_dot_segments_and_trailing_slash_are_invalid(key):
    with pytest.raises(InvalidKey):
        check_key(key)


async def _chunks(data: bytes, size: int = 64 * 1024, fail_after: int | None = None):
    for i in range(0, len(data), size):
        if fail_after is not None and i >= fail_after:
            raise ConnectionResetError("client went away")
        yield data[i : i + size]


def _set_part_size(store, size: int) -> None:
    store.part_size = size


async def test_put_stream_in_parts_round_trips(store):
    _set_part_size(store, 5 * 1024 * 1024)
    data = os.urandom(11 * 1024 * 1024 + 123)  # three parts, the last one short
    stored = await store.put_stream("t/uploads/u1/input", _chunks(data), "application/octet-stream")
    assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.get_bytes("t/uploads/u1/input") == data


async def test_put_stream_round_trips_chunks_of_every_size(store):
    """Chunks smaller and larger than the filesystem store's 1 MiB write batch, split
    across and landing on batch boundaries, come back byte for byte with the right hash."""
    mib = 1024 * 1024
    sizes = [1, 1000, mib - 1001, mib, 3 * mib, 256 * 1024 + 3, mib + 5, 2 * mib - 7, 17]
    data = os.urandom(sum(sizes))

    async def chunks():
        at = 0
        for size in sizes:
            yield data[at : at + size]
            at += size

    stored = await store.put_stream("t/uploads/mixed/input", chunks(), "application/octet-stream")
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await store.get_bytes("t/uploads/mixed/input") == data


async def test_put_stream_over_limit_leaves_nothing(store):
    data = os.urandom(300_000)
    with pytest.raises(ObjectTooLarge):
        await store.put_stream("t/uploads/big/input", _chunks(data), "application/octet-stream", limit=200_000)
    with pytest.raises(ObjectNotFound):
        await store.size("t/uploads/big/input")
    await _assert_no_partial_uploads(store)


async def test_put_stream_aborts_when_the_source_fails(store):
    data = os.urandom(400_000)
    with pytest.raises(ConnectionResetError):
        await store.put_stream("t/uploads/cut/input", _chunks(data, fail_after=200_000), "application/octet-stream")
    with pytest.raises(ObjectNotFound):
        await store.size("t/uploads/cut/input")
    await _assert_no_partial_uploads(store)


async def test_put_stream_aborts_when_the_store_fails(store, monkeypatch):
    """A write that fails part-way (a full disk, a rejected part) leaves no object and no
    partial upload, and the error reaches the caller."""
    _set_part_size(store, 5 * 1024 * 1024)
    calls = 0

    def fail_second(*args):
        nonlocal calls
        calls += 1
        if calls >= 2:
            raise OSError(28, "No space left on device")
        return real(*args)

    if isinstance(store, S3Store):
        real = store._upload_part_file
        monkeypatch.setattr(store, "_upload_part_file", fail_second)
    else:
        import lodestone.storage.fs as fs

        real = fs._write_all
        monkeypatch.setattr(fs, "_write_all", fail_second)
    with pytest.raises(OSError, match="No space left"):
        await store.put_stream(
            "t/uploads/full/input", _chunks(os.urandom(12 * 1024 * 1024)), "application/octet-stream"
        )
    with pytest.raises(ObjectNotFound):
        await store.size("t/uploads/full/input")
    await _assert_no_partial_uploads(store)


async def test_s3_parts_are_sent_from_disk_not_memory(store, monkeypatch):
    """put_stream spools each part to a temporary file and uploads from it: the bytes-taking
    put_part is never used, and no spool file is left open."""
    if not isinstance(store, S3Store):
        pytest.skip("the filesystem store writes straight to its file")
    _set_part_size(store, 5 * 1024 * 1024)

    async def no_bytes_parts(*args):
        raise AssertionError("a part was held in memory")

    monkeypatch.setattr(store, "put_part", no_bytes_parts)
    open_before = len(os.listdir("/proc/self/fd"))
    data = os.urandom(11 * 1024 * 1024)
    stored = await store.put_stream("t/uploads/spooled/input", _chunks(data), "application/octet-stream")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.get_bytes("t/uploads/spooled/input") == data
    assert len(os.listdir("/proc/self/fd")) <= open_before


async def test_parts_resume_after_a_lost_writer(store):
    _set_part_size(store, 5 * 1024 * 1024)
    data = os.urandom(12 * 1024 * 1024)
    p = store.part_size
    upload_id = await store.begin_parts("t/jobs/j/input", "application/octet-stream")
    first = await store.put_part("t/jobs/j/input", upload_id, 1, data[:p])
    # A new writer picks up with only the checkpoint (upload id and finished parts).
    rest = [
        await store.put_part("t/jobs/j/input", upload_id, 2, data[p : 2 * p]),
        await store.put_part("t/jobs/j/input", upload_id, 3, data[2 * p :]),
    ]
    await store.complete_parts("t/jobs/j/input", upload_id, [first, *rest])
    assert await store.get_bytes("t/jobs/j/input") == data


async def _assert_no_partial_uploads(store) -> None:
    if isinstance(store, S3Store):
        listed = store.client._list_multipart_uploads(store.bucket)
        assert list(listed.uploads) == []
    else:
        assert list(store.partial.iterdir()) == []


async def test_s3_reclaim_aborts_only_stale_multipart_uploads(moto_port):
    """Incomplete multipart uploads whose newest part is older than max_age are aborted:
    one a crashed writer left is; one begun as long ago whose part was written just now (an
    ingest resuming) is not. (moto reports a fixed 2010 Initiated time, so an upload with
    no part at all is not tested here: on S3 its Initiated time is its age.)"""
    import asyncio

    store = S3Store(
        Settings(
            _env_file=None,
            s3_endpoint=f"http://127.0.0.1:{moto_port}",
            s3_access_key="test",
            s3_secret_key="test",
            s3_bucket="reclaim-test",
        )
    )
    part = os.urandom(5 * 1024 * 1024)
    crashed = await store.begin_parts("t/uploads/crashed/input", "application/octet-stream")
    await store.put_part("t/uploads/crashed/input", crashed, 1, part)
    resumed = await store.begin_parts("t/jobs/j/input", "application/octet-stream")
    await asyncio.sleep(3)
    await store.put_part("t/jobs/j/input", resumed, 1, part)
    assert await store.reclaim_partials(max_age=2) == 1
    left = {u.upload_id for u in store.client._list_multipart_uploads(store.bucket).uploads}
    assert left == {resumed}
    await store.abort_parts("t/jobs/j/input", resumed)


async def test_s3_storage_full_is_storage_full(store, monkeypatch):
    """MinIO's "storage full" answer to a part reaches the caller as StorageFull, and the
    multipart upload is aborted."""
    if not isinstance(store, S3Store):
        pytest.skip("S3 only; the filesystem store is tested on a full tmpfs (test_fs_store.py)")
    from minio.error import S3Error

    def full(*args):
        raise S3Error(
            type("R", (), {"status": 507})(),
            "XMinioStorageFull",
            "Storage backend has reached its minimum free drive threshold.",
            "/",
            "r",
            "h",
            store.bucket,
            "t/uploads/s3full/input",
        )

    monkeypatch.setattr(store, "_upload_part_file", full)
    with pytest.raises(StorageFull):
        await store.put_stream("t/uploads/s3full/input", _chunks(os.urandom(300_000)), "application/octet-stream")
    await _assert_no_partial_uploads(store)
