"""Artifacts, looked up for the API: by the caller's tenant session, or, for a signed link,
under the tenant the link names."""

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from lodestone.db import tenant_session
from schema.tables import Artifact
from services.errors import NotFound


async def get(session: AsyncSession, artifact_id: uuid.UUID) -> Artifact:
    artifact = await session.get(Artifact, artifact_id)  # RLS: only the session's tenant's rows
    if artifact is None:
        raise NotFound("artifact", artifact_id)
    return artifact


async def linked(engine: AsyncEngine, *, tenant_id: uuid.UUID, artifact_id: uuid.UUID) -> Artifact:
    """The artifact a verified link names, only if it is the link's tenant's."""
    async with tenant_session(engine, tenant_id) as session:
        artifact = await session.get(Artifact, artifact_id)
    if artifact is None or artifact.tenant_id != tenant_id:
        raise NotFound("artifact", artifact_id)
    return artifact
