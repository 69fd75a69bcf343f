"""Public forms: a tenant publishes a slug bound to a workflow; anyone may submit to it,
unauthenticated, rate-limited per tenant, validated against the form's field schema."""

from typing import Annotated

import jsonschema
from fastapi import APIRouter, Body, Header
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.bodies import JsonObject, SubmissionCreate
from api.deps import Editor, SessionDep, StateDep, Viewer
from api.limits import admit_submission
from api.problems import AUTHENTICATED, Problem, not_found, responses
from lodestone.db import tenant_session
from schema.json_schemas import UNEVALUABLE, unresolvable_ref
from schema.tables import Form, FormRoute
from services import submissions

router = APIRouter(tags=["forms"])


class FormCreate(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")
    workflow_key: str = Field(min_length=1, max_length=63)
    field_schema: JsonObject = Field(default_factory=lambda: {"type": "object"})


class FormPublic(FormCreate):
    id: str
    public_url: str


class PublicAccepted(BaseModel):
    job_id: str
    status: str


def public(form: Form, api_url: str) -> FormPublic:
    return FormPublic(id=str(form.id), slug=form.slug, workflow_key=form.workflow_key,
                      field_schema=form.field_schema,
                      public_url=f"{api_url}/v1/public/forms/{form.slug}/submissions")


@router.post("/v1/forms", status_code=201, response_model=FormPublic, responses={**AUTHENTICATED, **responses(
    400, 409, 422, descriptions={409: "the slug is taken", 422: "bad field schema"})})
async def create_form(body: FormCreate, state: StateDep, principal: Editor) -> FormPublic:
    try:
        jsonschema.Draft202012Validator.check_schema(body.field_schema)
    except jsonschema.SchemaError as e:
        raise Problem(422, "schema_violation", f"field_schema: {e.message}") from e
    if (ref := unresolvable_ref(body.field_schema)) is not None:
        raise Problem(422, "schema_violation", f"field_schema: {ref!r} does not resolve within the schema")
    form = Form(tenant_id=principal.tenant_id, **body.model_dump())
    try:
        async with tenant_session(state.engine, principal.tenant_id) as s:
            s.add(FormRoute(slug=body.slug, tenant_id=principal.tenant_id))
            await s.flush()
            s.add(form)
    except IntegrityError as e:
        raise Problem(409, "slug_taken", f"the form slug {body.slug!r} is taken") from e
    return public(form, state.settings.api_url)


@router.get("/v1/forms", response_model=list[FormPublic], responses=AUTHENTICATED)
async def list_forms(_: Viewer, session: SessionDep, state: StateDep) -> list[FormPublic]:
    return [public(f, state.settings.api_url) for f in (await session.exec(select(Form))).all()]


async def _find_form(state: StateDep, slug: str) -> Form:
    async with AsyncSession(state.engine) as s:  # no tenant yet: only the route table is readable
        route = await s.get(FormRoute, slug)
    if route is None:
        raise not_found("form", slug)
    async with tenant_session(state.engine, route.tenant_id) as s:
        form = (await s.exec(select(Form).where(Form.slug == slug))).first()
    if form is None:
        raise not_found("form", slug)
    return form


@router.post("/v1/public/forms/{slug}/submissions", status_code=202, response_model=PublicAccepted,
             responses=responses(400, 404, 409, 422, 429, 503, descriptions={
                 404: "no such form", 409: "Idempotency-Key reused with other fields", 422: "the fields are not valid",
                 429: "the form's tenant is over its rate; see Retry-After",
                 503: "PostgreSQL did not answer; see Retry-After"}))
async def submit_form(slug: str, fields: Annotated[JsonObject, Body()], state: StateDep,
                      idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> PublicAccepted:
    form = await _find_form(state, slug)
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(form.field_schema).iter_errors(fields))
    except UNEVALUABLE as e:
        raise Problem(422, "unusable_schema", "the form's field_schema cannot be evaluated: a $ref loops or "
                      "does not resolve") from e
    if error is not None:
        raise Problem(422, "invalid_input", error.message, pointer="/" + "/".join(map(str, error.absolute_path)))
    request = SubmissionCreate(workflow_key=form.workflow_key, input=fields)
    admit_submission(state.forms_limiter, form.tenant_id, form.workflow_key)
    job = await submissions.submit(state.engine, state.temporal, state.settings, tenant_id=form.tenant_id,
                                   request=request.model_dump(mode="json"),
                                   idempotency_key=f"form:{slug}:{idempotency_key}" if idempotency_key else None)
    return PublicAccepted(job_id=str(job.id), status=job.status)
