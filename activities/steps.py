"""One LLM step per activity: build the prompt from the submission and earlier steps,
call the model, store the output, record usage. A completed step is never re-run."""

import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors, events
from activities.budget_meter import Meter
from activities.common import LoadedJob, busy, fail, heartbeating, llm_transient, load_job
from activities.llm_calls import ask_models, models_of, record_usage
from lodestone.busy import Busy
from lodestone.db import tenant_session
from lodestone.llm import ChatRequest, LLMClient, LLMError, LLMTransient
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.storage import ObjectStore, job_key
from lodestone.template_pool import TemplatePool
from lodestone.templating import TemplateLimitExceeded, TemplateRenderError, TemplateSecurityViolation
from schema.tables import JobStep, Tenant, UsageRecord, utcnow


@dataclass
class StepInput:
    tenant_id: str
    job_id: str
    step_id: str


@dataclass
class StepResult:
    step_id: str
    output_key: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    provider: str = "default"


@dataclass
class StepFailureInput:
    """The workflow's word on a step that is over without completing: `failed` with its last
    error, or `cancelled` (with why) when a sibling's failure cut it short."""

    tenant_id: str
    job_id: str
    step_id: str
    error: str
    status: str = "failed"


# What a step's and a job's error say of an attempt that failed on something other than the
# step's own errors (ApplicationError), after the exception's type. Temporal's history (the
# failure's cause) and the worker's log keep its text, which can name the server's files.
UNEXPLAINED = "the attempt failed on the worker; its log has the details"


class StepActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        store: ObjectStore,
        llm: LLMClient,
        settings: Settings,
        secrets: SecretsProvider,
        templates: TemplatePool,
    ) -> None:
        self.engine, self.store, self.llm, self.settings, self.secrets = engine, store, llm, settings, secrets
        self.templates = templates

    @activity.defn
    async def run_step(self, inp: StepInput) -> StepResult:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            loaded = await load_job(session, inp.job_id)
            tenant = await session.get(Tenant, loaded.job.tenant_id)
            rows = (await session.exec(select(JobStep).where(JobStep.job_id == loaded.job.id))).all()
            usage = (
                await session.exec(
                    select(UsageRecord).where(UsageRecord.job_id == loaded.job.id, UsageRecord.step_id == inp.step_id)
                )
            ).first()
        outputs = {r.step_id: r for r in rows}
        mine = outputs.get(inp.step_id)
        if mine is not None and mine.status == "completed" and usage is not None:
            # Before the key is resolved: a redriven job skips its completed steps even when
            # the tenant's secret backend is what broke.
            return StepResult(
                inp.step_id,
                mine.output_key or "",
                usage.model,
                usage.tokens_in,
                usage.tokens_out,
                usage.cost_usd,
                usage.provider,
            )
        try:
            return await self._attempt(inp, loaded, tenant, outputs)
        except ApplicationError as e:
            if not e.non_retryable and e.type not in errors.BUSY_TYPES:  # busy: not a failed attempt
                await self._retrying(inp, f"{e.type}: {e.message}", e)
            raise
        except Exception as e:  # not the step's own: its text may name server paths (an OSError's)
            await self._retrying(inp, f"{type(e).__name__}: {UNEXPLAINED}", None)
            # The same type (retry policies match on it), without the text: the workflow records
            # the last attempt's message as the step's and the job's error. The cause keeps it.
            raise ApplicationError(UNEXPLAINED, type=errors.unexpected(e)) from e

    @activity.defn
    async def record_step_failure(self, inp: StepFailureInput) -> None:
        """The workflow's word that the step is over: failed, however its attempts ended, or
        cancelled because a sibling failed (a step that completed or failed meanwhile keeps that)."""
        async with tenant_session(self.engine, inp.tenant_id) as session:
            await self._step_ended(session, inp)
            stmt = insert(JobStep).values(
                id=uuid.uuid4(),
                tenant_id=uuid.UUID(inp.tenant_id),
                job_id=uuid.UUID(inp.job_id),
                step_id=inp.step_id,
                status=inp.status,
                error=inp.error,
                attempts=0,
                started_at=utcnow(),
                finished_at=utcnow(),
            )
            ended = JobStep.__table__.c.status.in_(("completed", "failed"))  # type: ignore[attr-defined]
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["job_id", "step_id"],
                    set_={"status": inp.status, "error": inp.error, "finished_at": stmt.excluded.finished_at},
                    where=~ended if inp.status == "cancelled" else None,
                )
            )

    async def _attempt(
        self, inp: StepInput, loaded: LoadedJob, tenant: Tenant | None, outputs: dict[str, JobStep]
    ) -> StepResult:
        step = next(s for s in loaded.definition["steps"] if s["id"] == inp.step_id)
        models = models_of(step, self.settings)
        attempt = activity.info().attempt
        started = events.step_data(inp.step_id, "started", attempt)
        if attempt == 1:
            await self._mark(inp, "running", None, event=started)
        else:  # the last error stays shown until this attempt ends
            lost = f"attempt {attempt - 1} did not finish (timed out, or its worker was lost)"
            await self._mark(inp, "retrying", None, keep=lost, event=started)
        tokens = events.TokenStream(
            self.engine, inp.tenant_id, inp.job_id, inp.step_id, self.settings.job_events_token_flush_seconds
        )
        try:
            context = await self._context(loaded, step, outputs)
            async with heartbeating(), tokens:
                prompt = await self.templates.render(step["instructions"], context, html=False, tenant=inp.tenant_id)
                request = ChatRequest([{"role": "user", "content": prompt}], json_schema=step.get("output_schema"))
                meter = Meter(self.engine, self.settings, inp.tenant_id, inp.job_id, inp.step_id, self.secrets)
                answered = await ask_models(
                    self.llm,
                    self.settings,
                    self.secrets,
                    tenant,
                    inp.tenant_id,
                    models,
                    request,
                    tokens,
                    meter,
                    engine=self.engine,
                )
        except LLMTransient as e:
            raise llm_transient(e) from e
        except Busy as e:
            raise busy(e) from e
        except (LLMError, TemplateRenderError, TemplateSecurityViolation, TemplateLimitExceeded) as e:
            await self._mark(inp, "failed", str(e), event=events.step_data(inp.step_id, "failed", attempt, str(e)))
            raise fail(errors.code_of(e), str(e)) from e
        completion = answered.completion
        if "output_schema" in step:  # the validated object, as later steps' templates read it
            body, name, kind = json.dumps(answered.value).encode(), f"{inp.step_id}.json", "application/json"
        else:
            body, name, kind = completion.text.encode(), f"{inp.step_id}.txt", "text/plain; charset=utf-8"
        stored = await self.store.put_bytes(job_key(inp.tenant_id, inp.job_id, f"steps/{name}"), body, kind)
        async with tenant_session(self.engine, inp.tenant_id) as session:
            await record_usage(session, inp.tenant_id, inp.job_id, inp.step_id, completion, answered.fallbacks)
            await self._upsert(session, inp, "completed", None, stored.key)
            await events.append(
                session, inp.tenant_id, inp.job_id, events.STEP, events.step_data(inp.step_id, "completed", attempt)
            )
        return StepResult(
            inp.step_id,
            stored.key,
            completion.model,
            completion.tokens_in,
            completion.tokens_out,
            completion.cost_usd,
            completion.provider,
        )

    async def _context(self, loaded: LoadedJob, step: dict[str, Any], outputs: dict[str, JobStep]) -> dict[str, Any]:
        ctx: dict[str, Any] = {"input": loaded.input}
        if loaded.job.input_key:
            ctx["input_file"] = await self._excerpt(loaded.job.input_key)
        for name, ref in step.get("inputs", {}).items():
            kind, _, field = ref.partition(".")
            if kind == "input":
                if field not in loaded.input:
                    raise fail(errors.STEP_INPUT_MISSING, f"step {step['id']!r} needs input field {field!r}")
                ctx[name] = loaded.input[field]
            else:
                row = outputs.get(field)
                if row is None or row.output_key is None:
                    raise ApplicationError(f"step {field!r} has no output yet", type=errors.STEP_NOT_READY)
                text = (await self.store.get_bytes(row.output_key)).decode()
                ctx[name] = json.loads(text) if row.output_key.endswith(".json") else text
        return ctx

    async def _excerpt(self, key: str) -> dict[str, Any]:
        """The first INPUT_EXCERPT_BYTES of the input object: a prompt never loads it whole."""
        limit = self.settings.input_excerpt_bytes
        size = await self.store.size(key)
        head = b"".join([c async for c in self.store.iter_range(key, 0, min(size, limit) - 1)]) if size else b""
        return {"excerpt": head.decode(errors="replace"), "size": size, "truncated": size > limit}

    async def _mark(
        self,
        inp: StepInput,
        status: str,
        error: str | None,
        keep: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> None:
        async with tenant_session(self.engine, inp.tenant_id) as session:
            await self._upsert(session, inp, status, error, None, keep)
            if event is not None:
                await events.append(session, inp.tenant_id, inp.job_id, events.STEP, event)

    async def _retrying(self, inp: StepInput, error: str, e: ApplicationError | None) -> None:
        """This attempt failed and Temporal may try again: say so, with the error (and, in the
        step's event, when the next attempt starts). Best effort: the next attempt says
        `retrying` too, and the workflow says `failed` if none is left."""
        policy = activity.info().retry_policy
        final = e is not None and policy is not None and e.type in (policy.non_retryable_error_types or ())
        at = None if final else events.next_attempt_at(e.next_retry_delay if e else None)
        event = None if at is None else events.step_data(inp.step_id, "retrying", activity.info().attempt, error, at)
        with contextlib.suppress(Exception):
            await self._mark(inp, "retrying", error, event=event)

    @staticmethod
    async def _step_ended(session: Any, inp: StepFailureInput) -> None:
        """The step's `failed` (or `cancelled`) event, unless its row says so already (its last
        attempt's own failure, or a retry of this activity)."""
        query = select(JobStep.status, JobStep.attempts).where(
            JobStep.job_id == uuid.UUID(inp.job_id), JobStep.step_id == inp.step_id
        )
        row = (await session.exec(query)).first()
        if row is not None and row[0] in ("failed", "cancelled", "completed"):
            return
        data = events.step_data(inp.step_id, inp.status, row[1] if row else 0, inp.error)
        await events.append(session, inp.tenant_id, inp.job_id, events.STEP, data)

    async def _upsert(
        self,
        session: Any,
        inp: StepInput,
        status: str,
        error: str | None,
        output_key: str | None,
        keep: str | None = None,
    ) -> None:
        """`keep`: leave the stored error as it is, or set this one where there is none."""
        finished = utcnow() if status in ("completed", "failed") else None
        stmt = insert(JobStep).values(
            id=uuid.uuid4(),
            tenant_id=uuid.UUID(inp.tenant_id),
            job_id=uuid.UUID(inp.job_id),
            step_id=inp.step_id,
            status=status,
            output_key=output_key,
            error=keep or error,
            attempts=activity.info().attempt,
            started_at=utcnow(),
            finished_at=finished,
        )
        # An attempt ending after the workflow cancelled its step (a sibling failed) leaves the
        # step cancelled: it will not be retried.
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["job_id", "step_id"],
                set_={
                    "status": status,
                    "attempts": activity.info().attempt,
                    "error": func.coalesce(JobStep.__table__.c.error, keep) if keep else error,  # type: ignore[attr-defined]  # sqlmodel types __table__ without .c
                    "finished_at": finished,
                    "output_key": stmt.excluded.output_key,
                },
                where=JobStep.__table__.c.status != "cancelled" if status == "retrying" else None,  # type: ignore[attr-defined]  # as above
            )
        )
