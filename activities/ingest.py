"""Input ingest: stream a URL into object storage in parts, heartbeating a checkpoint so
a retried attempt resumes at the next part instead of starting over."""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.common import fail
from lodestone.db import tenant_session
from lodestone.netguard import OutboundRefused, open_stream
from lodestone.settings import Settings
from lodestone.storage import ObjectNotFound, ObjectStore, PartRef, job_key
from schema.tables import Job, Tenant


@dataclass
class IngestInput:
    tenant_id: str
    job_id: str
    url: str


@dataclass
class IngestCheckpoint:
    """Heartbeat details: enough for a retried attempt to resume at the next part."""

    upload_id: str
    parts: list[list[Any]]  # [number, etag, size]
    bytes_done: int


@dataclass
class IngestResult:
    key: str
    size: int
    parts: int
    parts_uploaded: int  # by the attempt that finished; fewer than parts after a resume
    resumed_from_part: int


RETRYABLE_STATUS = {408, 425, 429}


def _checkpoint() -> IngestCheckpoint | None:
    details = activity.info().heartbeat_details
    if not details:
        return None
    raw = details[0]
    return IngestCheckpoint(**raw) if isinstance(raw, dict) else raw


class IngestActivities:
    def __init__(self, engine: AsyncEngine, store: ObjectStore, http: httpx.AsyncClient, settings: Settings) -> None:
        self.engine, self.store, self.http, self.settings = engine, store, http, settings

    async def _limit(self, tenant_id: str) -> int:
        async with tenant_session(self.engine, tenant_id) as session:
            tenant = await session.get(Tenant, uuid.UUID(tenant_id))
        return (tenant.upload_limit_bytes if tenant else None) or self.settings.upload_max_bytes

    @activity.defn
    async def ingest_input(self, inp: IngestInput) -> IngestResult:
        key = job_key(inp.tenant_id, inp.job_id, "input")
        limit = await self._limit(inp.tenant_id)
        cp = _checkpoint()
        resumed = len(cp.parts) if cp else 0
        if cp is None:
            cp = IngestCheckpoint(await self.store.begin_parts(key, "application/octet-stream"), [], 0)
        try:
            uploaded = await self._fetch(inp, key, cp, limit)
        except ObjectNotFound:
            # The upload was reclaimed (unmodified for PARTIAL_MAX_AGE_SECONDS) or dropped
            # by a failed attempt with nothing in it: start over in a new one.
            activity.logger.info("upload of job %s is gone; ingest restarts", inp.job_id)
            cp = IngestCheckpoint(await self.store.begin_parts(key, "application/octet-stream"), [], 0)
            resumed = 0
            activity.heartbeat(cp)
            uploaded = await self._fetch(inp, key, cp, limit)
        async with tenant_session(self.engine, inp.tenant_id) as session:
            job = await session.get(Job, uuid.UUID(inp.job_id))
            if job is not None:
                job.input_key = key
                session.add(job)
        return IngestResult(key, cp.bytes_done, len(cp.parts), uploaded, resumed)

    async def _fetch(self, inp: IngestInput, key: str, cp: IngestCheckpoint, limit: int) -> int:
        """Fetch the input from cp.bytes_done into the upload cp names, and complete it."""
        headers = {"Range": f"bytes={cp.bytes_done}-"} if cp.bytes_done else {}
        try:
            try:
                resp = await open_stream(self.http, inp.url, headers, self.settings.ingest_max_redirects)
            except OutboundRefused as e:
                raise fail(errors.INPUT_URL_REFUSED, str(e)) from e
            except httpx.HTTPError as e:
                raise ApplicationError(f"fetching input failed: {e}", type=errors.INPUT_UNAVAILABLE) from e
            try:
                if cp.bytes_done and resp.status_code != 206:
                    activity.logger.info("source ignored Range; ingest of job %s restarts", inp.job_id)
                    cp.parts, cp.bytes_done = [], 0
                self._check_response(resp, cp, limit)
                uploaded = await self._copy(resp, key, cp, limit)
            finally:
                await resp.aclose()
            await self.store.complete_parts(key, cp.upload_id, [PartRef(*p) for p in cp.parts])
            return uploaded
        except BaseException as e:
            # No retry will finish this upload, or it holds nothing to resume: drop it now
            # rather than leave an empty partial per failed attempt. A later attempt that a
            # heartbeat pointed at it finds it gone and starts over (above).
            if not cp.parts or (isinstance(e, ApplicationError) and e.non_retryable):
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.abort_parts(key, cp.upload_id))
            raise

    @staticmethod
    def _check_response(resp: httpx.Response, cp: IngestCheckpoint, limit: int) -> None:
        status = resp.status_code
        if status >= 500 or status in RETRYABLE_STATUS:
            raise ApplicationError(f"input source answered {status}", type=errors.INPUT_UNAVAILABLE)
        if status >= 300:
            raise fail(errors.INPUT_FETCH_FAILED, f"input source answered {status}")
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and cp.bytes_done + int(declared) > limit:
            raise fail(errors.INPUT_TOO_LARGE, f"input is {cp.bytes_done + int(declared)} bytes; the limit is {limit}")

    async def _copy(self, resp: httpx.Response, key: str, cp: IngestCheckpoint, limit: int) -> int:
        part_size, uploaded = self.store.part_size, 0
        buffer = bytearray()

        async def put(data: bytes) -> None:
            nonlocal uploaded
            ref = await self.store.put_part(key, cp.upload_id, len(cp.parts) + 1, data)
            cp.parts.append([ref.number, ref.etag, ref.size])
            cp.bytes_done += ref.size
            uploaded += 1
            activity.heartbeat(cp)

        async for chunk in resp.aiter_bytes():
            if cp.bytes_done + len(buffer) + len(chunk) > limit:
                raise fail(errors.INPUT_TOO_LARGE, f"input exceeds the limit of {limit} bytes")
            buffer += chunk
            while len(buffer) >= part_size:
                await put(bytes(buffer[:part_size]))
                del buffer[:part_size]
            activity.heartbeat(cp)
        if buffer or not cp.parts:
            await put(bytes(buffer))
        return uploaded
