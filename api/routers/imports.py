"""Importing Step Functions state machines (services/imports.py): an exported ASL document or
a CloudFormation / SAM template, bound, reported on, and stored unless it is a dry run."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel, Field, model_validator

from api.bodies import JsonObject
from api.deps import Editor, SessionDep, StateDep
from api.problems import AUTHENTICATED, Problem, responses
from schema.run_checks import RunTimeFacts
from services import imports, tenants

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], responses=AUTHENTICATED)
MAX_TEXT = 1_000_000


class ImportRequest(BaseModel):
    definition: JsonObject | None = None  # an exported ASL document
    template: JsonObject | str | None = Field(default=None)  # a template: JSON, or its JSON / YAML text
    files: dict[str, Annotated[str, Field(max_length=MAX_TEXT)]] = Field(default_factory=dict, max_length=50)
    bindings: list[JsonObject] = Field(default_factory=list, max_length=200)
    mapping: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=500)
    key: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    machine: str | None = Field(default=None, max_length=255)
    dry_run: bool = False
    allow_unsupported: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> "ImportRequest":
        if (self.definition is None) == (self.template is None):
            raise ValueError("give exactly one of definition (an ASL document) or template")
        if isinstance(self.template, str) and len(self.template) > MAX_TEXT:
            raise ValueError(f"template: at most {MAX_TEXT} characters")
        return self


class StoredDefinition(BaseModel):
    id: str
    key: str
    version: int


class ImportAnswer(BaseModel):
    dry_run: bool
    machines: list[dict[str, Any]]  # one import report per state machine
    stored: list[StoredDefinition]


REFUSED = (
    "nothing was stored: `errors` lists every problem of every machine (the definition check's "
    "problems, as POST /v1/workflows answers them, and `unsupported_feature`), `machines` the reports"
)


@router.post(
    "/import",
    status_code=201,
    response_model=ImportAnswer,
    responses=responses(400, 422, descriptions={422: REFUSED}),
    summary="Import Step Functions state machines",
)
async def import_state_machines(
    principal: Editor,
    session: SessionDep,
    state: StateDep,
    request: Annotated[ImportRequest, Body()],
    response: Response,
) -> ImportAnswer:
    """201 with the reports and the stored definitions; 200 for a dry run (nothing stored)."""
    source = request.definition if request.definition is not None else request.template
    text = source if isinstance(source, str) else json.dumps(source)

    def read(uri: str) -> str:
        if uri not in request.files:
            raise OSError("not among the request's files")
        return request.files[uri]

    planned = imports.plan(
        text,
        "definition" if request.definition is not None else "template",
        bindings=request.bindings,
        mapping=request.mapping,
        key=request.key,
        machine=request.machine,
        read=read,
        allow_unsupported=request.allow_unsupported,
        facts=RunTimeFacts.of(state.settings, await tenants.llm_providers_stored(state.engine, principal.tenant_id)),
    )
    reports = [m.report() for m in planned]
    if request.dry_run:
        response.status_code = 200
        return ImportAnswer(dry_run=True, machines=reports, stored=[])
    if (refused := imports.refusal(planned)) is not None:
        extra: dict[str, Any] = {"errors": refused.errors, "machines": reports}
        if refused.pointer is not None:
            extra["pointer"] = refused.pointer
        raise Problem(422, refused.code, refused.detail, **extra)
    await imports.store(session, principal.tenant_id, planned, state.settings)
    stored = [StoredDefinition(id=str(m.stored.id), key=m.key, version=m.stored.version) for m in planned if m.stored]
    return ImportAnswer(dry_run=False, machines=[m.report() for m in planned], stored=stored)
