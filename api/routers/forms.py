"""Public forms: a tenant publishes a slug bound to a workflow; anyone may submit to it,
unauthenticated, rate-limited per tenant, validated against the form's field schema."""

from typing import Annotated

from fastapi import APIRouter, Body, Header
from pydantic import BaseModel, Field

from api.bodies import JsonObject, SubmissionCreate
from api.deps import Editor, SessionDep, StateDep, Viewer
from api.problems import AUTHENTICATED, responses
from schema.tables import Form
from services import forms, submissions

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
    return FormPublic(
        id=str(form.id),
        slug=form.slug,
        workflow_key=form.workflow_key,
        field_schema=form.field_schema,
        public_url=f"{api_url}/v1/public/forms/{form.slug}/submissions",
    )


@router.post(
    "/v1/forms",
    status_code=201,
    response_model=FormPublic,
    responses={
        **AUTHENTICATED,
        **responses(400, 409, 422, descriptions={409: "the slug is taken", 422: "bad field schema"}),
    },
)
async def create_form(body: FormCreate, state: StateDep, principal: Editor) -> FormPublic:
    form = await forms.create(state.engine, tenant_id=principal.tenant_id, **body.model_dump())
    return public(form, state.settings.api_url)


@router.get("/v1/forms", response_model=list[FormPublic], responses=AUTHENTICATED)
async def list_forms(_: Viewer, session: SessionDep, state: StateDep) -> list[FormPublic]:
    return [public(f, state.settings.api_url) for f in await forms.all_forms(session)]


@router.post(
    "/v1/public/forms/{slug}/submissions",
    status_code=202,
    response_model=PublicAccepted,
    responses=responses(
        400,
        404,
        409,
        422,
        429,
        503,
        descriptions={
            404: "no such form",
            409: "Idempotency-Key reused with other fields",
            422: "the fields are not valid",
            429: "the form's tenant is over its rate; see Retry-After",
            503: "PostgreSQL did not answer; see Retry-After",
        },
    ),
)
async def submit_form(
    slug: str,
    fields: Annotated[JsonObject, Body()],
    state: StateDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> PublicAccepted:
    form = await forms.find(state.engine, slug)
    forms.check_fields(form, fields)
    request = SubmissionCreate(workflow_key=form.workflow_key, input=fields)
    job = await submissions.submit(
        state.engine,
        state.temporal,
        state.settings,
        tenant_id=form.tenant_id,
        request=request.request(),
        idempotency_key=f"form:{slug}:{idempotency_key}" if idempotency_key else None,
        rate=state.rates.forms,
    )
    return PublicAccepted(job_id=str(job.id), status=job.status)
