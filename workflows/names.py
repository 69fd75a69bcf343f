"""Workflow type names and ids, for code that starts workflows without importing their
definitions, and with them every activity: the API."""

SUBMISSION = "SubmissionWorkflow"
STATE_MACHINE = "StateMachineWorkflow"
CONVERSATION = "ConversationWorkflow"
SUMMARY = "SummaryWorkflow"
PURGE_MESSAGES = "PurgeMessagesWorkflow"
SCHEDULED_JOB = "ScheduledJobWorkflow"


def conversation_id(tenant_id: str, wa_id: str) -> str:
    return f"conversation:{tenant_id}:{wa_id}"
