"""Channel routes: which WhatsApp phone_number_id belongs to the caller's tenant. The
webhook finds a message's tenant through these rows."""

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from api.deps import Admin, SessionDep, Viewer
from api.problems import AUTHENTICATED, Problem, not_found, responses
from schema.tables import ChannelRoute, utcnow

router = APIRouter(prefix="/v1/channels/whatsapp", tags=["channels"], responses=AUTHENTICATED)


class ChannelCreate(BaseModel):
    phone_number_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9]+$")


class ChannelPublic(BaseModel):
    phone_number_id: str
    created_at: str


def public(row: ChannelRoute) -> ChannelPublic:
    return ChannelPublic(phone_number_id=row.phone_number_id, created_at=row.created_at.isoformat())


@router.post("", status_code=201, response_model=ChannelPublic,
             responses={200: {"model": ChannelPublic, "description": "already routed to this tenant"},
                        **responses(400, 409, 422, descriptions={409: "routed to another tenant"})})
async def register_channel(body: ChannelCreate, principal: Admin, session: SessionDep,
                           response: Response) -> ChannelPublic:
    inserted = (await session.execute(insert(ChannelRoute).values(
        phone_number_id=body.phone_number_id, tenant_id=principal.tenant_id, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["phone_number_id"]).returning(col(ChannelRoute.phone_number_id))
    )).scalar_one_or_none()
    # Every tenant can read routes (the webhook needs that), so check the owner explicitly.
    row = await session.get(ChannelRoute, body.phone_number_id)
    if row is None or row.tenant_id != principal.tenant_id:
        raise Problem(409, "channel_taken", "this phone number is already routed to another account")
    if inserted is None:
        response.status_code = 200
    return public(row)


@router.get("", response_model=list[ChannelPublic])
async def list_channels(principal: Viewer, session: SessionDep) -> list[ChannelPublic]:
    rows = (await session.exec(select(ChannelRoute).where(ChannelRoute.tenant_id == principal.tenant_id)
                               .order_by(col(ChannelRoute.created_at)))).all()
    return [public(r) for r in rows]


@router.delete("/{phone_number_id}", status_code=204, response_class=Response, responses=responses(404, 422))
async def delete_channel(phone_number_id: str, principal: Admin, session: SessionDep) -> Response:
    result = await session.execute(delete(ChannelRoute).where(
        col(ChannelRoute.phone_number_id) == phone_number_id, col(ChannelRoute.tenant_id) == principal.tenant_id))
    if not result.rowcount:
        raise not_found("channel", phone_number_id)
    return Response(status_code=204)
