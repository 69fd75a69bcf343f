"""The filesystem store: objects are files under a root, same key layout as S3."""

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from lodestone.libc import finish_writeback, start_writeback
from lodestone.storage.base import (
    CHUNK,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    PartRef,
    StoredObject,
    check_key,
)
from lodestone.storage.batches import Batcher, Buffer, Pipeline
from lodestone.storage.spool import writev_all

# Write-behind: every WRITEBACK_EVERY bytes the disk starts writing the range just written,
# and the range before it is waited for and dropped from the page cache. At most two such
# ranges are dirty or cached at a time, however large the object, and the fsync at the end
# waits for the tail only.
WRITEBACK_EVERY = 32 * 1024 * 1024

Range = tuple[int, int]


def _write_all(fd: int, batch: Buffer, start: Range | None = None, finish: Range | None = None) -> None:
    writev_all(fd, [memoryview(batch)])
    if start is not None:
        start_writeback(fd, *start)
    if finish is not None:
        finish_writeback(fd, *finish)


def _writer(fd: int) -> Callable[[Buffer], None]:
    """Writes batches in order, with write-behind (WRITEBACK_EVERY)."""
    written = started = 0
    behind: Range | None = None  # writing started, not yet waited for

    def write(batch: Buffer) -> None:
        nonlocal written, started, behind
        written += len(batch)
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

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)

        def write() -> None:
            tmp = self._new_partial()
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._publish(tmp, path)

        await asyncio.to_thread(write)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], content_type: str,
                         limit: int | None = None) -> StoredObject:
        """Straight into one file: no parts needed when nothing has to resume. Chunks are
        gathered into contiguous batches, and two threads hash and write them while the next
        batches are being received (see batches.py). At most PIPELINE_DEPTH batches are in
        flight, so memory stays bounded when the disk is slow."""
        path, tmp = self._path(key), await asyncio.to_thread(self._new_partial)
        digest, size = hashlib.sha256(), 0
        fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        batcher, pipeline = Batcher(), None
        try:
            pipeline = Pipeline("fs-upload", [digest.update, _writer(fd)], batcher.recycle)
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise ObjectTooLarge(limit)
                for batch in batcher.add(chunk):
                    await pipeline.put(batch)
            await pipeline.put(batcher.rest())
            await pipeline.close()
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

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> PartRef:
        path = self._partial(upload_id)

        def write() -> None:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, data, (number - 1) * self.part_size)
                os.fsync(fd)
            finally:
                os.close(fd)

        if not await asyncio.to_thread(path.exists):
            raise ObjectNotFound(f"upload {upload_id}")
        await asyncio.to_thread(write)
        return PartRef(number, hashlib.md5(data, usedforsecurity=False).hexdigest(), len(data))

    async def complete_parts(self, key: str, upload_id: str, parts: list[PartRef]) -> None:
        path = self._partial(upload_id)
        size = sum(p.size for p in parts)

        def finish() -> None:
            os.truncate(path, size)  # a retried part may have left bytes past the end
            self._publish(path, self._path(key))

        await asyncio.to_thread(finish)

    async def abort_parts(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._partial(upload_id).unlink)
