"""Channel routes: which WhatsApp phone_number_id belongs to the caller's tenant
(services/channels.py keeps them)."""

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api.deps import Admin, SessionDep, Viewer
from api.problems import AUTHENTICATED, responses
from schema.tables import ChannelRoute
from services import channels

router = APIRouter(prefix="/v1/channels/whatsapp", tags=["channels"], responses=AUTHENTICATED)


class ChannelCreate(BaseModel):
    phone_number_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9]+$")


class ChannelPublic(BaseModel):
    phone_number_id: str
    created_at: str


def public(row: ChannelRoute) -> ChannelPublic:
    return ChannelPublic(phone_number_id=row.phone_number_id, created_at=row.created_at.isoformat())


@router.post(
    "",
    status_code=201,
    response_model=ChannelPublic,
    responses={
        200: {"model": ChannelPublic, "description": "already routed to this tenant"},
        **responses(400, 409, 422, descriptions={409: "routed to another tenant"}),
    },
)
async def register_channel(
    body: ChannelCreate, principal: Admin, session: SessionDep, response: Response
) -> ChannelPublic:
    row, created = await channels.register(session, tenant_id=principal.tenant_id, phone_number_id=body.phone_number_id)
    if not created:
        response.status_code = 200
    return public(row)


@router.get("", response_model=list[ChannelPublic])
async def list_channels(principal: Viewer, session: SessionDep) -> list[ChannelPublic]:
    return [public(r) for r in await channels.routes(session, tenant_id=principal.tenant_id)]


@router.delete("/{phone_number_id}", status_code=204, response_class=Response, responses=responses(404, 422))
async def delete_channel(phone_number_id: str, principal: Admin, session: SessionDep) -> Response:
    await channels.unregister(session, tenant_id=principal.tenant_id, phone_number_id=phone_number_id)
    return Response(status_code=204)
