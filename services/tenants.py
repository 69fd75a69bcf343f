"""Creating tenants (the CLI and the demo seed use this)."""

import base64
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from lodestone.db import tenant_session
from schema.tables import Tenant


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_tenant(engine: AsyncEngine, name: str, tenant_id: uuid.UUID | None = None) -> Tenant:
    tenant = Tenant(id=tenant_id or uuid.uuid4(), name=name, webhook_secret=new_webhook_secret())
    async with tenant_session(engine, tenant.id) as session:
        session.add(tenant)
    return tenant


async def get_tenant(engine: AsyncEngine, tenant_id: uuid.UUID) -> Tenant | None:
    async with tenant_session(engine, tenant_id) as session:
        return await session.get(Tenant, tenant_id)
