"""An LLMClient that meters each call against the tenant's budgets (activities/budget_ledger.py):
reserve the call's worst case, send it, settle its usage (or release it when it failed).
Every call the fallback loop makes (each model tried, each try at an output schema) goes
through it, numbered in order, so a retried attempt makes the same keys and replaces its own
entries."""

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from activities import budget_ledger, budget_notices, errors
from lodestone.budget import worst_case
from lodestone.llm import (
    DEFAULT_PROVIDER,
    LOCAL_MODEL,
    OFFLINE_MODEL,
    ChatRequest,
    Completion,
    Endpoint,
    LLMClient,
    TextSink,
)
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings


@dataclass
class Meter:
    """Who is calling: a job's step (`scope` = its id) or a state machine Task (its path and attempt)."""

    engine: AsyncEngine
    settings: Settings
    tenant_id: str
    job_id: str
    scope: str
    secrets: SecretsProvider | None = None
    _calls: int = field(default=0, init=False)

    def next_key(self, endpoint: Endpoint, model: str) -> str:
        self._calls += 1
        return f"{self.scope}#{self._calls}:{endpoint.provider}/{model}"


class MeteredLLM(LLMClient):
    def __init__(self, inner: LLMClient, meter: Meter) -> None:
        self.inner, self.meter = inner, meter

    async def complete(
        self, model: str, prompt: str, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        return await self.chat_at(Endpoint(api_key=api_key), model, ChatRequest([{"role": "user", "content": prompt}]))

    async def chat_at(
        self, endpoint: Endpoint, model: str, request: ChatRequest, on_text: TextSink | None = None
    ) -> Completion:
        m, settings = self.meter, self.meter.settings
        key = m.next_key(endpoint, model)
        # The local model's server answers at most LOCAL_LLM_MAX_TOKENS when the request names none.
        local = model == LOCAL_MODEL and endpoint.provider == DEFAULT_PROVIDER
        most = settings.local_llm_max_tokens if local else settings.budget_max_output_tokens
        charge = worst_case(model, request, endpoint.prices, settings.budget_prompt_bytes_per_token, most)
        budgeted = await budget_ledger.reserve(
            m.engine, settings, m.tenant_id, m.job_id, key, endpoint.provider, model, charge
        )
        if budgeted and request.max_tokens is None and model != OFFLINE_MODEL and not local:
            request = replace(request, max_tokens=settings.budget_max_output_tokens)  # what was reserved
        try:
            done = await self.inner.chat_at(endpoint, model, request, on_text)
        except BaseException:
            with contextlib.suppress(Exception):  # else it expires (BUDGET_RESERVATION_SECONDS)
                await asyncio.shield(budget_ledger.release(m.engine, m.tenant_id, m.job_id, key))
            raise
        used = done.tokens_in + done.tokens_out
        await budget_ledger.settle(m.engine, m.tenant_id, m.job_id, key, used, done.cost_usd)
        if budgeted:
            await budget_notices.after_settle(m.engine, settings, m.secrets, m.tenant_id, m.job_id)
        return done

    async def close(self) -> None:
        await self.inner.close()


def paused(e: budget_ledger.BudgetExhausted) -> ApplicationError:
    """The attempt's end when a call did not fit: non-retryable, so the workflow pauses the job
    at once (workflows/budget_pause.py) and runs the activity again when the budget allows."""
    return ApplicationError(
        str(e),
        {"wait_seconds": e.wait_seconds},
        type=errors.BUDGET_EXHAUSTED,
        non_retryable=True,
        next_retry_delay=timedelta(seconds=e.wait_seconds),
    )
