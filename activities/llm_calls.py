"""The models a step or llm Task asks, in order, each at its provider (the tenant's named
ones, else the deployment's default), with the tenant's keys; and the usage row of the answer."""

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.budget_ledger import BudgetExhausted
from activities.budget_meter import Meter, MeteredLLM, paused
from activities.common import secret_of
from lodestone import metrics
from lodestone.llm import ChatRequest, Completion, LLMClient, LLMRequestRejected, TextSink
from lodestone.llm_fallback import Answered, ask
from lodestone.llm_providers import Route, route_for
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.tenant_slots import tenant_slot
from schema.tables import Tenant, UsageRecord, utcnow


def models_of(spec: dict[str, Any], settings: Settings) -> list[str]:
    """A step's or Task's models in the order they are tried: `models`, else `model`, else
    LLM_MODEL."""
    models = spec.get("models")
    if isinstance(models, list) and models:
        return [str(m) for m in models]
    model = spec.get("model")
    return [model if isinstance(model, str) else settings.llm_model]


async def ask_models(
    llm: LLMClient,
    settings: Settings,
    secrets: SecretsProvider,
    tenant: Tenant | None,
    tenant_id: str,
    models: list[str],
    request: ChatRequest,
    on_text: TextSink | None = None,
    meter: Meter | None = None,
    *,
    engine: AsyncEngine,
) -> Answered:
    """The answer, holding one of the tenant's LLM-call slots for the call (SlotsBusy when none
    is free; lodestone.tenant_slots). `meter`: each call reserves against the tenant's budgets,
    and one that does not fit ends the attempt with BudgetExhausted, unsent (docs/budgets.md)."""
    providers = tenant.llm_providers if tenant else {}
    routes = []
    for model in models:
        route = route_for(settings, providers, model)
        if route is None:
            raise LLMRequestRejected(f"model {model!r} is not configured for this tenant")
        routes.append(route)

    async def key_of(route: Route) -> str | None:
        if route.config is None:  # the default provider: the tenant's own key, else the deployment's
            return await secret_of(tenant, secrets, tenant_id, "llm_api_key", None)
        name = route.config.api_key_secret
        if name is None:
            return None
        key = await secret_of(tenant, secrets, tenant_id, name, None)
        if key is None:
            raise LLMRequestRejected(f"provider {route.provider!r} names secret {name!r}, which the tenant has not set")
        return key

    if meter is not None:
        llm = MeteredLLM(llm, meter)
    async with tenant_slot(engine, settings, tenant_id, "llm"):
        try:
            return await ask(llm, routes, request, key_of, on_text, settings.llm_output_retries, settings.llm_json_mode)
        except BudgetExhausted as e:
            raise paused(e) from e


async def record_usage(
    session: Any,
    tenant_id: str,
    job_id: str,
    step_id: str,
    completion: Completion,
    fallbacks: list[dict[str, str]] | None = None,
) -> None:
    """One usage row per (job, step): a step's, or a state machine Task's by its path. The
    first one stays (an attempt that ran again records nothing more, and counts nothing more
    in /metrics)."""
    inserted = await session.execute(
        insert(UsageRecord)
        .values(
            id=uuid.uuid4(),
            tenant_id=uuid.UUID(tenant_id),
            job_id=uuid.UUID(job_id),
            step_id=step_id,
            model=completion.model,
            provider=completion.provider,
            fallbacks=fallbacks or [],
            tokens_in=completion.tokens_in,
            tokens_out=completion.tokens_out,
            cost_usd=completion.cost_usd,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["job_id", "step_id"])
        .returning(UsageRecord.__table__.c.id)  # type: ignore[attr-defined]
    )
    if inserted.first() is not None:
        metrics.count_llm_usage(tenant_id, completion, fallbacks or [])
