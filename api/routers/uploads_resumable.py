"""Resumable uploads on the tus 1.0 core protocol (with the creation, expiration and
termination extensions): POST with Upload-Length creates one, HEAD tells its offset, PATCH
appends at that offset, DELETE drops it. A client cut off mid-PATCH asks HEAD where to
carry on. On an S3/MinIO store the bytes skip the API: the client PUTs parts to
pre-signed URLs (GET …/parts) and POSTs …/complete. Either way the result is an upload
like POST /v1/uploads makes, with the same id, for a submission's input_upload_id."""

import base64
import binascii
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from api.auth import Principal
from api.deps import AppState, Editor, StateDep, Viewer
from api.problems import AUTHENTICATED, Problem, responses
from api.uploading import UploadPublic, too_large, upload_slot
from lodestone.memory import release_free_memory
from lodestone.storage import FilesystemStore, ObjectTooLarge, S3Store
from services import uploads, uploads_resumable
from services.uploads_resumable import Progress

router = APIRouter(prefix="/v1/uploads/resumable", tags=["uploads"])
TUS = "1.0.0"
OFFSET_TYPE = "application/offset+octet-stream"
EXTENSIONS = "creation,expiration,termination"


class ResumablePublic(BaseModel):
    upload_id: str
    location: str
    offset: int
    length: int
    expires_at: datetime | None
    complete: bool
    direct_parts: bool  # the bytes go to pre-signed part URLs (S3/MinIO), not PATCH
    part_size: int
    upload: UploadPublic | None = None  # once complete


class PartURLPublic(BaseModel):
    number: int
    offset: int
    size: int
    url: str


class PartURLsPublic(BaseModel):
    part_size: int
    parts: list[PartURLPublic]


TUS_ERRORS = {
    404: "no such upload for this tenant, or it expired",
    412: "no `Tus-Resumable: 1.0.0` header",
}


def _tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS:
        raise Problem(412, "tus_version", "send Tus-Resumable: 1.0.0", headers={"Tus-Version": TUS})


def _headers(p: Progress) -> dict[str, str]:
    headers = {"Tus-Resumable": TUS, "Upload-Offset": str(p.offset), "Upload-Length": str(p.length)}
    if p.expires_at is not None:
        headers["Upload-Expires"] = format_datetime(p.expires_at, usegmt=True)
    return headers


def _public(p: Progress, store: object, part_size: int) -> ResumablePublic:
    done = p.upload
    return ResumablePublic(
        upload_id=str(p.id),
        location=f"{router.prefix}/{p.id}",
        offset=p.offset,
        length=p.length,
        expires_at=p.expires_at,
        complete=done is not None,
        direct_parts=isinstance(store, S3Store),
        part_size=part_size,
        upload=None
        if done is None
        else UploadPublic(upload_id=str(done.id), key=done.key, size=done.size, sha256=done.sha256),
    )


def _content_type(metadata: str | None) -> str:
    """The type named in Upload-Metadata (`filetype` or `content-type`, base64), if any."""
    for pair in (metadata or "").split(","):
        name, _, value = pair.strip().partition(" ")
        if name in ("filetype", "content-type", "contentType") and value:
            try:
                return base64.b64decode(value, validate=True).decode("ascii")[:200] or "application/octet-stream"
            except (binascii.Error, UnicodeDecodeError):
                raise Problem(400, "bad_request", "Upload-Metadata values must be base64") from None
    return "application/octet-stream"


@router.options("", status_code=204, responses=responses(503))
async def capabilities(state: StateDep) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS,
            "Tus-Version": TUS,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(state.settings.upload_max_bytes),
        },
    )


@router.post(
    "",
    status_code=201,
    response_model=ResumablePublic,
    responses={
        **AUTHENTICATED,
        **responses(
            400,
            412,
            413,
            503,
            507,
            descriptions={
                **TUS_ERRORS,
                400: "no valid Upload-Length",
                413: "Upload-Length is over the tenant's upload limit",
            },
        ),
    },
)
async def create(request: Request, response: Response, state: StateDep, principal: Editor) -> ResumablePublic:
    _tus(request)
    declared = request.headers.get("upload-length", "")
    if not declared.isdigit():
        raise Problem(
            400, "bad_request", "Upload-Length must be the upload's size in bytes (deferred lengths are not supported)"
        )
    limit = await uploads.limit(state.engine, tenant_id=principal.tenant_id, default=state.settings.upload_max_bytes)
    if int(declared) > limit:
        raise too_large(limit)
    row = await uploads_resumable.create(
        state.engine,
        state.store,
        tenant_id=principal.tenant_id,
        length=int(declared),
        content_type=_content_type(request.headers.get("upload-metadata")),
        expiry=state.settings.upload_expiry,
    )
    p = Progress(row.id, 0, row.length, row.expires_at)
    response.headers.update({**_headers(p), "Location": f"{router.prefix}/{row.id}"})
    return _public(p, state.store, state.store.part_size)


@router.head(
    "/{upload_id}", status_code=200, responses={**AUTHENTICATED, **responses(404, 412, 422, descriptions=TUS_ERRORS)}
)
async def offset(upload_id: uuid.UUID, request: Request, state: StateDep, principal: Viewer) -> Response:
    _tus(request)
    p = await uploads_resumable.progress(state.engine, state.store, tenant_id=principal.tenant_id, upload_id=upload_id)
    return Response(status_code=200, headers={**_headers(p), "Cache-Control": "no-store"})


@router.get(
    "/{upload_id}",
    response_model=ResumablePublic,
    responses={**AUTHENTICATED, **responses(404, 422, descriptions=TUS_ERRORS)},
)
async def status(upload_id: uuid.UUID, state: StateDep, principal: Viewer) -> ResumablePublic:
    p = await uploads_resumable.progress(state.engine, state.store, tenant_id=principal.tenant_id, upload_id=upload_id)
    return _public(p, state.store, state.store.part_size)


@router.patch(
    "/{upload_id}",
    status_code=204,
    openapi_extra={
        "requestBody": {"required": True, "content": {OFFSET_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
    },
    responses={
        **AUTHENTICATED,
        **responses(
            400,
            404,
            408,
            409,
            412,
            413,
            415,
            422,
            429,
            503,
            507,
            descriptions={
                **TUS_ERRORS,
                400: "no valid Upload-Offset",
                409: "Upload-Offset is not the upload's offset (`offset_mismatch`), another PATCH is writing it "
                "(`upload_busy`), or the store takes parts directly (`direct_parts`)",
                413: "the body runs past Upload-Length",
                415: f"the Content-Type is not {OFFSET_TYPE}",
                429: "the tenant already has TENANT_UPLOADS_IN_FLIGHT uploads in progress here; see Retry-After",
                503: "this API process already has UPLOADS_IN_FLIGHT uploads in progress; see Retry-After",
            },
        ),
    },
)
async def append(upload_id: uuid.UUID, request: Request, state: StateDep, principal: Editor) -> Response:
    _tus(request)
    if request.headers.get("content-type", "").split(";")[0].strip() != OFFSET_TYPE:
        raise Problem(415, "unsupported_media_type", f"PATCH bodies are {OFFSET_TYPE}")
    at = request.headers.get("upload-offset", "")
    if not at.isdigit():
        raise Problem(400, "bad_request", "Upload-Offset must be the offset in bytes")
    store = state.store
    if not isinstance(store, FilesystemStore):
        raise Problem(409, "direct_parts", "this store takes the bytes directly: use GET …/parts and POST …/complete")
    async with upload_slot(state, principal):
        p = await _append(upload_id, int(at), request, state, principal, store)
    return Response(status_code=204, headers=_headers(p))


async def _append(
    upload_id: uuid.UUID, at: int, request: Request, state: AppState, principal: Principal, store: FilesystemStore
) -> Progress:
    try:
        return await uploads_resumable.append(
            state.engine,
            store,
            tenant_id=principal.tenant_id,
            upload_id=upload_id,
            offset=at,
            chunks=_until_cut(request),
            expiry=state.settings.upload_expiry,
        )
    except ObjectTooLarge as e:
        raise Problem(
            413, "payload_too_large", "the body runs past Upload-Length", headers={"Connection": "close"}
        ) from e
    finally:
        release_free_memory()


async def _until_cut(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives; a client cut off ends it, and what came before is kept."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        return


@router.delete(
    "/{upload_id}", status_code=204, responses={**AUTHENTICATED, **responses(404, 412, 422, descriptions=TUS_ERRORS)}
)
async def terminate(upload_id: uuid.UUID, request: Request, state: StateDep, principal: Editor) -> Response:
    _tus(request)
    await uploads_resumable.terminate(state.engine, state.store, tenant_id=principal.tenant_id, upload_id=upload_id)
    return Response(status_code=204, headers={"Tus-Resumable": TUS})


@router.get(
    "/{upload_id}/parts",
    response_model=PartURLsPublic,
    responses={
        **AUTHENTICATED,
        **responses(404, 409, 422, descriptions={**TUS_ERRORS, 409: "the store takes PATCH, not part URLs"}),
    },
)
async def part_urls(
    upload_id: uuid.UUID,
    state: StateDep,
    principal: Editor,
    first: int = Query(1, ge=1, le=10000),
    count: int = Query(100, ge=1, le=uploads_resumable.PART_URLS_MAX),
) -> PartURLsPublic:
    store = state.store
    if not isinstance(store, S3Store):
        raise Problem(409, "patch_only", "this store takes the bytes through PATCH")
    parts = await uploads_resumable.part_urls(
        state.engine, store, tenant_id=principal.tenant_id, upload_id=upload_id, first=first, count=count
    )
    return PartURLsPublic(part_size=store.part_size, parts=[PartURLPublic(**vars(p)) for p in parts])


@router.post(
    "/{upload_id}/complete",
    response_model=UploadPublic,
    responses={
        **AUTHENTICATED,
        **responses(404, 409, 422, 507, descriptions={**TUS_ERRORS, 409: "parts are missing (`upload_incomplete`)"}),
    },
)
async def complete(upload_id: uuid.UUID, state: StateDep, principal: Editor) -> UploadPublic:
    store, tenant_id = state.store, principal.tenant_id
    if isinstance(store, S3Store):
        p = await uploads_resumable.complete(state.engine, store, tenant_id=tenant_id, upload_id=upload_id)
    else:
        p = await uploads_resumable.progress(state.engine, store, tenant_id=tenant_id, upload_id=upload_id)
    if p.upload is None:
        raise Problem(409, "upload_incomplete", f"the upload holds {p.offset} of {p.length} bytes")
    return UploadPublic(upload_id=str(p.id), key=p.upload.key, size=p.upload.size, sha256=p.upload.sha256)
