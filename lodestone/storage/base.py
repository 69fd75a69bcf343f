"""The object store interface and keys.

Large objects are written in numbered parts (S3 multipart on MinIO/S3, offset writes
into one file on the filesystem), so a write can resume from its last completed part.
"""

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

    @abstractmethod
    async def put_stream(self, key: str, chunks: AsyncIterator[bytes], content_type: str,
                         limit: int | None = None) -> StoredObject:
        """Stream chunks into one object without holding it whole; past `limit` bytes raise
        ObjectTooLarge. On any failure nothing is left: no object, no partial upload."""
