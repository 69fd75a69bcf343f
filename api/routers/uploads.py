"""Large inputs: the request body streams into object storage, never held whole."""

import logging
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect

from api.auth import Principal
from api.deps import AppState, Editor, StateDep
from api.problems import AUTHENTICATED, Problem, responses
from api.uploading import UploadPublic, too_large, upload_slot
from lodestone.memory import release_free_memory
from lodestone.storage import ObjectTooLarge
from services import uploads

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=AUTHENTICATED)
log = logging.getLogger("lodestone.api.uploads")


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses=responses(
        400,
        408,
        413,
        429,
        503,
        507,
        descriptions={
            413: "over the tenant's upload limit",
            429: "the tenant already has TENANT_UPLOADS_IN_FLIGHT uploads in progress here; see Retry-After",
            503: "this API process already has UPLOADS_IN_FLIGHT uploads in progress; see Retry-After",
        },
    ),
)
async def create_upload(request: Request, state: StateDep, principal: Editor) -> UploadPublic:
    limit = await uploads.limit(state.engine, tenant_id=principal.tenant_id, default=state.settings.upload_max_bytes)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large(limit) if declared.isdigit() else Problem(400, "bad_request", "invalid Content-Length")
    async with upload_slot(state, principal):
        return await store_upload(request, state, principal, limit)


async def store_upload(request: Request, state: AppState, principal: Principal, limit: int) -> UploadPublic:
    upload_id = uuid.uuid4()
    key = uploads.object_key(principal.tenant_id, upload_id)
    content_type = request.headers.get("content-type", "application/octet-stream")[:200]
    body: AsyncIterator[bytes] = request.stream()
    try:
        stored = await state.store.put_stream(key, body, content_type, limit=limit)
    except ObjectTooLarge as e:
        raise too_large(limit) from e
    except ClientDisconnect as e:
        log.info("upload %s abandoned by the client; nothing kept", upload_id)
        raise Problem(400, "client_disconnected", "the client went away before the body ended") from e
    finally:
        release_free_memory()  # the heap the body's buffers grew, kept for reuse while it streamed
    await uploads.record(
        state.engine,
        state.store,
        upload_id=upload_id,
        tenant_id=principal.tenant_id,
        key=key,
        size=stored.size,
        sha256=stored.sha256,
        content_type=content_type,
    )
    return UploadPublic(upload_id=str(upload_id), key=key, size=stored.size, sha256=stored.sha256)
