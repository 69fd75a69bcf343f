"""The retention purge blanks message bodies older than the retention period, and only those."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.conversation import PurgeInput
from lodestone.db import tenant_session
from schema.tables import ChannelRoute, Message
from services.tenants import create_tenant
from tests.conversation_helpers import seed_contact
from workflows.retention import PurgeMessagesWorkflow


async def test_purge_blanks_old_bodies_only(settings, stack, engine, temporal, tenant_a, tenant_b):
    old_a = await seed_contact(engine, tenant_a.id, messages=20, days=200)
    old_b = await seed_contact(engine, tenant_b.id, messages=10, days=200)
    result = await temporal.execute_workflow(
        PurgeMessagesWorkflow.run,
        PurgeInput(90),
        id=f"purge-test-{uuid.uuid4()}",
        task_queue=settings.temporal_task_queue,
    )
    assert result.tenants >= 2 and result.purged >= 11
    cutoff = datetime.now(UTC) - timedelta(days=90)
    for tenant, contact in ((tenant_a, old_a), (tenant_b, old_b)):
        async with tenant_session(engine, tenant.id) as s:
            rows = (await s.exec(select(Message).where(Message.contact_id == contact.id))).all()
        old = [m for m in rows if m.sent_at < cutoff - timedelta(minutes=5)]
        new = [m for m in rows if m.sent_at > cutoff + timedelta(minutes=5)]
        assert old and new
        assert all(m.body is None and m.purged_at is not None for m in old)
        assert all(m.body is not None and m.purged_at is None for m in new)


async def test_purge_reaches_a_tenant_whose_channel_is_gone(settings, stack, engine, temporal):
    """Message bodies are personal data whether or not the tenant still has a channel."""
    tenant = await create_tenant(engine, f"Channel gone {uuid.uuid4().hex[:6]}")
    contact = await seed_contact(engine, tenant.id, messages=6, days=200)
    async with tenant_session(engine, tenant.id) as s:
        deleted = await s.execute(delete(ChannelRoute).where(col(ChannelRoute.tenant_id) == tenant.id))
    assert deleted.rowcount == 1  # the tenant has no channel left
    await temporal.execute_workflow(
        PurgeMessagesWorkflow.run,
        PurgeInput(90),
        id=f"purge-test-{uuid.uuid4()}",
        task_queue=settings.temporal_task_queue,
    )
    async with tenant_session(engine, tenant.id) as s:
        rows = (await s.exec(select(Message).where(Message.contact_id == contact.id))).all()
    old = [m for m in rows if m.sent_at < datetime.now(UTC) - timedelta(days=90, minutes=5)]
    assert len(old) >= 3
    assert all(m.body is None and m.purged_at is not None for m in old), [m.body for m in old]


async def test_the_retention_scan_names_tenants_and_opens_no_rows(engine, tenant_a):
    """retention_due_tenants runs as the owner; the app role that calls it gets tenant ids
    back, and setting the scan's opt-in itself shows it no message."""
    await seed_contact(engine, tenant_a.id, messages=3, days=200)
    async with AsyncSession(engine) as s, s.begin():
        await s.execute(text("SELECT set_config('app.retention_scan', 'on', true)"))
        assert (await s.execute(text("SELECT count(*) FROM messages"))).scalar_one() == 0
        due = (await s.execute(text("SELECT t FROM retention_due_tenants(now()) AS t"))).scalars().all()
        assert tenant_a.id in due
        assert (await s.execute(text("SELECT count(*) FROM messages"))).scalar_one() == 0
