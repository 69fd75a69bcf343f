"""The filesystem store: objects are files under a root, same key layout as S3.

Every write goes to a file in `.partial/` first, and is renamed into place when complete.
A writer holds an flock on its partial file while it writes; the kernel drops the lock when
the writer dies, however it dies. reclaim_partials removes partial files that no one has
locked and that were last modified more than its max_age ago (see partials.py).
"""

import asyncio
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from lodestone.libc import finish_writeback, start_writeback
from lodestone.storage.base import (
    CHUNK,
    ObjectNotFound,
    ObjectStore,
    PartRef,
    StoredObject,
    check_key,
)
from lodestone.storage.batches import Batcher, Buffer, Pipeline, hashing, nbytes, pump, views
from lodestone.storage.partials import lock_for_writing, reclaim_dir
from lodestone.storage.spool import writev_all

# Write-behind: every WRITEBACK_EVERY bytes the disk starts writing the range just written,
# and the range before it is waited for and dropped from the page cache. At most two such
# ranges are dirty or cached at a time, however large the object, and the fsync at the end
# waits for the tail only.
WRITEBACK_EVERY = 32 * 1024 * 1024

Range = tuple[int, int]


def _write_all(fd: int, batch: Buffer, start: Range | None = None, finish: Range | None = None) -> None:
    writev_all(fd, views(batch))
    if start is not None:
        start_writeback(fd, *start)
    if finish is not None:
        finish_writeback(fd, *finish)


def _writer(fd: int, base: int = 0) -> Callable[[Buffer], None]:
    """Writes batches in order from the file's position `base`, with write-behind
    (WRITEBACK_EVERY)."""
    written = started = base
    behind: Range | None = None  # writing started, not yet waited for

    def write(batch: Buffer) -> None:
        nonlocal written, started, behind
        written += nbytes(batch)
        if written - started < WRITEBACK_EVERY:
            _write_all(fd, batch)
            return
        window = (started, written - started)
        _write_all(fd, batch, window, behind)
        behind, started = window, written

    return write


class FilesystemStore(ObjectStore):
    def __init__(self, root: Path, part_size: int = 16 * 1024 * 1024) -> None:
        self.root = root.resolve()
        self.partial = self.root / ".partial"
        self.partial.mkdir(parents=True, exist_ok=True)
        self.part_size = part_size

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _new_partial(self) -> Path:
        self.partial.mkdir(parents=True, exist_ok=True)  # cheap, and survives a wiped root
        return self.partial / uuid.uuid4().hex

    def _file(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():  # a "directory" between keys is not an object, as on S3
            raise ObjectNotFound(key)
        return path

    @staticmethod
    def _publish(tmp: Path, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.replace(path)

    def _create_locked(self) -> tuple[Path, int]:
        tmp = self._new_partial()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        lock_for_writing(fd, tmp)
        return tmp, fd

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)

        def write() -> None:
            tmp, fd = self._create_locked()
            try:
                writev_all(fd, [memoryview(data)])
                os.fsync(fd)
                self._publish(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)  # a failed write (a full disk) leaves no partial file
                raise
            finally:
                os.close(fd)

        await asyncio.to_thread(write)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], content_type: str, limit: int | None = None
    ) -> StoredObject:
        """Straight into one file: no parts needed when nothing has to resume. Chunks are
        gathered into contiguous batches, and two threads hash and write them while the next
        batches are being received (see batches.py). At most PIPELINE_DEPTH batches are in
        flight, so memory stays bounded when the disk is slow."""
        path = self._path(key)
        tmp, fd = await asyncio.to_thread(self._create_locked)
        digest, size = hashlib.sha256(), 0
        batcher, pipeline = Batcher(), None
        try:
            pipeline = Pipeline("fs-upload", [hashing(digest), _writer(fd)], batcher.recycle)
            size = await pump(chunks, batcher, pipeline, limit)
            await asyncio.to_thread(os.fsync, fd)
            os.close(fd)
            fd = -1
            await asyncio.to_thread(self._publish, tmp, path)
        except BaseException:
            # Both threads finish their batches before the fd is closed, even when this
            # task is cancelled again while it waits for them.
            if pipeline is not None:
                try:
                    await asyncio.shield(pipeline.close())
                except BaseException:
                    pipeline.join()
            if fd >= 0:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return StoredObject(key, size, digest.hexdigest())

    async def get_bytes(self, key: str) -> bytes:
        path = await asyncio.to_thread(self._file, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    async def size(self, key: str) -> int:
        path = await asyncio.to_thread(self._file, key)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    async def iter_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        try:
            f = open(await asyncio.to_thread(self._file, key), "rb")  # noqa: SIM115
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e
        with f:
            f.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                n = CHUNK if remaining is None else min(CHUNK, remaining)
                chunk = await asyncio.to_thread(f.read, n)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> None:
        path = self._path(key)
        if await asyncio.to_thread(path.is_dir):
            return
        await asyncio.to_thread(path.unlink, True)

    # Parts are written at their offset in one partial file, so completing is a rename.
    def _partial(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise ValueError(f"invalid upload id {upload_id!r}")
        return self.partial / upload_id

    async def begin_parts(self, key: str, content_type: str) -> str:
        check_key(key)
        path = await asyncio.to_thread(self._new_partial)
        await asyncio.to_thread(path.touch)
        return path.name

    def _open_upload(self, upload_id: str, wait: bool = True) -> int:
        """The upload's partial file, open and locked; ObjectNotFound once it was reclaimed.
        Without wait, BlockingIOError while another writer holds it."""
        path = self._partial(upload_id)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError as e:
            raise ObjectNotFound(f"upload {upload_id}") from e
        try:
            lock_for_writing(fd, path, wait)
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> PartRef:
        offset = (number - 1) * self.part_size

        def write() -> None:
            fd = self._open_upload(upload_id)
            try:
                end = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:  # pwrite may write less than asked, as a disk fills
                        view = view[os.pwrite(fd, view, offset + len(data) - len(view)) :]
                    os.fsync(fd)
                except BaseException:
                    if end <= offset:  # this part was the file's tail: give its space back
                        with contextlib.suppress(OSError):
                            os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)

        await asyncio.to_thread(write)
        return PartRef(number, hashlib.md5(data, usedforsecurity=False).hexdigest(), len(data))

    async def complete_parts(self, key: str, upload_id: str, parts: list[PartRef]) -> None:
        path = self._partial(upload_id)
        size = sum(p.size for p in parts)

        def finish() -> None:
            fd = self._open_upload(upload_id)
            try:
                os.ftruncate(fd, size)  # a retried part may have left bytes past the end
                self._publish(path, self._path(key))
            finally:
                os.close(fd)

        await asyncio.to_thread(finish)

    async def abort_parts(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._partial(upload_id).unlink)

    async def reclaim_partials(self, max_age: float) -> int:
        return await asyncio.to_thread(reclaim_dir, self.partial, time.time() - max_age)
