"""The object store interface and keys.

Large objects are written in numbered parts (S3 multipart on MinIO/S3, offset writes
into one file on the filesystem), so a write can resume from its last completed part.
"""

import errno
import functools
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

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


class StorageFull(OSError):
    """The store has no room for a write (a full disk or quota, or S3 answering so). Raised
    by every write of every store; an activity that gets it fails with the type
    `StorageFull`, which Temporal retries, and the API answers 507 `storage_full`."""


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# The writes: each is wrapped (ObjectStore.__init_subclass__) so a store's own "no room"
# error reaches the caller as StorageFull, whichever store and whichever write.
WRITES = ("put_bytes", "put_stream", "begin_parts", "put_part", "complete_parts")


def _reporting_full(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    async def wrapper(self: "ObjectStore", *args: Any, **kwargs: Any) -> Any:
        try:
            return await write(self, *args, **kwargs)
        except StorageFull:
            raise
        except Exception as e:
            if self.is_full(e):
                raise StorageFull(errno.ENOSPC, f"the object store is full: {e}") from e
            raise

    return wrapper


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in WRITES:
            if name in cls.__dict__:
                setattr(cls, name, _reporting_full(cls.__dict__[name]))

    def is_full(self, error: Exception) -> bool:
        """Whether a write failed for want of room; a store adds its own signs of it."""
        return isinstance(error, OSError) and error.errno in FULL_ERRNOS

    @abstractmethod
    async def reclaim_partials(self, max_age: float) -> int:
        """Remove what crashed or abandoned writes left (partial files, incomplete multipart
        uploads) last modified more than max_age seconds ago and not being written now.
        Returns how many were removed."""

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
    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], content_type: str, limit: int | None = None
    ) -> StoredObject:
        """Stream chunks into one object without holding it whole; past `limit` bytes raise
        ObjectTooLarge. On any failure nothing is left: no object, no partial upload."""
