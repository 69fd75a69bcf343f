"""Workflow definitions: versioned JSON, validated before it is stored."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import AfterValidator, BaseModel
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012
from sqlalchemy import func, update
from sqlmodel import col, select

from api.deps import Editor, SessionDep, StateDep, Viewer
from api.problems import AUTHENTICATED, Problem, not_found, responses
from schema.definitions import DefinitionInvalid, validate_definition
from schema.tables import WorkflowDefinition, utcnow

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], responses=AUTHENTICATED)
MAX_VERSION = 2**31 - 1  # a Postgres integer
MAX_JSON_DEPTH = 32


def _not_too_deep(value: dict[str, Any]) -> dict[str, Any]:
    level: list[Any] = [value]
    for _ in range(MAX_JSON_DEPTH):  # one level of containers per pass
        level = [child for c in level if isinstance(c, dict | list)
                 for child in (c.values() if isinstance(c, dict) else c)]
    if any(isinstance(c, dict | list) for c in level):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


# A JSON object from a caller. Schema validation and serialization recurse, and crash a few
# hundred levels down, so deeper nesting is refused (422) before either runs.
JsonObject = Annotated[dict[str, Any], AfterValidator(_not_too_deep)]
# What evaluating a caller's JSON Schema raises when a $ref loops ({"$ref": "#"}) or resolves nowhere.
UNEVALUABLE = (RecursionError, Unresolvable)
_DATA_KEYWORDS = {"const", "enum", "default", "examples"}  # their contents are data, not schema


def unresolvable_ref(schema: Any) -> str | None:
    """The first $ref or $dynamicRef a caller's JSON Schema cannot resolve by itself
    (nothing is ever fetched), so that it is refused when stored, not at every use."""
    if not isinstance(schema, dict):
        return None
    resolver = Registry().with_resource("", DRAFT202012.create_resource(schema)).resolver()
    nodes: list[Any] = [schema]
    while nodes:
        node = nodes.pop()
        if isinstance(node, dict):
            for ref in (node.get("$ref"), node.get("$dynamicRef")):
                if isinstance(ref, str):
                    try:
                        resolver.lookup(ref)
                    except Unresolvable:
                        return ref
            nodes.extend(v for k, v in node.items() if k not in _DATA_KEYWORDS)
        elif isinstance(node, list):
            nodes.extend(node)
    return None


class WorkflowPublic(BaseModel):
    id: str
    key: str
    version: int
    created_at: str
    definition: dict[str, Any]


def public(row: WorkflowDefinition) -> WorkflowPublic:
    return WorkflowPublic(id=str(row.id), key=row.key, version=row.version,
                          created_at=row.created_at.isoformat(), definition=row.definition)


@router.post("", status_code=201, response_model=WorkflowPublic, responses=responses(400, 422))
async def create_workflow(principal: Editor, session: SessionDep, state: StateDep,
                          definition: Annotated[JsonObject, Body()]) -> WorkflowPublic:
    try:
        validate_definition(definition, max_webhook_timeout=state.settings.webhook_timeout_max_seconds)
    except DefinitionInvalid as e:
        raise Problem(422, e.code, e.message, pointer=e.path) from e
    if (ref := unresolvable_ref(definition.get("input_schema"))) is not None:
        raise Problem(422, "schema_violation", f"input_schema: {ref!r} does not resolve within the schema",
                      pointer="/input_schema")
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


@router.get("/{key}", response_model=WorkflowPublic, responses=responses(404, 422))
async def get_workflow(key: str, _: Viewer, session: SessionDep,
                       version: int | None = Query(default=None, ge=1, le=MAX_VERSION)) -> WorkflowPublic:
    query = select(WorkflowDefinition).where(WorkflowDefinition.key == key)
    if version is None:
        query = query.where(col(WorkflowDefinition.superseded_at).is_(None))
    else:
        query = query.where(WorkflowDefinition.version == version)
    row = (await session.exec(query)).first()
    if row is None:
        raise not_found("workflow", key)
    return public(row)
