"""ConversationWorkflow logic on the time-skipping server (stand-in activities under the real
names), and the reply activity's exactly-once send against the real database and Graph stand-in."""

import uuid

from sqlmodel import select
from temporalio import activity
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.conversation import ConversationActivities, ReplyInput, ReplyResult
from lodestone.db import tenant_session
from lodestone.llm import OfflineLLM
from lodestone.netguard import guarded_client
from lodestone.secrets import make_secrets
from lodestone.whatsapp import WhatsAppClient
from schema.tables import Message
from tests.conversation_helpers import seed_contact
from workflows.conversation import ConversationWorkflow
from workflows.types import ConversationInput, NewMessage


class FakeReplies:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    @activity.defn(name="reply_to_batch")
    async def reply_to_batch(self, inp: ReplyInput) -> ReplyResult:
        self.batches.append(inp.message_ids)
        return ReplyResult(f"wamid.{len(self.batches)}", True)


async def test_batches_continue_as_new_and_keep_every_message(env):
    fake, queue = FakeReplies(), f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[ConversationWorkflow], activities=[fake.reply_to_batch]):
        handle = await env.client.start_workflow(
            ConversationWorkflow.run,
            ConversationInput("t", "c", 5.0, 30.0, False, 3600.0, batches_per_run=2),
            id=f"conversation-{uuid.uuid4()}",
            task_queue=queue,
        )
        for burst in range(5):
            for i in range(2):
                await handle.signal(ConversationWorkflow.new_message, NewMessage(f"m{burst}-{i}"))
            await env.sleep(10)  # past the debounce: this burst gets its reply
        assert fake.batches == [[f"m{b}-0", f"m{b}-1"] for b in range(5)]
        # 5 batches at 2 per run: this run is the third of the chain.
        assert (await handle.describe()).run_id != handle.first_execution_run_id
        await handle.terminate()


async def test_reply_is_sent_once_across_retries(settings, stack, engine, tenant_a, graph_standin):
    contact = await seed_contact(engine, tenant_a.id, messages=3, days=1)
    async with tenant_session(engine, tenant_a.id) as s:
        ids = [m.message_id for m in (await s.exec(select(Message).where(Message.contact_id == contact.id))).all()]
    http = guarded_client(["127.0.0.1/32"])
    acts = ConversationActivities(
        engine, OfflineLLM(), WhatsAppClient(http, settings), settings, make_secrets(settings, {})
    )
    inp = ReplyInput(str(tenant_a.id), str(contact.id), ids, f"test:{uuid.uuid4()}", typing_indicator=True)
    try:
        first = await ActivityEnvironment().run(acts.reply_to_batch, inp)
        second = await ActivityEnvironment().run(acts.reply_to_batch, inp)  # a retry of the same batch
    finally:
        await http.aclose()
    assert first.sent_now and not second.sent_now and first.wa_message_id == second.wa_message_id
    assert len([c for c in graph_standin.texts() if c.body["to"] == contact.wa_id]) == 1
    typing = [c for c in graph_standin.calls if c.body.get("typing_indicator") and c.body.get("message_id") in ids]
    assert len(typing) == 1
    async with tenant_session(engine, tenant_a.id) as s:
        rows = (await s.exec(select(Message).where(Message.contact_id == contact.id))).all()
    assert {m.status for m in rows if m.direction == "in" and m.message_id in ids} == {"answered"}
