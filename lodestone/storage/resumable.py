"""Uploads that arrive in pieces and survive a restart between them.

Filesystem store: the pieces are appended to one partial file (begin_parts made it), each
piece fsync'd before its new offset is reported, so an API that restarts, or a client that
reconnects to another API process on the same disk, carries on from that offset. The file
is flock'd while a piece is written: a second writer is refused (Busy), and the partial
sweep never takes a file being written.

S3/MinIO store: the client PUTs the parts of a multipart upload straight to the store
through pre-signed URLs; what has arrived is read back with ListParts.
"""

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from lodestone.storage.base import ObjectNotFound, ObjectStore, PartRef
from lodestone.storage.batches import Batcher, Pipeline, hashing, pump
from lodestone.storage.fs import FilesystemStore, _writer
from lodestone.storage.s3 import S3Store

HASH_READ = 4 * 1024 * 1024


class Busy(Exception):
    """Another request is writing this upload's bytes now."""


def _lock(store: FilesystemStore, upload_id: str) -> int:
    """The partial file, open for writing and locked, while it is still the partial (not
    published by a writer that held it before)."""
    try:
        fd = store._open_upload(upload_id, wait=False)
    except BlockingIOError as e:
        raise Busy(upload_id) from e
    try:
        if os.stat(store._partial(upload_id)).st_ino != os.fstat(fd).st_ino:
            raise ObjectNotFound(f"upload {upload_id}")
    except BaseException:
        os.close(fd)
        raise
    return fd


@asynccontextmanager
async def writing(store: FilesystemStore, upload_id: str) -> AsyncIterator[int]:
    """Hold the upload's partial file for writing: Busy while another request holds it,
    ObjectNotFound once it was reclaimed or published."""
    try:
        fd = await asyncio.to_thread(_lock, store, upload_id)
    except FileNotFoundError as e:
        raise ObjectNotFound(f"upload {upload_id}") from e
    try:
        yield fd
    finally:
        os.close(fd)


def _position(fd: int, offset: int) -> None:
    """Write next at offset; bytes past it (a piece cut before it was made durable) go."""
    size = os.fstat(fd).st_size
    if size < offset:  # it lost bytes it had reported
        raise ObjectNotFound("the partial file is shorter than its offset")
    if size > offset:
        os.ftruncate(fd, offset)
    os.lseek(fd, offset, os.SEEK_SET)


async def append(
    fd: int,
    offset: int,
    chunks: AsyncIterator[bytes],
    most: int,
    digest: "hashlib._Hash | None" = None,
) -> int:
    """Write chunks at offset into a partial file held by `writing`, at most `most` bytes
    (more: ObjectTooLarge), and return how many were written. The stream ending early (a
    client cut off) keeps what arrived; any error drops this piece's bytes. `digest`, when
    given, is updated with the bytes kept."""
    await asyncio.to_thread(_position, fd, offset)
    batcher = Batcher()
    steps = [_writer(fd, offset)] if digest is None else [_writer(fd, offset), hashing(digest)]
    pipeline = Pipeline("fs-append", steps, batcher.recycle)
    try:
        received = await pump(chunks, batcher, pipeline, most)
        await asyncio.to_thread(os.fsync, fd)
    except BaseException:
        try:
            await asyncio.shield(pipeline.close())
        except BaseException:
            pipeline.join()
        with contextlib.suppress(OSError):
            os.ftruncate(fd, offset)
        raise
    return received


async def sha256_of(store: ObjectStore, key: str) -> str:
    """The SHA-256 of a stored object, read back (when the pieces were not hashed as they came)."""
    if isinstance(store, FilesystemStore):

        def hash_file() -> str:
            digest = hashlib.sha256()
            with open(store._file(key), "rb") as f:
                while block := f.read(HASH_READ):
                    digest.update(block)
            return digest.hexdigest()

        return await asyncio.to_thread(hash_file)
    digest = hashlib.sha256()
    async for chunk in store.iter_range(key):
        digest.update(chunk)
    return digest.hexdigest()


# S3: parts go straight from the client to the store.
@dataclass(frozen=True)
class PartURL:
    number: int
    offset: int
    size: int
    url: str


def part_urls(store: S3Store, key: str, upload_id: str, length: int, first: int, count: int, ttl: int) -> list[PartURL]:
    """Pre-signed PUT URLs for parts first..first+count-1 (each part_size bytes but the last)."""
    last = max(1, -(-length // store.part_size))
    return [
        PartURL(
            n,
            (n - 1) * store.part_size,
            min(store.part_size, length - (n - 1) * store.part_size),
            store.client.get_presigned_url(
                "PUT",
                store.bucket,
                key,
                expires=timedelta(seconds=ttl),
                extra_query_params={"uploadId": upload_id, "partNumber": str(n)},
            ),
        )
        for n in range(first, min(last, first + count - 1) + 1)
    ]


async def s3_parts(store: S3Store, key: str, upload_id: str) -> list[PartRef]:
    """The parts stored so far, in order."""

    def listed() -> list[PartRef]:
        from minio.error import S3Error

        parts, marker = [], None
        while True:
            try:
                page = store.client._list_parts(store.bucket, key, upload_id, part_number_marker=marker)
            except S3Error as e:
                if store._missing(e):
                    raise ObjectNotFound(f"upload {upload_id}") from e
                raise
            parts += [PartRef(p.part_number, p.etag, p.size or 0) for p in page.parts]
            if not page.is_truncated or not page.next_part_number_marker:
                return sorted(parts, key=lambda p: p.number)
            marker = page.next_part_number_marker

    return await asyncio.to_thread(listed)


def contiguous(parts: list[PartRef], part_size: int, length: int) -> tuple[int, list[PartRef]]:
    """The bytes the parts hold from the start without a gap, and those parts: 1, 2, … each
    part_size bytes, the last of them possibly shorter only if it ends the upload."""
    offset, run = 0, []
    for expected, part in enumerate(parts, start=1):
        if part.number != expected or (part.size != part_size and offset + part.size != length):
            break
        offset += part.size
        run.append(part)
    return offset, run
