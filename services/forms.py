"""Public forms: a tenant publishes a slug bound to a workflow; anyone may submit fields to
it, checked against the form's field schema, and they become the workflow's input."""

import uuid
from typing import Any

import jsonschema
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from lodestone.db import tenant_session
from schema.json_schemas import UNEVALUABLE, unresolvable_ref
from schema.tables import Form, FormRoute
from services.errors import Conflict, Invalid, NotFound


async def create(
    engine: AsyncEngine, *, tenant_id: uuid.UUID, slug: str, workflow_key: str, field_schema: dict[str, Any]
) -> Form:
    try:
        jsonschema.Draft202012Validator.check_schema(field_schema)
    except jsonschema.SchemaError as e:
        raise Invalid("schema_violation", f"field_schema: {e.message}") from e
    if (ref := unresolvable_ref(field_schema)) is not None:
        raise Invalid("schema_violation", f"field_schema: {ref!r} does not resolve within the schema")
    form = Form(tenant_id=tenant_id, slug=slug, workflow_key=workflow_key, field_schema=field_schema)
    try:
        async with tenant_session(engine, tenant_id) as s:
            s.add(FormRoute(slug=slug, tenant_id=tenant_id))
            await s.flush()
            s.add(form)
    except IntegrityError as e:
        raise Conflict("slug_taken", f"the form slug {slug!r} is taken") from e
    return form


async def find(engine: AsyncEngine, slug: str) -> Form:
    async with AsyncSession(engine) as s:  # no tenant yet: only the route table is readable
        route = await s.get(FormRoute, slug)
    if route is None:
        raise NotFound("form", slug)
    async with tenant_session(engine, route.tenant_id) as s:
        form = (await s.exec(select(Form).where(Form.slug == slug))).first()
    if form is None:
        raise NotFound("form", slug)
    return form


def check_fields(form: Form, fields: dict[str, Any]) -> None:
    """The submitted fields against the form's field schema; the first error, pointed at."""
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(form.field_schema).iter_errors(fields))
    except UNEVALUABLE as e:
        raise Invalid(
            "unusable_schema", "the form's field_schema cannot be evaluated: a $ref loops or does not resolve"
        ) from e
    if error is not None:
        raise Invalid("invalid_input", error.message, pointer="/" + "/".join(map(str, error.absolute_path)))


async def all_forms(session: AsyncSession) -> list[Form]:
    """The tenant's forms, in the caller's tenant session."""
    return list((await session.exec(select(Form))).all())
