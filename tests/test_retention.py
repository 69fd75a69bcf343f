"""The retention purge blanks message bodies older than the retention period, and only those."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from lodestone.db import tenant_session
from schema.tables import Message
from tests.conversation_helpers import seed_contact
from workflows.retention import PurgeMessagesWorkflow
from workflows.types import PurgeInput


async def test_purge_blanks_old_bodies_only(settings, stack, engine, temporal, tenant_a, tenant_b):
    old_a = await seed_contact(engine, tenant_a.id, messages=20, days=200)
    old_b = await seed_contact(engine, tenant_b.id, messages=10, days=200)
    result = await temporal.execute_workflow(
        PurgeMessagesWorkflow.run, PurgeInput(90), id=f"purge-test-{uuid.uuid4()}",
        task_queue=settings.temporal_task_queue)
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
