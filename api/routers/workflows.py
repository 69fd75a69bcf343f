"""Workflow definitions: versioned JSON, validated before it is stored."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel
from sqlalchemy import func, update
from sqlmodel import col, select

from api.deps import Editor, SessionDep, Viewer
from api.problems import Problem, not_found
from schema.definitions import DefinitionInvalid, validate_definition
from schema.tables import WorkflowDefinition, utcnow

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


class WorkflowPublic(BaseModel):
    id: str
    key: str
    version: int
    created_at: str
    definition: dict[str, Any]


def public(row: WorkflowDefinition) -> WorkflowPublic:
    return WorkflowPublic(id=str(row.id), key=row.key, version=row.version,
                          created_at=row.created_at.isoformat(), definition=row.definition)


@router.post("", status_code=201, response_model=WorkflowPublic)
async def create_workflow(principal: Editor, session: SessionDep,
                          definition: Annotated[dict[str, Any], Body()]) -> WorkflowPublic:
    try:
        validate_definition(definition)
    except DefinitionInvalid as e:
        raise Problem(422, e.code, e.message, pointer=e.path) from e
    key = definition["key"]
    # One writer per key at a time, so versions never collide.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{principal.tenant_id}:{key}"))))
    latest = (await session.exec(select(func.max(WorkflowDefinition.version)).where(
        WorkflowDefinition.key == key))).one()
    await session.execute(update(WorkflowDefinition).where(
        col(WorkflowDefinition.key) == key, col(WorkflowDefinition.superseded_at).is_(None),
    ).values(superseded_at=utcnow()))
    row = WorkflowDefinition(tenant_id=principal.tenant_id, key=key, version=(latest or 0) + 1,
                             definition=definition)
    session.add(row)
    await session.flush()
    return public(row)


@router.get("", response_model=list[WorkflowPublic])
async def list_workflows(_: Viewer, session: SessionDep) -> list[WorkflowPublic]:
    rows = (await session.exec(select(WorkflowDefinition).where(
        col(WorkflowDefinition.superseded_at).is_(None)).order_by(WorkflowDefinition.key))).all()
    return [public(r) for r in rows]


@router.get("/{key}", response_model=WorkflowPublic)
async def get_workflow(key: str, _: Viewer, session: SessionDep,
                       version: int | None = Query(default=None, ge=1)) -> WorkflowPublic:
    query = select(WorkflowDefinition).where(WorkflowDefinition.key == key)
    if version is None:
        query = query.where(col(WorkflowDefinition.superseded_at).is_(None))
    else:
        query = query.where(WorkflowDefinition.version == version)
    row = (await session.exec(query)).first()
    if row is None:
        raise not_found("workflow", key)
    return public(row)
