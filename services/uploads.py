"""Uploads' bookkeeping: the tenant's size limit, where an upload's object goes, and the row
that owns it. The body's streaming into object storage stays with the API (api/routers/uploads.py)."""

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from lodestone.db import tenant_session
from lodestone.storage import ObjectStore, check_key
from schema.tables import Tenant, Upload


async def limit(engine: AsyncEngine, *, tenant_id: uuid.UUID, default: int) -> int:
    """The tenant's upload limit in bytes, or `default` if it has none of its own."""
    async with tenant_session(engine, tenant_id) as session:
        tenant = await session.get(Tenant, tenant_id)
    return (tenant.upload_limit_bytes if tenant else None) or default


def object_key(tenant_id: uuid.UUID, upload_id: uuid.UUID) -> str:
    return check_key(f"{tenant_id}/uploads/{upload_id}/input")


async def record(
    engine: AsyncEngine,
    store: ObjectStore,
    *,
    upload_id: uuid.UUID,
    tenant_id: uuid.UUID,
    key: str,
    size: int,
    sha256: str,
    content_type: str,
) -> None:
    """The row that owns a stored upload; if it cannot be written, the object is deleted."""
    try:
        async with tenant_session(engine, tenant_id) as session:
            session.add(
                Upload(id=upload_id, tenant_id=tenant_id, key=key, size=size, sha256=sha256, content_type=content_type)
            )
    except BaseException:
        await store.delete(key)  # no object without the row that owns it
        raise
