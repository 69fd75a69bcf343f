"""The object store interface, keys, and the streaming write both stores share.

Large objects are written in numbered parts (S3 multipart on MinIO/S3, offset writes
into one file on the filesystem), so a write can resume from its last completed part.
"""

import asyncio
import contextlib
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from lodestone.storage.spool import SpooledPart

CHUNK = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")


class ObjectNotFound(KeyError):
    pass


class InvalidKey(ValueError):
    pass


class ObjectTooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"object exceeds the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


@dataclass
class PartRef:
    number: int
    etag: str
    size: int


def check_key(key: str) -> str:
    parts = key.split("/")
    if not _KEY.match(key) or any(p in ("", ".", "..") for p in parts):
        raise InvalidKey(f"invalid object key {key!r}")
    return key


def job_key(tenant_id: object, job_id: object, name: str) -> str:
    return check_key(f"{tenant_id}/jobs/{job_id}/{name}")


class ObjectStore(ABC):
    part_size: int = 16 * 1024 * 1024
    parts_in_flight: int = 2

    @abstractmethod
    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    @abstractmethod
    async def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    async def size(self, key: str) -> int: ...

    @abstractmethod
    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield bytes start..end inclusive (end None = to the end of the object)."""

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    # Parts: every part but the last is exactly part_size bytes.
    @abstractmethod
    async def begin_parts(self, key: str, content_type: str) -> str: ...

    @abstractmethod
    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> PartRef: ...

    @abstractmethod
    async def complete_parts(self, key: str, upload_id: str, parts: list[PartRef]) -> None: ...

    @abstractmethod
    async def abort_parts(self, key: str, upload_id: str) -> None: ...

    async def put_part_file(self, key: str, upload_id: str, number: int, part: SpooledPart) -> PartRef:
        """Upload a part spooled to disk. This default reads it back whole; stores that can
        stream a request body from a file override it."""
        part.file.seek(0)
        return await self.put_part(key, upload_id, number, await asyncio.to_thread(part.file.read))

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], content_type: str,
                         limit: int | None = None) -> StoredObject:
        """Stream chunks into one object in parts spooled to disk, up to parts_in_flight of
        them uploading while the next one fills; abort the upload on any failure."""
        upload_id = await self.begin_parts(check_key(key), content_type)
        digest, size = hashlib.sha256(), 0
        parts: list[PartRef] = []
        pending: set[asyncio.Task[PartRef]] = set()
        filling: SpooledPart | None = None

        async def wait_for_slot() -> None:
            while len(pending) >= self.parts_in_flight:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    pending.discard(task)
                    parts.append(task.result())

        async def send(number: int, part: SpooledPart) -> PartRef:
            upload = asyncio.ensure_future(self.put_part_file(key, upload_id, number, part))
            try:
                return await asyncio.shield(upload)
            except asyncio.CancelledError:
                await asyncio.wait({upload})  # its thread reads the file: close it after
                raise
            finally:
                part.close()

        async def ship(part: SpooledPart) -> None:
            await part.flush(digest)
            await wait_for_slot()
            pending.add(asyncio.create_task(send(len(parts) + len(pending) + 1, part)))

        try:
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise ObjectTooLarge(limit)
                view = memoryview(chunk)
                while view:
                    if filling is None:
                        filling = await SpooledPart.open()
                    take = view[: self.part_size - filling.length]
                    view = view[len(take):]
                    await filling.add(take, digest)
                    if filling.length >= self.part_size:
                        part, filling = filling, None
                        await ship(part)
            if filling is not None or not (parts or pending):
                part, filling = filling or await SpooledPart.open(), None
                await ship(part)
            parts += await asyncio.gather(*pending)
            pending.clear()
            await self.complete_parts(key, upload_id, sorted(parts, key=lambda p: p.number))
        except BaseException:
            if filling is not None:
                filling.close()
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
                await asyncio.shield(self.abort_parts(key, upload_id))
            raise
        return StoredObject(key, size, digest.hexdigest())
