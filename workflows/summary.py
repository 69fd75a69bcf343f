"""SummaryWorkflow: fired by a Temporal Schedule per contact (every SUMMARY_INTERVAL_DAYS).
Loads the window's messages, runs extract -> themes -> write, renders a PDF, sends it
over WhatsApp as a document and records the summary. Replaces a cron summary worker."""

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.summary import (
        RecordSummaryInput,
        SendDocumentInput,
        SummaryActivities,
        SummaryPdfInput,
        SummaryStageInput,
        SummaryWindow,
    )
    from workflows.names import SUMMARY
    from workflows.types import SummaryInput, SummaryResult

STAGES = ("extract", "themes", "write")
DB_TIMEOUT = timedelta(seconds=60)
LLM_TIMEOUT = timedelta(minutes=5)
LLM_HEARTBEAT = timedelta(seconds=30)
PDF_TIMEOUT = timedelta(minutes=3)
PDF_HEARTBEAT = timedelta(seconds=20)
SEND_TIMEOUT = timedelta(minutes=2)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=8,
    non_retryable_error_types=[
        errors.LLM_EMPTY_ANSWER,
        errors.LLM_REFUSED,
        errors.LLM_REQUEST_REJECTED,
        errors.PDF_RENDER_FAILED,
        errors.GRAPH_REJECTED,
        errors.CONTACT_NOT_FOUND,
        errors.TEMPLATE_RENDER_ERROR,
        errors.TEMPLATE_SECURITY_VIOLATION,
        errors.TENANT_SECRET_UNREADABLE,
    ],
)
SCHEDULED_TIME = "TemporalScheduledStartTime"


def _window_end() -> datetime:
    """The schedule's nominal fire time, so a late or backfilled run covers its own window."""
    scheduled = workflow.info().search_attributes.get(SCHEDULED_TIME)
    if scheduled:
        value = scheduled[0]
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return workflow.now()


@workflow.defn(name=SUMMARY)
class SummaryWorkflow:
    @workflow.run
    async def run(self, inp: SummaryInput) -> SummaryResult:
        end = _window_end()
        window = SummaryWindow(
            inp.tenant_id, inp.contact_id, (end - timedelta(days=inp.interval_days)).isoformat(), end.isoformat()
        )
        transcript = await workflow.execute_activity_method(
            SummaryActivities.load_window, window, start_to_close_timeout=DB_TIMEOUT, retry_policy=RETRY
        )
        source, usage, outputs = transcript.key, [], {}
        for stage in STAGES:
            result = await workflow.execute_activity_method(
                SummaryActivities.run_stage,
                SummaryStageInput(inp.tenant_id, inp.contact_id, window.window_end, stage, source),
                start_to_close_timeout=LLM_TIMEOUT,
                heartbeat_timeout=LLM_HEARTBEAT,
                retry_policy=RETRY,
            )
            usage.append(result)
            outputs[stage] = source = result.key
        pdf_key = await workflow.execute_activity_method(
            SummaryActivities.render_summary_pdf,
            SummaryPdfInput(
                inp.tenant_id,
                inp.contact_id,
                window.window_start,
                window.window_end,
                transcript.key,
                outputs["write"],
                outputs["themes"],
            ),
            start_to_close_timeout=PDF_TIMEOUT,
            heartbeat_timeout=PDF_HEARTBEAT,
            retry_policy=RETRY,
        )
        sent = await workflow.execute_activity_method(
            SummaryActivities.send_document,
            SendDocumentInput(inp.tenant_id, inp.contact_id, pdf_key, window.window_end),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=RETRY,
        )
        await workflow.execute_activity_method(
            SummaryActivities.record_summary,
            RecordSummaryInput(
                inp.tenant_id,
                inp.contact_id,
                window.window_start,
                window.window_end,
                transcript.message_count,
                pdf_key,
                sent.media_id,
                sent.wa_message_id,
                usage,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=RETRY,
        )
        return SummaryResult(pdf_key, transcript.message_count, sent.wa_message_id)
