"""ConversationWorkflow: one per (tenant, contact). Batches inbound messages and sends one
reply per batch: after REPLY_BATCH_DEBOUNCE of quiet, but never later than
REPLY_BATCH_MAX_WAIT after the batch's first message. Replaces BullMQ timers and locks."""

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.conversation import ConversationActivities, ReplyInput
    from workflows.names import CONVERSATION
    from workflows.types import ConversationInput, NewMessage

REPLY_TIMEOUT = timedelta(minutes=2)
REPLY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
    non_retryable_error_types=[
        errors.LLM_EMPTY_ANSWER,
        errors.LLM_REFUSED,
        errors.LLM_REQUEST_REJECTED,
        errors.GRAPH_REJECTED,
        errors.TENANT_SECRET_UNREADABLE,
        errors.CONTACT_NOT_FOUND,
    ],
)


@workflow.defn(name=CONVERSATION)
class ConversationWorkflow:
    def __init__(self) -> None:
        self._pending: list[str] = []
        self._seen = 0
        self._first_at: float | None = None
        self._last_at = 0.0

    @workflow.signal
    def new_message(self, msg: NewMessage) -> None:
        if msg.message_id in self._pending:
            return
        now = workflow.time()
        if not self._pending:
            self._first_at = now
        self._pending.append(msg.message_id)
        self._last_at = now
        self._seen += 1

    @workflow.query
    def pending(self) -> list[str]:
        return list(self._pending)

    @workflow.run
    async def run(self, inp: ConversationInput) -> None:
        for message_id in inp.pending:
            self.new_message(NewMessage(message_id))
        batches = inp.batches_done
        while True:
            if not self._pending:
                try:
                    await workflow.wait_condition(lambda: bool(self._pending), timeout=inp.idle_close_seconds)
                except TimeoutError:
                    return  # idle: the next message signal-with-starts a fresh run
            await self._debounce(inp)
            batch, self._pending = self._pending, []
            batches += 1
            await workflow.execute_activity_method(
                ConversationActivities.reply_to_batch,
                ReplyInput(
                    inp.tenant_id,
                    inp.contact_id,
                    batch,
                    f"{workflow.info().workflow_id}:{batches}",
                    inp.typing_indicator,
                ),
                start_to_close_timeout=REPLY_TIMEOUT,
                retry_policy=REPLY_RETRY,
            )
            if batches - inp.batches_done >= inp.batches_per_run or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    ConversationInput(
                        inp.tenant_id,
                        inp.contact_id,
                        inp.debounce_seconds,
                        inp.max_wait_seconds,
                        inp.typing_indicator,
                        inp.idle_close_seconds,
                        inp.batches_per_run,
                        list(self._pending),
                        batches,
                    )
                )

    async def _debounce(self, inp: ConversationInput) -> None:
        assert self._first_at is not None
        while True:
            now = workflow.time()
            deadline = min(self._last_at + inp.debounce_seconds, self._first_at + inp.max_wait_seconds)
            if now >= deadline:
                return
            try:
                await workflow.wait_condition(self._changed_since(self._seen), timeout=deadline - now)
            except TimeoutError:
                return

    def _changed_since(self, seen: int) -> Callable[[], bool]:
        """A wait condition: a message arrived after `seen` had arrived."""
        return lambda: self._seen != seen
