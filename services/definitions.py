"""Storing workflow definitions: validated, then versioned per key (the newest supersedes
the one before)."""

import asyncio
import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from lodestone.settings import Settings
from schema.definition_kinds import STATE_MACHINE, FieldProblem, kind_of
from schema.definitions import DefinitionInvalid, validate_definition
from schema.json_schemas import unresolvable_ref
from schema.machine_run_checks import machine_run_problems
from schema.run_checks import RunTimeFacts, pipeline_problems
from schema.tables import Tenant, WorkflowDefinition, utcnow
from services.errors import Invalid, NotFound


async def create(
    session: AsyncSession, *, tenant_id: uuid.UUID, definition: dict[str, Any], settings: Settings
) -> WorkflowDefinition:
    """The definition's next version under its key, in the caller's tenant session, once it is
    well formed and nothing in it certainly fails when it runs with these settings."""
    tenant = await session.get(Tenant, tenant_id)
    providers = dict(tenant.llm_providers) if tenant is not None else {}
    # Parsing and analysing a large template takes a second or more: off the event loop.
    await asyncio.to_thread(check, definition, settings, providers)
    key = definition["key"]
    # One writer per key at a time, so versions never collide.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{tenant_id}:{key}"))))
    latest = (
        await session.exec(select(func.max(WorkflowDefinition.version)).where(WorkflowDefinition.key == key))
    ).one()
    await session.execute(
        update(WorkflowDefinition)
        .where(
            col(WorkflowDefinition.key) == key,
            col(WorkflowDefinition.superseded_at).is_(None),
        )
        .values(superseded_at=utcnow())
    )
    row = WorkflowDefinition(tenant_id=tenant_id, key=key, version=(latest or 0) + 1, definition=definition)
    session.add(row)
    await session.flush()
    return row


def check(definition: dict[str, Any], settings: Settings, providers: dict[str, Any] | None = None) -> None:
    """Raises Invalid for a definition that may not be stored. A state machine is checked whole
    and its answer lists every problem; a pipeline's structure stops at its first problem, and
    once well formed, its run-time problems (schema/run_checks.py) are listed all at once."""
    try:
        validate_definition(definition, max_webhook_timeout=settings.webhook_timeout_max_seconds)
    except DefinitionInvalid as e:
        every = [asdict(p) for p in e.problems] if kind_of(definition) == STATE_MACHINE else None
        raise Invalid(e.code, e.message, pointer=e.path, errors=every) from e
    if (ref := unresolvable_ref(definition.get("input_schema"))) is not None:
        raise Invalid(
            "schema_violation", f"input_schema: {ref!r} does not resolve within the schema", pointer="/input_schema"
        )
    facts = RunTimeFacts.of(settings, providers)  # the tenant's own LLM providers count
    found = (machine_run_problems if kind_of(definition) == STATE_MACHINE else pipeline_problems)(definition, facts)
    if found:
        raise _every(found)


def _every(problems: list[FieldProblem]) -> Invalid:
    first = problems[0]
    return Invalid(first.code, first.message, pointer=first.pointer, errors=[asdict(p) for p in problems])


async def current(session: AsyncSession) -> list[WorkflowDefinition]:
    """The tenant's current definitions (each key's newest version), by key."""
    query = (
        select(WorkflowDefinition)
        .where(col(WorkflowDefinition.superseded_at).is_(None))
        .order_by(WorkflowDefinition.key)
    )
    return list((await session.exec(query)).all())


async def one(session: AsyncSession, key: str, version: int | None = None) -> WorkflowDefinition:
    """The definition under `key`: its current version, or the one asked for."""
    query = select(WorkflowDefinition).where(WorkflowDefinition.key == key)
    if version is None:
        query = query.where(col(WorkflowDefinition.superseded_at).is_(None))
    else:
        query = query.where(WorkflowDefinition.version == version)
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound("workflow", key)
    return row
