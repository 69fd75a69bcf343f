"""Large inputs: the request body streams into object storage, never held whole."""

import logging
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from api.deps import Editor, StateDep
from api.problems import AUTHENTICATED, Problem, responses
from lodestone.db import tenant_session
from lodestone.memory import release_free_memory
from lodestone.storage import ObjectTooLarge, check_key
from schema.tables import Tenant, Upload

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], responses=AUTHENTICATED)
log = logging.getLogger("lodestone.api.uploads")


class UploadPublic(BaseModel):
    upload_id: str
    key: str
    size: int
    sha256: str


async def upload_limit(state: StateDep, principal: Editor) -> int:
    async with tenant_session(state.engine, principal.tenant_id) as session:
        tenant = await session.get(Tenant, principal.tenant_id)
    return (tenant.upload_limit_bytes if tenant else None) or state.settings.upload_max_bytes


def too_large(limit: int) -> Problem:
    return Problem(413, "payload_too_large", f"uploads are limited to {limit} bytes for this tenant",
                   headers={"Connection": "close"})


@router.post("", status_code=201, response_model=UploadPublic,
             openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
                 "schema": {"type": "string", "format": "binary"}}}}},
             responses=responses(400, 413, descriptions={413: "over the tenant's upload limit"}))
async def create_upload(request: Request, state: StateDep, principal: Editor) -> UploadPublic:
    limit = await upload_limit(state, principal)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large(limit) if declared.isdigit() else Problem(400, "bad_request", "invalid Content-Length")
    upload_id = uuid.uuid4()
    key = check_key(f"{principal.tenant_id}/uploads/{upload_id}/input")
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
    try:
        async with tenant_session(state.engine, principal.tenant_id) as session:
            session.add(Upload(id=upload_id, tenant_id=principal.tenant_id, key=key, size=stored.size,
                               sha256=stored.sha256, content_type=content_type))
    except BaseException:
        await state.store.delete(key)  # no object without the row that owns it
        raise
    return UploadPublic(upload_id=str(upload_id), key=key, size=stored.size, sha256=stored.sha256)
