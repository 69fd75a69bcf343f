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

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], content_type: str,
                         limit: int | None = None) -> StoredObject:
        """Stream chunks into one object in parts, a few in flight; abort on any failure."""
        upload_id = await self.begin_parts(check_key(key), content_type)
        digest, size = hashlib.sha256(), 0
        parts: list[PartRef] = []
        pending: set[asyncio.Task[PartRef]] = set()
        buffer = bytearray()

        async def wait_for_slot() -> None:
            while len(pending) >= self.parts_in_flight:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    pending.discard(task)
                    parts.append(task.result())

        def flush(data: bytes) -> None:
            number = len(parts) + len(pending) + 1
            pending.add(asyncio.create_task(self.put_part(key, upload_id, number, data)))

        try:
            async for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise ObjectTooLarge(limit)
                digest.update(chunk)
                buffer += chunk
                while len(buffer) >= self.part_size:
                    # Wait for a free slot before cutting the part, so memory holds at most
                    # parts_in_flight parts plus the one filling.
                    await wait_for_slot()
                    with memoryview(buffer) as view:  # one copy per part, not two
                        part = bytes(view[: self.part_size])
                    del buffer[: self.part_size]
                    flush(part)
            if buffer or not (parts or pending):
                await wait_for_slot()
                flush(bytes(buffer))
            parts += await asyncio.gather(*pending)
            pending.clear()
            await self.complete_parts(key, upload_id, sorted(parts, key=lambda p: p.number))
        except BaseException:
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
                await asyncio.shield(self.abort_parts(key, upload_id))
            raise
        return StoredObject(key, size, digest.hexdigest())
