"""Resumable uploads: created with their length, filled piece by piece at the offset the
server reports, published as an ordinary upload (same id, same key, same `uploads` row) when
the last byte is in. Abandoned ones expire and are swept, bytes and row.

On the filesystem store the pieces come through the API (tus PATCH) into one fsync'd
partial file. On S3/MinIO they go from the client straight to the store through
pre-signed part URLs, and `complete` publishes them.
"""

import asyncio
import hashlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from lodestone.db import tenant_session
from lodestone.storage import FilesystemStore, ObjectNotFound, ObjectStore, PartRef, S3Store
from lodestone.storage import resumable as pieces
from schema.columns import utcnow
from schema.tables import ResumableUpload, Upload
from services import uploads
from services.errors import Conflict, NotFound

log = logging.getLogger("lodestone.uploads")
PART_URL_SECONDS = 3600  # how long a pre-signed part URL stays valid
PART_URLS_MAX = 1000  # part URLs per request


@dataclass(frozen=True)
class Progress:
    id: uuid.UUID
    offset: int
    length: int
    expires_at: datetime | None  # None once the upload is whole
    upload: Upload | None = None  # the published upload, once whole


class Digests:
    """The running SHA-256 of uploads being written through this process, by id, with the
    offset it has reached. A piece that comes to another process (or after a restart)
    finds none, and the whole is hashed once more when it is published."""

    MAX = 1000

    def __init__(self) -> None:
        self._by_id: OrderedDict[uuid.UUID, tuple[int, hashlib._Hash]] = OrderedDict()

    def at(self, upload_id: uuid.UUID, offset: int) -> "hashlib._Hash | None":
        if offset == 0:
            return hashlib.sha256()
        kept = self._by_id.pop(upload_id, None)
        return kept[1] if kept and kept[0] == offset else None

    def keep(self, upload_id: uuid.UUID, offset: int, digest: "hashlib._Hash | None") -> None:
        if digest is not None:
            self._by_id[upload_id] = (offset, digest)
            while len(self._by_id) > self.MAX:
                self._by_id.popitem(last=False)

    def take(self, upload_id: uuid.UUID, offset: int) -> str | None:
        kept = self._by_id.pop(upload_id, None)
        return kept[1].hexdigest() if kept and kept[0] == offset else None


DIGESTS = Digests()


def _expiry(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


async def create(
    engine: AsyncEngine, store: ObjectStore, *, tenant_id: uuid.UUID, length: int, content_type: str, expiry: float
) -> ResumableUpload:
    upload_id = uuid.uuid4()
    key = uploads.object_key(tenant_id, upload_id)
    handle = await store.begin_parts(key, content_type)
    row = ResumableUpload(
        id=upload_id,
        tenant_id=tenant_id,
        key=key,
        length=length,
        content_type=content_type,
        store_upload_id=handle,
        expires_at=_expiry(expiry),
    )
    try:
        async with tenant_session(engine, tenant_id) as session:
            session.add(row)
    except BaseException:
        await store.abort_parts(key, handle)  # no partial without the row that owns it
        raise
    return row


async def _live(session: AsyncSession, upload_id: uuid.UUID) -> ResumableUpload | None:
    row = await session.get(ResumableUpload, upload_id)
    return row if row is not None and row.expires_at > utcnow() else None


async def progress(engine: AsyncEngine, store: ObjectStore, *, tenant_id: uuid.UUID, upload_id: uuid.UUID) -> Progress:
    """Where an upload stands; on S3 the offset is what the store holds without a gap."""
    async with tenant_session(engine, tenant_id) as session:
        row = await _live(session, upload_id)
        done = None if row else await session.get(Upload, upload_id)
    if done is not None:
        return Progress(upload_id, done.size, done.size, None, done)
    if row is None:
        raise NotFound("upload", upload_id)
    offset = row.received
    if isinstance(store, FilesystemStore) and offset == row.length:
        return await _finish(engine, store, row)  # whole, but its publishing was cut short
    if isinstance(store, S3Store):
        offset, _ = pieces.contiguous(await _s3_parts(store, row), store.part_size, row.length)
    return Progress(upload_id, offset, row.length, row.expires_at)


async def _s3_parts(store: S3Store, row: ResumableUpload) -> list[PartRef]:
    try:
        return await pieces.s3_parts(store, row.key, row.store_upload_id)
    except ObjectNotFound as e:
        raise NotFound("upload", row.id) from e


async def append(
    engine: AsyncEngine,
    store: FilesystemStore,
    *,
    tenant_id: uuid.UUID,
    upload_id: uuid.UUID,
    offset: int,
    chunks: AsyncIterator[bytes],
    expiry: float,
) -> Progress:
    """Write a piece at offset (409 unless it is the offset stored), keep what arrived, and
    publish the upload when it is whole."""
    async with tenant_session(engine, tenant_id) as session:
        row = await _live(session, upload_id)
    if row is None:
        raise NotFound("upload", upload_id)
    try:
        async with pieces.writing(store, row.store_upload_id) as fd:
            received = await _write(engine, fd, tenant_id, upload_id, offset, chunks)
            async with tenant_session(engine, tenant_id) as session:
                row = await session.get(ResumableUpload, upload_id)
                if row is None:
                    raise NotFound("upload", upload_id)
                row.received, row.expires_at = received, _expiry(expiry)
                session.add(row)
    except pieces.Busy as e:
        raise Conflict("upload_busy", "another request is writing this upload; retry after it ends") from e
    except ObjectNotFound as e:
        raise NotFound("upload", upload_id) from e
    if received < row.length:
        return Progress(upload_id, received, row.length, row.expires_at)
    return await _finish(engine, store, row)


async def _write(
    engine: AsyncEngine, fd: int, tenant_id: uuid.UUID, upload_id: uuid.UUID, offset: int, chunks: AsyncIterator[bytes]
) -> int:
    """Append a piece to the partial file held (fd), checking the offset under that hold."""
    async with tenant_session(engine, tenant_id) as session:
        row = await _live(session, upload_id)
    if row is None:
        raise NotFound("upload", upload_id)
    if offset != row.received:
        raise Conflict("offset_mismatch", f"Upload-Offset is {offset}, but the upload holds {row.received} bytes")
    digest = DIGESTS.at(upload_id, offset)
    written = await pieces.append(fd, offset, chunks, row.length - offset, digest)
    DIGESTS.keep(upload_id, offset + written, digest)
    return offset + written


async def _finish(engine: AsyncEngine, store: FilesystemStore, row: ResumableUpload) -> Progress:
    """Publish a whole upload's partial file; if an earlier attempt renamed it already, the
    object in place is the upload."""
    try:
        await store.complete_parts(row.key, row.store_upload_id, [PartRef(1, "", row.length)])
    except ObjectNotFound:
        try:
            if await store.size(row.key) != row.length:
                raise NotFound("upload", row.id) from None
        except ObjectNotFound as e:
            raise NotFound("upload", row.id) from e
    return await _publish(engine, store, row, DIGESTS.take(row.id, row.length))


async def complete(engine: AsyncEngine, store: S3Store, *, tenant_id: uuid.UUID, upload_id: uuid.UUID) -> Progress:
    """Publish an S3 upload whose parts are all in (409 while any is missing)."""
    async with tenant_session(engine, tenant_id) as session:
        row = await _live(session, upload_id)
    if row is None:
        raise NotFound("upload", upload_id)
    offset, parts = pieces.contiguous(await _s3_parts(store, row), store.part_size, row.length)
    if offset != row.length:
        raise Conflict("upload_incomplete", f"the parts hold {offset} of {row.length} bytes without a gap")
    await store.complete_parts(row.key, row.store_upload_id, parts)
    return await _publish(engine, store, row, None)


async def _publish(engine: AsyncEngine, store: ObjectStore, row: ResumableUpload, sha256: str | None) -> Progress:
    """The `uploads` row for a published object, in the transaction that deletes the
    resumable row; the object goes if that fails."""
    sha256 = sha256 or await pieces.sha256_of(store, row.key)
    upload = Upload(
        id=row.id, tenant_id=row.tenant_id, key=row.key, size=row.length, sha256=sha256, content_type=row.content_type
    )
    try:
        async with tenant_session(engine, row.tenant_id) as session:
            await session.exec(delete(ResumableUpload).where(col(ResumableUpload.id) == row.id))  # type: ignore[call-overload]
            session.add(upload)
    except BaseException:
        await store.delete(row.key)
        raise
    return Progress(row.id, row.length, row.length, None, upload)


async def part_urls(
    engine: AsyncEngine, store: S3Store, *, tenant_id: uuid.UUID, upload_id: uuid.UUID, first: int, count: int
) -> list[pieces.PartURL]:
    async with tenant_session(engine, tenant_id) as session:
        row = await _live(session, upload_id)
    if row is None:
        raise NotFound("upload", upload_id)
    return pieces.part_urls(
        store, row.key, row.store_upload_id, row.length, first, min(count, PART_URLS_MAX), PART_URL_SECONDS
    )


async def terminate(engine: AsyncEngine, store: ObjectStore, *, tenant_id: uuid.UUID, upload_id: uuid.UUID) -> None:
    """The tus termination: the unfinished upload's bytes and row go."""
    async with tenant_session(engine, tenant_id) as session:
        row = await session.get(ResumableUpload, upload_id)
        if row is None:
            raise NotFound("upload", upload_id)
        await session.delete(row)
    await _drop(store, row)


async def _drop(store: ObjectStore, row: ResumableUpload) -> None:
    DIGESTS.take(row.id, -1)
    try:
        await store.abort_parts(row.key, row.store_upload_id)
    except Exception as e:  # noqa: BLE001 - the store's own sweep takes what is left
        log.warning("dropping upload %s's bytes failed: %s", row.id, type(e).__name__)


async def sweep_expired(engine: AsyncEngine, store: ObjectStore) -> int:
    """Delete every tenant's expired uploads, rows and bytes (migration 0018's expired_sweep
    policy lets this transaction see those rows and only those)."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        await session.execute(text("SELECT set_config('app.sweep', 'on', true)"))
        rows = list(
            (await session.exec(select(ResumableUpload).where(col(ResumableUpload.expires_at) < utcnow()))).all()
        )
        for row in rows:
            await session.delete(row)
    for row in rows:
        await _drop(store, row)
    if rows:
        log.info("swept %d expired uploads", len(rows))
    return len(rows)


async def sweep_forever(engine: AsyncEngine, store: ObjectStore, every: float) -> None:
    """sweep_expired now and every `every` seconds, until cancelled; errors are logged."""
    while True:
        try:
            await sweep_expired(engine, store)
        except Exception as e:  # noqa: BLE001 - the next sweep tries again
            log.warning("sweeping expired uploads failed: %s", type(e).__name__)
        await asyncio.sleep(every)
