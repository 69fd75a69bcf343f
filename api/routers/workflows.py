"""Workflow definitions: versioned JSON, validated before it is stored; a pipeline or a state
machine (`kind`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, WithJsonSchema

from api.bodies import JsonObject
from api.definition_schema import openapi_definition_schema
from api.deps import Editor, SessionDep, StateDep, Viewer
from api.problems import AUTHENTICATED, responses
from schema.definition_kinds import kind_of
from schema.tables import WorkflowDefinition
from services import definitions

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], responses=AUTHENTICATED)
MAX_VERSION = 2**31 - 1  # a Postgres integer
# A definition, as the OpenAPI document shows it: the definition format's JSON Schema.
Definition = Annotated[JsonObject, WithJsonSchema(openapi_definition_schema()), Body()]


class WorkflowPublic(BaseModel):
    id: str
    key: str
    kind: str  # pipeline | state_machine
    version: int
    created_at: str
    definition: dict[str, Any]


def public(row: WorkflowDefinition) -> WorkflowPublic:
    return WorkflowPublic(
        id=str(row.id),
        key=row.key,
        kind=kind_of(row.definition),
        version=row.version,
        created_at=row.created_at.isoformat(),
        definition=row.definition,
    )


INVALID = (
    "the definition is not valid, or would certainly fail when it runs (an undefined template variable, a model "
    "not configured, a delivery URL the outbound guard refuses): `errors` lists every problem found, each with "
    "its `pointer`, `message` and `code`; `code`, `detail` and `pointer` name the first"
)


@router.post(
    "", status_code=201, response_model=WorkflowPublic, responses=responses(400, 422, descriptions={422: INVALID})
)
async def create_workflow(
    principal: Editor, session: SessionDep, state: StateDep, definition: Definition
) -> WorkflowPublic:
    row = await definitions.create(
        session,
        tenant_id=principal.tenant_id,
        definition=definition,
        settings=state.settings,
    )
    return public(row)


@router.get("", response_model=list[WorkflowPublic])
async def list_workflows(_: Viewer, session: SessionDep) -> list[WorkflowPublic]:
    return [public(r) for r in await definitions.current(session)]


@router.get("/{key}", response_model=WorkflowPublic, responses=responses(404, 422))
async def get_workflow(
    key: str, _: Viewer, session: SessionDep, version: int | None = Query(default=None, ge=1, le=MAX_VERSION)
) -> WorkflowPublic:
    return public(await definitions.one(session, key, version))
