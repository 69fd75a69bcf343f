"""MinIO or S3 through the minio client. The client blocks, so calls run in threads."""

import asyncio
import contextlib
import hashlib
import io
import time
from collections.abc import AsyncIterator

from lodestone.settings import Settings
from lodestone.storage.base import (
    CHUNK,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    PartRef,
    StoredObject,
    check_key,
)
from lodestone.storage.partials import abort_stale_uploads
from lodestone.storage.spool import SpooledPart

FULL_CODES = frozenset({"XMinioStorageFull", "XMinioAdminBucketQuotaExceeded", "InsufficientStorage"})


class S3Store(ObjectStore):
    def __init__(self, settings: Settings) -> None:
        from minio import Minio

        endpoint = (settings.s3_endpoint or "").removeprefix("http://").removeprefix("https://")
        secure = settings.s3_secure or (settings.s3_endpoint or "").startswith("https://")
        self.bucket = settings.s3_bucket
        self.part_size = settings.upload_part_size
        self.parts_in_flight = settings.upload_parts_in_flight
        self.client = Minio(
            endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=secure,
            region=settings.s3_region,
        )
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    @staticmethod
    def _missing(e: Exception) -> bool:
        return getattr(e, "code", None) in ("NoSuchKey", "NoSuchObject", "NoSuchBucket", "NoSuchUpload")

    def is_full(self, error: Exception) -> bool:
        """Besides a full TMPDIR under the spooled parts: MinIO's "storage full" and quota
        errors, and any 507 Insufficient Storage."""
        from minio.error import S3Error, ServerError

        if isinstance(error, S3Error):
            return error.code in FULL_CODES or error.response.status == 507
        if isinstance(error, ServerError):
            return error.status_code == 507
        return super().is_full(error)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        await asyncio.to_thread(
            self.client.put_object, self.bucket, check_key(key), io.BytesIO(data), len(data), content_type=content_type
        )
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

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
            resp = await asyncio.to_thread(
                self.client.get_object, self.bucket, check_key(key), offset=start, length=length
            )
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

    # minio's multipart calls are private but stable; the public put_object cannot resume.
    async def begin_parts(self, key: str, content_type: str) -> str:
        return await asyncio.to_thread(
            self.client._create_multipart_upload, self.bucket, check_key(key), {"Content-Type": content_type}
        )

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> PartRef:
        from minio.error import S3Error

        try:
            etag = await asyncio.to_thread(
                self.client._upload_part, self.bucket, check_key(key), data, None, upload_id, number
            )
        except S3Error as e:
            if self._missing(e):
                raise ObjectNotFound(f"upload {upload_id}") from e
            raise
        return PartRef(number, etag, len(data))

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], content_type: str, limit: int | None = None
    ) -> StoredObject:
        """A multipart upload of parts spooled to disk, up to parts_in_flight of them
        uploading while the next one fills; the upload is aborted on any failure."""
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
                    view = view[len(take) :]
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

    async def put_part_file(self, key: str, upload_id: str, number: int, part: SpooledPart) -> PartRef:
        from minio.error import S3Error

        try:
            etag = await asyncio.to_thread(self._upload_part_file, check_key(key), upload_id, number, part)
        except S3Error as e:
            if self._missing(e):
                raise ObjectNotFound(f"upload {upload_id}") from e
            raise
        return PartRef(number, etag, part.size)

    def _upload_part_file(self, key: str, upload_id: str, number: int, part: SpooledPart) -> str:
        """UploadPart with the body read from the spool file as it is sent. minio's own call
        takes the body as bytes, so this builds, signs (SigV4 with the part's SHA-256 as a
        signed payload) and sends the request with the client's own pieces; urllib3 rewinds
        the file if it retries."""
        from urllib.parse import urlunsplit

        from minio.error import S3Error
        from minio.signer import sign_v4_s3
        from minio.time import to_amz_date, utcnow

        client = self.client
        region = client._get_region(self.bucket)
        url = client._base_url.build(
            method="PUT",
            region=region,
            bucket_name=self.bucket,
            object_name=key,
            query_params={"partNumber": str(number), "uploadId": upload_id},
        )
        date = utcnow()
        headers: dict[str, str | list[str] | tuple[str]] = {
            "Host": url.netloc,
            "User-Agent": client._user_agent,
            "Content-Length": str(part.size),
            "x-amz-content-sha256": part.sha256,
            "x-amz-date": to_amz_date(date),
        }
        creds = client._provider.retrieve() if client._provider else None
        if creds:
            if creds.session_token:
                headers["X-Amz-Security-Token"] = creds.session_token
            headers = sign_v4_s3(
                method="PUT",
                url=url,
                region=region,
                headers=headers,
                credentials=creds,
                content_sha256=part.sha256,
                date=date,
            )
        part.file.seek(0)
        response = client._http.urlopen("PUT", urlunsplit(url), body=part.file, headers=headers)
        if response.status != 200:
            if response.data:
                raise S3Error.fromxml(response)
            raise S3Error(
                response, "UploadPartFailed", f"HTTP {response.status}", url.path, None, None, self.bucket, key
            )
        return str(response.headers.get("etag", "")).replace('"', "")

    async def complete_parts(self, key: str, upload_id: str, parts: list[PartRef]) -> None:
        from minio.datatypes import Part
        from minio.error import S3Error

        try:
            await asyncio.to_thread(
                self.client._complete_multipart_upload,
                self.bucket,
                check_key(key),
                upload_id,
                [Part(p.number, p.etag) for p in parts],
            )
        except S3Error as e:
            if self._missing(e):
                raise ObjectNotFound(f"upload {upload_id}") from e
            raise

    async def abort_parts(self, key: str, upload_id: str) -> None:
        await asyncio.to_thread(self.client._abort_multipart_upload, self.bucket, check_key(key), upload_id)

    async def reclaim_partials(self, max_age: float) -> int:
        """Abort the incomplete multipart uploads whose newest part (or start, with no part)
        is older than max_age."""
        return await asyncio.to_thread(abort_stale_uploads, self, time.time() - max_age)
