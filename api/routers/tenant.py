"""The caller's own tenant: its secret references (never the values)."""

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Admin, StateDep
from api.problems import AUTHENTICATED, responses
from services import tenants

router = APIRouter(prefix="/v1/tenant", tags=["tenant"], responses=AUTHENTICATED)


class SecretRefs(BaseModel):
    refs: dict[str, str]


@router.get("/secrets", response_model=SecretRefs)
async def get_secret_refs(state: StateDep, principal: Admin) -> SecretRefs:
    return SecretRefs(refs=await tenants.secret_refs(state.engine, principal.tenant_id))


@router.put(
    "/secrets",
    response_model=SecretRefs,
    responses=responses(400, 404, 422, descriptions={422: "unknown name or bad reference"}),
)
async def put_secret_refs(body: SecretRefs, state: StateDep, principal: Admin) -> SecretRefs:
    """Replace the tenant's references: {name: "env:...|file:...|vault:path#field"}."""
    return SecretRefs(refs=await tenants.set_secret_refs(state.engine, principal.tenant_id, body.refs))
