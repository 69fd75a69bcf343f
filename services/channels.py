"""Channel routes: which WhatsApp phone_number_id belongs to which tenant. The webhook finds
a message's tenant through these rows."""

import uuid

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from schema.tables import ChannelRoute, utcnow
from services.errors import Conflict, NotFound


async def register(session: AsyncSession, *, tenant_id: uuid.UUID, phone_number_id: str) -> tuple[ChannelRoute, bool]:
    """The tenant's route for the number, and whether this call created it."""
    inserted = (
        await session.execute(
            insert(ChannelRoute)
            .values(
                phone_number_id=phone_number_id,
                tenant_id=tenant_id,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["phone_number_id"])
            .returning(col(ChannelRoute.phone_number_id))
        )
    ).scalar_one_or_none()
    # Every tenant can read routes (the webhook needs that), so check the owner explicitly.
    row = await session.get(ChannelRoute, phone_number_id)
    if row is None or row.tenant_id != tenant_id:
        raise Conflict("channel_taken", "this phone number is already routed to another account")
    return row, inserted is not None


async def routes(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[ChannelRoute]:
    return list(
        (
            await session.exec(
                select(ChannelRoute).where(ChannelRoute.tenant_id == tenant_id).order_by(col(ChannelRoute.created_at))
            )
        ).all()
    )


async def unregister(session: AsyncSession, *, tenant_id: uuid.UUID, phone_number_id: str) -> None:
    result = await session.execute(
        delete(ChannelRoute).where(
            col(ChannelRoute.phone_number_id) == phone_number_id, col(ChannelRoute.tenant_id) == tenant_id
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]  # a CursorResult at run time; execute() is typed Result
        raise NotFound("channel", phone_number_id)
