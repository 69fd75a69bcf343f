"""Every error code an activity fails with: the ApplicationError `type` the retry policies
(workflows/, non_retryable_error_types) name and the activities raise. One name each, so a
policy and a raise cannot drift apart; tests/test_error_codes.py holds them together.

Codes are the names they always had (recorded histories carry them); add, never rename."""

from lodestone.asl import errors as asl
from lodestone.llm import LLMEmptyAnswer, LLMOutputInvalid, LLMRefused, LLMRequestRejected, LLMTransient
from lodestone.mail import MailError, MailNotConfigured, MailUnavailable
from lodestone.pdf import PdfRenderFailed
from lodestone.templating import TemplateLimitExceeded, TemplateRenderError, TemplateSecurityViolation

# Failures for good: the activity fails at once, and the workflow with it.
JOB_NOT_FOUND = "JobNotFound"
JOB_CANCELLED = "JobCancelled"  # cancelled before its workflow began: the run stops at its first write
CONTACT_NOT_FOUND = "ContactNotFound"
TENANT_SECRET_UNREADABLE = "TenantSecretUnreadable"
STEP_INPUT_MISSING = "StepInputMissing"
LLM_EMPTY_ANSWER = "LLMEmptyAnswer"
LLM_REFUSED = "LLMRefused"
LLM_REQUEST_REJECTED = "LLMRequestRejected"
LLM_OUTPUT_INVALID = "LLMOutputInvalid"  # the answer never matched the step's output_schema
TEMPLATE_RENDER_ERROR = "TemplateRenderError"
TEMPLATE_SECURITY_VIOLATION = "TemplateSecurityViolation"
TEMPLATE_LIMIT_EXCEEDED = "TemplateLimitExceeded"
PDF_RENDER_FAILED = "PdfRenderFailed"
INPUT_URL_REFUSED = "InputURLRefused"
INPUT_FETCH_FAILED = "InputFetchFailed"
INPUT_TOO_LARGE = "InputTooLarge"
SUMMARY_MISSING = "SummaryMissing"
GRAPH_REJECTED = "GraphRejected"
WEBHOOK_REJECTED = "WebhookRejected"
WEBHOOK_REDIRECTED = "WebhookRedirected"
WEBHOOK_URL_REFUSED = "WebhookURLRefused"
EMAIL_REJECTED = "EmailRejected"
EMAIL_NOT_CONFIGURED = "EmailNotConfigured"
SMS_REJECTED = "SmsRejected"  # Twilio refused the message (an invalid number: code 21211)
MESSAGE_NOT_CONFIGURED = "MessageNotConfigured"  # an sms/whatsapp target lacks credentials or a channel
RECIPIENT_INVALID = "RecipientInvalid"  # a target's `to`, filled from the input, is no E.164 number
SCHEDULED_WORKFLOW_NOT_FOUND = "ScheduledWorkflowNotFound"  # a schedule's workflow key has no definition now
SCHEDULED_INPUT_INVALID = "ScheduledInputInvalid"  # a schedule's input no longer meets the current input_schema
# A state machine Task's failures carry ASL error names (its Retry and Catch decide, never
# Temporal): these, `States.Http.StatusCode.<code>` for http:invoke, and whatever name the
# tenant's endpoint gives in {"error": ...}.
STATES_TASK_FAILED = asl.TASK_FAILED
STATES_TIMEOUT = asl.TIMEOUT
STATES_HTTP_SOCKET = asl.HTTP_SOCKET
STATES_DATA_LIMIT_EXCEEDED = asl.DATA_LIMIT_EXCEEDED
LAMBDA_SERVICE_EXCEPTION = "Lambda.ServiceException"
# An LLM call's reservation does not fit the tenant's budget: the attempt ends at once, unsent,
# and the job's workflow pauses (paused_budget) instead of failing (workflows/budget_pause.py).
BUDGET_EXHAUSTED = "BudgetExhausted"

# Failures worth another attempt, on the policy's schedule.
LLM_TRANSIENT = "LLMTransient"
SECRETS_UNAVAILABLE = "SecretsUnavailable"
INPUT_UNAVAILABLE = "InputUnavailable"
STEP_NOT_READY = "StepNotReady"
GRAPH_UNAVAILABLE = "GraphUnavailable"
WEBHOOK_UNAVAILABLE = "WebhookUnavailable"
EMAIL_UNAVAILABLE = "EmailUnavailable"
SMS_UNAVAILABLE = "SmsUnavailable"
# Over the tenant's send rate for a country: the send activity is tried again when a token is due.
SEND_RATE_LIMITED = "SendRateLimited"
# A busy template pool: the workflow schedules the activity again after the delay it asked
# (runs recorded before that let the policy retry it as an attempt).
TEMPLATE_POOL_BUSY = "TemplatePoolBusy"
# Every one of the tenant's LLM-call or render slots is held (lodestone/tenant_slots.py): the
# same, rescheduled by the workflow without spending an attempt.
TENANT_SLOTS_BUSY = "TenantSlotsBusy"
# The busy codes: "come back later", never a failed attempt (workflows/policies.py).
BUSY_TYPES = (TEMPLATE_POOL_BUSY, TENANT_SLOTS_BUSY)

NON_RETRYABLE = frozenset(
    {
        JOB_NOT_FOUND,
        JOB_CANCELLED,
        CONTACT_NOT_FOUND,
        TENANT_SECRET_UNREADABLE,
        STEP_INPUT_MISSING,
        LLM_EMPTY_ANSWER,
        LLM_REFUSED,
        LLM_REQUEST_REJECTED,
        LLM_OUTPUT_INVALID,
        TEMPLATE_RENDER_ERROR,
        TEMPLATE_SECURITY_VIOLATION,
        TEMPLATE_LIMIT_EXCEEDED,
        PDF_RENDER_FAILED,
        INPUT_URL_REFUSED,
        INPUT_FETCH_FAILED,
        INPUT_TOO_LARGE,
        SUMMARY_MISSING,
        GRAPH_REJECTED,
        WEBHOOK_REJECTED,
        WEBHOOK_REDIRECTED,
        WEBHOOK_URL_REFUSED,
        EMAIL_REJECTED,
        EMAIL_NOT_CONFIGURED,
        SMS_REJECTED,
        MESSAGE_NOT_CONFIGURED,
        RECIPIENT_INVALID,
        SCHEDULED_WORKFLOW_NOT_FOUND,
        SCHEDULED_INPUT_INVALID,
        STATES_TASK_FAILED,
        STATES_TIMEOUT,
        STATES_HTTP_SOCKET,
        STATES_DATA_LIMIT_EXCEEDED,
        LAMBDA_SERVICE_EXCEPTION,
        BUDGET_EXHAUSTED,
    }
)
RETRYABLE = frozenset(
    {
        LLM_TRANSIENT,
        SECRETS_UNAVAILABLE,
        INPUT_UNAVAILABLE,
        STEP_NOT_READY,
        GRAPH_UNAVAILABLE,
        WEBHOOK_UNAVAILABLE,
        EMAIL_UNAVAILABLE,
        SMS_UNAVAILABLE,
        SEND_RATE_LIMITED,
        TEMPLATE_POOL_BUSY,
        TENANT_SLOTS_BUSY,
    }
)

# The code of each library failure an activity turns into an ApplicationError; the most
# specific class first.
_BY_EXCEPTION: list[tuple[type[Exception], str]] = [
    (LLMTransient, LLM_TRANSIENT),
    (LLMEmptyAnswer, LLM_EMPTY_ANSWER),
    (LLMRefused, LLM_REFUSED),
    (LLMRequestRejected, LLM_REQUEST_REJECTED),
    (LLMOutputInvalid, LLM_OUTPUT_INVALID),
    (TemplateRenderError, TEMPLATE_RENDER_ERROR),
    (TemplateSecurityViolation, TEMPLATE_SECURITY_VIOLATION),
    (TemplateLimitExceeded, TEMPLATE_LIMIT_EXCEEDED),
    (PdfRenderFailed, PDF_RENDER_FAILED),
    (MailNotConfigured, EMAIL_NOT_CONFIGURED),
    (MailUnavailable, EMAIL_UNAVAILABLE),
    (MailError, EMAIL_REJECTED),
]
EXCEPTION_CODES = dict(_BY_EXCEPTION)


def code_of(e: Exception) -> str:
    """The error code of a library failure; an LLMError of no known kind keeps its class name,
    as it always did."""
    for cls, code in _BY_EXCEPTION:
        if isinstance(e, cls):
            return code
    return type(e).__name__


def unexpected(e: BaseException) -> str:
    """The type of a failure no activity expected (a bug, an OSError): its class name, as
    Temporal would name it. No policy names one, so every policy retries it."""
    return type(e).__name__
