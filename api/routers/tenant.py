"""The caller's own tenant: its secret references (never the values), its named LLM providers
and its limits."""

from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import Admin, StateDep
from api.problems import AUTHENTICATED, responses
from lodestone.llm_providers import MAX_PROVIDERS, ProviderConfig
from lodestone.tenant_limits import LimitOverrides, effective
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


class Providers(BaseModel):
    providers: dict[str, ProviderConfig] = Field(max_length=MAX_PROVIDERS)


@router.get("/providers", response_model=Providers)
async def get_providers(state: StateDep, principal: Admin) -> Providers:
    return Providers(providers=await tenants.llm_providers(state.engine, principal.tenant_id))


@router.put(
    "/providers",
    response_model=Providers,
    responses=responses(400, 404, 422, descriptions={422: "a bad provider name, URL, secret name, model or price"}),
)
async def put_providers(body: Providers, state: StateDep, principal: Admin) -> Providers:
    """Replace the tenant's named LLM providers: {name: {base_url, api_key_secret, models,
    prices, json_mode}}. A step's or llm Task's model goes to the first provider (by name)
    that lists it; other models go to the deployment's default provider."""
    return Providers(providers=await tenants.set_llm_providers(state.engine, principal.tenant_id, body.providers))


class Limits(BaseModel):
    overrides: LimitOverrides  # the tenant's own; null or absent: the deployment's setting
    effective: dict[str, int]  # the limits in force


def _limits(state: StateDep, overrides: LimitOverrides) -> Limits:
    return Limits(overrides=overrides, effective=asdict(effective(state.settings, overrides)))


@router.get("/limits", response_model=Limits)
async def get_limits(state: StateDep, principal: Admin) -> Limits:
    return _limits(state, await tenants.limit_overrides(state.engine, principal.tenant_id))


@router.put(
    "/limits",
    response_model=Limits,
    responses=responses(400, 404, 422, descriptions={422: "an unknown limit, or one out of range"}),
)
async def put_limits(body: LimitOverrides, state: StateDep, principal: Admin) -> Limits:
    """Replace the tenant's limits: {max_running_jobs, max_llm_calls, max_renders,
    submissions_per_minute, submissions_burst}, each optional; one left out or null takes the
    deployment's setting (TENANT_MAX_RUNNING_JOBS, TENANT_MAX_LLM_CALLS, TENANT_MAX_RENDERS,
    SUBMISSIONS_PER_MINUTE, SUBMISSIONS_BURST)."""
    return _limits(state, await tenants.set_limit_overrides(state.engine, principal.tenant_id, body))
