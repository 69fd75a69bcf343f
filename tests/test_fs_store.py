"""The filesystem store's upload path: contiguous batches hashed and written on two
threads of the upload's own (lodestone/storage/batches.py), with write-behind."""

import asyncio
import hashlib
import os
import threading
import time

import pytest

import lodestone.storage.fs as fs
from lodestone.storage import FilesystemStore, ObjectNotFound, ObjectTooLarge, StorageFull
from lodestone.storage.batches import PIPELINE_DEPTH, WRITE_BATCH

MIB = 1024 * 1024


async def _chunks(data: bytes, size: int = 256 * 1024, fail_after: int | None = None):
    for i in range(0, len(data), size):
        if fail_after is not None and i >= fail_after:
            raise ConnectionResetError("client went away")
        yield data[i : i + size]


def _pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fs-upload")]


async def test_no_thread_or_partial_file_outlives_an_upload(tmp_path, monkeypatch):
    """Success, a body over the limit, a client that goes away and a disk that fails all
    end with both of the upload's threads gone and no partial file."""
    store = FilesystemStore(tmp_path)
    data = os.urandom(5 * MIB + 11)
    stored = await store.put_stream("t/uploads/ok/input", _chunks(data), "application/octet-stream")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert _pipeline_threads() == []

    with pytest.raises(ObjectTooLarge):
        await store.put_stream("t/uploads/big/input", _chunks(data), "application/octet-stream", limit=3 * MIB)
    assert _pipeline_threads() == []
    with pytest.raises(ConnectionResetError):
        await store.put_stream("t/uploads/cut/input", _chunks(data, fail_after=2 * MIB), "application/octet-stream")
    assert _pipeline_threads() == []

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fs, "_write_all", full)
    with pytest.raises(OSError, match="No space left"):
        await store.put_stream("t/uploads/full/input", _chunks(data), "application/octet-stream")
    assert _pipeline_threads() == []
    for key in ("big", "cut", "full"):
        with pytest.raises(ObjectNotFound):
            await store.size(f"t/uploads/{key}/input")
    assert list(store.partial.iterdir()) == []


async def test_an_upload_whose_second_thread_cannot_start_leaves_nothing(tmp_path, monkeypatch):
    store = FilesystemStore(tmp_path)
    real_start = threading.Thread.start

    def start(self):
        if self.name == "fs-upload-1":
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        await store.put_stream("t/uploads/nothread/input", _chunks(os.urandom(MIB)), "application/octet-stream")
    monkeypatch.undo()
    for _ in range(200):  # the thread that did start ends on its own
        if not _pipeline_threads():
            break
        await asyncio.sleep(0.01)
    assert _pipeline_threads() == []
    assert list(store.partial.iterdir()) == []


async def test_a_cancelled_upload_waits_for_its_threads_before_closing_the_file(tmp_path, monkeypatch):
    """Cancelled, and cancelled again while it waits for a slow write to finish, the upload
    still ends only after both threads are done with the file, and leaves nothing behind."""
    store = FilesystemStore(tmp_path)
    writing = threading.Event()
    real = fs._write_all

    def slow(*args):
        writing.set()
        time.sleep(0.5)
        return real(*args)

    monkeypatch.setattr(fs, "_write_all", slow)
    task = asyncio.create_task(
        store.put_stream("t/uploads/gone/input", _chunks(os.urandom(8 * MIB)), "application/octet-stream")
    )
    while not writing.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.05)  # now waiting in close() for the write in progress
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _pipeline_threads() == []
    assert list(store.partial.iterdir()) == []


async def test_a_slow_disk_holds_the_stream_back(tmp_path, monkeypatch):
    """While the disk is slow, the upload takes no more of the body than the batches in
    flight and the one filling: memory stays bounded whatever the body's size."""
    store = FilesystemStore(tmp_path)
    release = threading.Event()
    real = fs._write_all

    def stalled(*args):
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(fs, "_write_all", stalled)
    taken = 0

    async def counted():
        nonlocal taken
        async for chunk in _chunks(os.urandom(20 * MIB)):
            taken += len(chunk)
            yield chunk

    task = asyncio.create_task(store.put_stream("t/uploads/slow/input", counted(), "application/octet-stream"))
    await asyncio.sleep(0.3)
    # Two batches in flight and one filling (about 3 MiB), and the chunk being added.
    assert (PIPELINE_DEPTH + 1) * WRITE_BATCH == 3 * MIB
    assert taken <= 3 * MIB + 256 * 1024
    release.set()
    stored = await task
    assert stored.size == 20 * MIB == taken


async def test_fs_put_stream_starts_writeback_behind_the_stream(tmp_path, monkeypatch):
    """The filesystem store asks the kernel to start writing every WRITEBACK_EVERY bytes,
    in contiguous ranges, and waits for each range one step behind (write-behind), so the
    fsync at the end has only the tail left."""
    ranges: list[tuple[int, int]] = []
    finished: list[tuple[int, int]] = []
    real_start, real_finish = fs.start_writeback, fs.finish_writeback

    def record(fd: int, offset: int, length: int) -> None:
        ranges.append((offset, length))
        real_start(fd, offset, length)

    def record_finish(fd: int, offset: int, length: int) -> None:
        finished.append((offset, length))
        real_finish(fd, offset, length)

    monkeypatch.setattr(fs, "WRITEBACK_EVERY", 1024 * 1024)
    monkeypatch.setattr(fs, "start_writeback", record)
    monkeypatch.setattr(fs, "finish_writeback", record_finish)
    store = FilesystemStore(tmp_path)
    data = os.urandom(9 * 1024 * 1024 + 7)
    stored = await store.put_stream("t/uploads/wb/input", _chunks(data), "application/octet-stream")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.get_bytes("t/uploads/wb/input") == data
    assert len(ranges) >= 3
    assert ranges[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in zip(ranges, ranges[1:], strict=False))
    assert all(n >= 1024 * 1024 for _, n in ranges)
    assert ranges[-1][0] + ranges[-1][1] <= len(data)
    assert finished == ranges[:-1]  # each range waited for once the next one has started


@pytest.fixture
def full_disk(tmp_path):
    """A filesystem store on an 8 MiB tmpfs, filled to the last byte outside the store's keys."""
    from tests.tiny_disk import fill, tiny_tmpfs

    with tiny_tmpfs(tmp_path / "disk") as disk:
        store = FilesystemStore(disk / "objects", part_size=5 * MIB)
        filler = fill(disk / "filler")
        yield store, filler


async def test_every_write_on_a_full_disk_raises_storage_full_and_leaves_nothing(full_disk):
    """On a real full filesystem: put_bytes (a step's output), put_stream (an upload) and
    put_part (an ingest) raise StorageFull, not a bare OSError, and leave no partial file
    (put_part gives back what the failed part wrote); once space is freed, writes work."""
    store, filler = full_disk
    with pytest.raises(StorageFull):
        await store.put_bytes("t/jobs/j/steps/a.txt", os.urandom(200_000), "text/plain")
    with pytest.raises(StorageFull):
        await store.put_stream("t/uploads/u/input", _chunks(os.urandom(3 * MIB)), "application/octet-stream")
    assert list(store.partial.iterdir()) == []
    upload = await store.begin_parts("t/jobs/j/input", "application/octet-stream")
    with pytest.raises(StorageFull):
        await store.put_part("t/jobs/j/input", upload, 1, os.urandom(5 * MIB))
    assert [(p.name, p.stat().st_size) for p in store.partial.iterdir()] == [(upload, 0)]
    filler.unlink()
    data = os.urandom(200_000)
    await store.put_bytes("t/jobs/j/steps/a.txt", data, "text/plain")
    assert await store.get_bytes("t/jobs/j/steps/a.txt") == data


async def test_reclaim_spares_what_is_written_or_recent_and_takes_what_is_abandoned(tmp_path):
    """A partial is reclaimed once unmodified for max_age and not locked by a writer: an
    upload still streaming keeps its partial however old its last write; a resumable
    upload's partial (an ingest between parts) is kept while recent, reclaimed when old,
    and its next part then finds it gone."""
    store = FilesystemStore(tmp_path, part_size=5 * MIB)
    release = asyncio.Event()

    async def held():
        yield os.urandom(2 * MIB)
        await release.wait()
        yield b"end"

    streaming = asyncio.create_task(store.put_stream("t/uploads/live/input", held(), "application/octet-stream"))
    while not [p for p in store.partial.iterdir() if p.stat().st_size]:
        await asyncio.sleep(0.01)
    ingest = await store.begin_parts("t/jobs/j/input", "application/octet-stream")
    await store.put_part("t/jobs/j/input", ingest, 1, os.urandom(5 * MIB))
    crashed = store.partial / "deadbeef"
    crashed.write_bytes(b"left by a writer killed mid-write")
    old = time.time() - 3600
    for p in store.partial.iterdir():
        if p.name != ingest:
            os.utime(p, (old, old))
    assert await store.reclaim_partials(max_age=60) == 1  # the crashed one only
    assert not crashed.exists() and (store.partial / ingest).exists()
    assert len(list(store.partial.iterdir())) == 2  # the live upload's partial, though an hour old

    os.utime(store.partial / ingest, (old, old))
    assert await store.reclaim_partials(max_age=60) == 1
    with pytest.raises(ObjectNotFound):
        await store.put_part("t/jobs/j/input", ingest, 2, b"more")
    release.set()
    stored = await streaming
    assert stored.size == 2 * MIB + 3
    assert list(store.partial.iterdir()) == []
