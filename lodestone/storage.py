"""Object storage behind one interface: a filesystem store (the default) or MinIO/S3.

Keys look like `{tenant_id}/jobs/{job_id}/report.html` on both.
"""

import asyncio
import hashlib
import io
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from lodestone.settings import Settings

CHUNK = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")


class ObjectNotFound(KeyError):
    pass


class InvalidKey(ValueError):
    pass


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


def check_key(key: str) -> str:
    parts = key.split("/")
    if not _KEY.match(key) or any(p in ("", ".", "..") for p in parts):
        raise InvalidKey(f"invalid object key {key!r}")
    return key


def job_key(tenant_id: object, job_id: object, name: str) -> str:
    return check_key(f"{tenant_id}/jobs/{job_id}/{name}")


class ObjectStore(ABC):
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


class FilesystemStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)

        await asyncio.to_thread(write)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    async def get_bytes(self, key: str) -> bytes:
        path = await asyncio.to_thread(self._file, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e

    def _file(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():  # a "directory" between keys is not an object, as on S3
            raise ObjectNotFound(key)
        return path

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


class S3Store(ObjectStore):
    """MinIO or S3 through the minio client (blocking, so calls run in threads)."""

    def __init__(self, settings: Settings) -> None:
        from minio import Minio

        endpoint = settings.s3_endpoint or ""
        endpoint = endpoint.removeprefix("http://").removeprefix("https://")
        secure = settings.s3_secure or (settings.s3_endpoint or "").startswith("https://")
        self.bucket = settings.s3_bucket
        self.client = Minio(endpoint, access_key=settings.s3_access_key,
                            secret_key=settings.s3_secret_key, secure=secure,
                            region=settings.s3_region)
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        await asyncio.to_thread(self.client.put_object, self.bucket, check_key(key),
                                io.BytesIO(data), len(data), content_type=content_type)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    def _missing(self, e: Exception) -> bool:
        return getattr(e, "code", None) in ("NoSuchKey", "NoSuchObject", "NoSuchBucket")

    async def get_bytes(self, key: str) -> bytes:
        return b"".join([c async for c in self.iter_range(key)])

    async def size(self, key: str) -> int:
        from minio.error import S3Error

        try:
            stat = await asyncio.to_thread(self.client.stat_object, self.bucket, check_key(key))
        except S3Error as e:
            if self._missing(e):
                raise ObjectNotFound(key) from e
            raise
        return int(stat.size or 0)

    async def iter_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        from minio.error import S3Error

        length = 0 if end is None else end - start + 1
        try:
            resp = await asyncio.to_thread(self.client.get_object, self.bucket, check_key(key),
                                           offset=start, length=length)
        except S3Error as e:
            if self._missing(e):
                raise ObjectNotFound(key) from e
            raise
        try:
            stream = resp.stream(CHUNK)
            while True:
                chunk = await asyncio.to_thread(next, stream, None)
                if chunk is None:
                    break
                yield chunk
        finally:
            resp.close()
            resp.release_conn()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, check_key(key))


def make_store(settings: Settings) -> ObjectStore:
    if settings.s3_endpoint:
        return S3Store(settings)
    return FilesystemStore(settings.data_path / "objects")
