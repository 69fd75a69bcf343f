"""SummaryWorkflow end to end on the real stack: transcript, LLM stages, PDF, WhatsApp
document at the Graph stand-in, summaries row."""

import io
import uuid

import pypdf
from sqlmodel import select

from lodestone.db import tenant_session
from schema.tables import Message, Summary
from tests.conversation_helpers import seed_contact
from workflows.summary import SummaryWorkflow
from workflows.types import SummaryInput


async def test_summary_sends_a_pdf_of_the_window(settings, stack, engine, temporal, tenant_a, graph_standin):
    contact = await seed_contact(engine, tenant_a.id, messages=30, days=30)
    result = await temporal.execute_workflow(
        SummaryWorkflow.run,
        SummaryInput(str(tenant_a.id), str(contact.id), 15),
        id=f"summary-test-{uuid.uuid4()}",
        task_queue=settings.temporal_task_queue,
    )
    assert result.message_count == 15  # half of the 30 days
    pdf = (settings.data_path / "objects" / result.pdf_key).read_bytes()
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "Conversation summary" in text and "Dana Tester" in text and "15 messages" in text
    assert "Message 29" in text and "Message 0:" not in text  # only the window's messages
    docs = [c for c in graph_standin.documents() if c.body["to"] == contact.wa_id]
    assert len(docs) == 1 and docs[0].authorized
    assert graph_standin.media[docs[0].body["document"]["id"]] == pdf
    async with tenant_session(engine, tenant_a.id) as s:
        row = (await s.exec(select(Summary).where(Summary.contact_id == contact.id))).one()
        sent = (await s.exec(select(Message).where(Message.contact_id == contact.id, Message.kind == "document"))).one()
    assert row.message_count == 15 and row.tokens_in > 0 and row.artifact_key == result.pdf_key
    assert sent.status == "sent" and sent.message_id == result.wa_message_id


async def test_fifteen_day_schedule_fires_twice_and_sends_two_pdfs(
    settings, stack, engine, temporal, tenant_a, graph_standin
):
    """Two fire times of a real Temporal Schedule, via backfill on the dev server. (The
    time-skipping test server does not implement Schedules: CreateSchedule is unimplemented.)"""
    import asyncio
    from datetime import timedelta

    from services.schedule_common import backfill_schedule
    from services.schedules import create_summary_schedule, describe_summary_schedule

    contact = await seed_contact(engine, tenant_a.id, messages=60, days=60)
    created = await create_summary_schedule(temporal, settings, tenant_a.id, contact.id, 15)
    try:
        first_next = (await describe_summary_schedule(temporal, tenant_a.id, created.id)).next_action_times[0]
        # Fire times sit every 15 days before first_next; take the two before the latest past one.
        await backfill_schedule(
            temporal,
            tenant_a.id,
            created.id,
            first_next - timedelta(days=60, seconds=-1),
            first_next - timedelta(days=15, seconds=1),
        )
        rows = []
        for _ in range(120):
            async with tenant_session(engine, tenant_a.id) as s:
                rows = list(
                    (
                        await s.exec(
                            select(Summary).where(Summary.contact_id == contact.id).order_by(Summary.window_end)
                        )
                    ).all()
                )
            if len(rows) >= 2:
                break
            await asyncio.sleep(0.5)
    finally:
        await temporal.get_schedule_handle(created.id).delete()
    assert len(rows) == 2
    assert rows[1].window_end - rows[0].window_end == timedelta(days=15)
    assert [r.window_end - r.window_start for r in rows] == [timedelta(days=15)] * 2
    texts = []
    for row in rows:
        pdf = (settings.data_path / "objects" / row.artifact_key).read_bytes()
        text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
        assert "Conversation summary" in text and f"{row.message_count} messages" in text
        assert row.window_end.date().isoformat() in text
        texts.append(text)
    assert texts[0] != texts[1]
    assert len([c for c in graph_standin.documents() if c.body["to"] == contact.wa_id]) == 2
