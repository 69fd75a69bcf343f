"""The caller's own tenant: its secret references (never the values)."""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import Admin, StateDep
from api.problems import AUTHENTICATED, responses
from lodestone.tenant_secrets import MAX_SECRET_REFS
from services import tenants

router = APIRouter(prefix="/v1/tenant", tags=["tenant"], responses=AUTHENTICATED)


class SecretRefs(BaseModel):
    # Lodestone's own names and the tenant's own (for state machines' http headers), bounded.
    refs: dict[str, str] = Field(max_length=MAX_SECRET_REFS)


@router.get("/secrets", response_model=SecretRefs)
async def get_secret_refs(state: StateDep, principal: Admin) -> SecretRefs:
    return SecretRefs(refs=await tenants.secret_refs(state.engine, principal.tenant_id))


@router.put(
    "/secrets",
    response_model=SecretRefs,
    responses=responses(400, 404, 422, descriptions={422: "unknown name or bad reference"}),
)
async def put_secret_refs(body: SecretRefs, state: StateDep, principal: Admin) -> SecretRefs:
    """Replace the tenant's references: {name: "env:...|file:...|vault:path#field"}. Names are
    webhook_secret, whatsapp_token, llm_api_key, or the tenant's own (a-z, 0-9, _; at most 64
    characters), which http Tasks send as header values."""
    return SecretRefs(refs=await tenants.set_secret_refs(state.engine, principal.tenant_id, body.refs))
