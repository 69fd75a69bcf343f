"""The caller's own tenant: its secret references (never the values)."""

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Admin, StateDep
from api.problems import AUTHENTICATED, Problem, responses
from lodestone.db import tenant_session
from lodestone.secrets import InvalidSecretRef
from lodestone.tenant_secrets import TENANT_SECRET_NAMES, check_tenant_ref
from schema.tables import Tenant

router = APIRouter(prefix="/v1/tenant", tags=["tenant"], responses=AUTHENTICATED)


class SecretRefs(BaseModel):
    refs: dict[str, str]


@router.get("/secrets", response_model=SecretRefs)
async def get_secret_refs(state: StateDep, principal: Admin) -> SecretRefs:
    async with tenant_session(state.engine, principal.tenant_id) as s:
        tenant = await s.get(Tenant, principal.tenant_id)
    return SecretRefs(refs=dict(tenant.secret_refs) if tenant else {})


@router.put("/secrets", response_model=SecretRefs, responses=responses(
    400, 404, 422, descriptions={422: "unknown name or bad reference"}))
async def put_secret_refs(body: SecretRefs, state: StateDep, principal: Admin) -> SecretRefs:
    """Replace the tenant's references: {name: "env:...|file:...|vault:path#field"}."""
    for name, ref in body.refs.items():
        if name not in TENANT_SECRET_NAMES:
            raise Problem(422, "unknown_secret", f"{name!r} is not one of {', '.join(TENANT_SECRET_NAMES)}")
        try:
            check_tenant_ref(principal.tenant_id, ref)
        except InvalidSecretRef as e:
            raise Problem(422, "invalid_secret_ref", f"{name}: {e}") from e
    async with tenant_session(state.engine, principal.tenant_id) as s:
        tenant = await s.get(Tenant, principal.tenant_id)
        if tenant is None:
            raise Problem(404, "not_found", "tenant not found")
        tenant.secret_refs = dict(body.refs)
        s.add(tenant)
    return SecretRefs(refs=dict(body.refs))
