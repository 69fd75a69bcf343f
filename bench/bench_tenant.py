"""A tenant of a bench's own on the stack it started, and a token for it."""

from devstack.keys import mint_token
from lodestone.db import make_engine
from lodestone.settings import Settings
from schema.tables import Tenant
from services.tenants import create_tenant


async def bench_tenant(
    settings: Settings, name: str = "Bench", roles: tuple[str, ...] = ("admin",), ttl_seconds: int = 3600
) -> tuple[Tenant, str]:
    """A new tenant, and a token of `roles` for it, signed by the stack's dev issuer."""
    engine = make_engine(settings.app_database_url, 1)
    try:
        tenant = await create_tenant(engine, name)
    finally:
        await engine.dispose()
    token = mint_token(
        settings.data_path,
        issuer=settings.issuer,
        audience=settings.auth_audience,
        tenant_id=str(tenant.id),
        roles=list(roles),
        subject="bench",
        ttl_seconds=ttl_seconds,
    )
    return tenant, token
