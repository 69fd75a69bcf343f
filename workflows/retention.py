"""PurgeMessagesWorkflow: on a daily schedule, blank message bodies older than
MESSAGE_RETENTION_DAYS, because they are personal data."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.conversation import ConversationActivities, PurgeInput, PurgeResult
    from workflows.names import PURGE_MESSAGES

PURGE_TIMEOUT = timedelta(minutes=30)
PURGE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=5)


@workflow.defn(name=PURGE_MESSAGES)
class PurgeMessagesWorkflow:
    @workflow.run
    async def run(self, inp: PurgeInput) -> PurgeResult:
        return await workflow.execute_activity_method(
            ConversationActivities.purge_message_bodies,
            inp,
            start_to_close_timeout=PURGE_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=PURGE_RETRY,
        )
