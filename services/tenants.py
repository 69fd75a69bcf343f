"""Tenants: creating them (the CLI and the demo seed) and their secret references (the API)."""

import base64
import secrets
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from lodestone.db import tenant_session
from lodestone.llm_providers import ProviderConfig, check_providers
from lodestone.secrets import InvalidSecretRef
from lodestone.settings import Settings
from lodestone.tenant_limits import LimitOverrides, TenantLimits, effective
from lodestone.tenant_secrets import TENANT_SECRET_NAMES, check_tenant_ref
from schema.tables import Tenant
from services.errors import Invalid, NotFound


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


async def secret_refs(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, str]:
    async with tenant_session(engine, tenant_id) as s:
        tenant = await s.get(Tenant, tenant_id)
    return dict(tenant.secret_refs) if tenant else {}


async def set_secret_refs(engine: AsyncEngine, tenant_id: uuid.UUID, refs: dict[str, str]) -> dict[str, str]:
    """Replace the tenant's references ({name: "env:...|file:...|vault:path#field"}), each
    checked to be a known name pointing into the tenant's own space."""
    for name, ref in refs.items():
        if name not in TENANT_SECRET_NAMES:
            raise Invalid("unknown_secret", f"{name!r} is not one of {', '.join(TENANT_SECRET_NAMES)}")
        try:
            check_tenant_ref(tenant_id, ref)
        except InvalidSecretRef as e:
            raise Invalid("invalid_secret_ref", f"{name}: {e}") from e
    async with tenant_session(engine, tenant_id) as s:
        tenant = await s.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("tenant")
        tenant.secret_refs = dict(refs)
        s.add(tenant)
    return dict(refs)


async def llm_providers_stored(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, Any]:
    """The tenant's named LLM providers as stored (the tenant row's llm_providers)."""
    async with tenant_session(engine, tenant_id) as s:
        tenant = await s.get(Tenant, tenant_id)
    return dict(tenant.llm_providers) if tenant else {}


async def llm_providers(engine: AsyncEngine, tenant_id: uuid.UUID) -> dict[str, ProviderConfig]:
    return check_providers(await llm_providers_stored(engine, tenant_id))


async def set_llm_providers(
    engine: AsyncEngine, tenant_id: uuid.UUID, providers: dict[str, ProviderConfig]
) -> dict[str, ProviderConfig]:
    """Replace the tenant's named LLM providers, each checked (lodestone.llm_providers)."""
    try:
        checked = check_providers(providers)
    except ValueError as e:
        raise Invalid("invalid_provider", str(e)) from e
    async with tenant_session(engine, tenant_id) as s:
        tenant = await s.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("tenant")
        tenant.llm_providers = {name: c.model_dump(mode="json") for name, c in checked.items()}
        s.add(tenant)
    return checked


async def limit_overrides(engine: AsyncEngine, tenant_id: uuid.UUID | str) -> LimitOverrides:
    """The tenant's own limits as stored (tenants.limits); absent ones are None."""
    async with tenant_session(engine, tenant_id) as s:
        tenant = await s.get(Tenant, uuid.UUID(str(tenant_id)))
    return LimitOverrides.model_validate(tenant.limits if tenant else {})


async def tenant_limits(engine: AsyncEngine, settings: Settings, tenant_id: uuid.UUID | str) -> TenantLimits:
    """The limits in force for the tenant: its overrides, else the deployment's settings."""
    return effective(settings, await limit_overrides(engine, tenant_id))


async def set_limit_overrides(engine: AsyncEngine, tenant_id: uuid.UUID, overrides: LimitOverrides) -> LimitOverrides:
    """Replace the tenant's overrides (a null or absent one takes the deployment's setting)."""
    async with tenant_session(engine, tenant_id) as s:
        tenant = await s.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("tenant")
        tenant.limits = overrides.model_dump(exclude_none=True)
        s.add(tenant)
    return overrides
