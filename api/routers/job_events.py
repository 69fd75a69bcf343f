"""A job's progress as Server-Sent Events: `id` is the event's seq, `event` its type, `data`
its JSON object (docs/api.md#job-events). Last-Event-ID (or ?after=N) resumes after that seq."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import StateDep, Viewer
from api.problems import AUTHENTICATED, responses
from services.job_events import check_job, follow

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=AUTHENTICATED)

STREAM = {200: {"description": "the job's events, as text/event-stream", "content": {"text/event-stream": {}}}}


@router.get("/{job_id}/events", response_class=EventSourceResponse, responses={**STREAM, **responses(404, 422)})
async def job_events(
    job_id: uuid.UUID,
    principal: Viewer,
    state: StateDep,
    after: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="resume after this seq")] = None,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=2**31 - 1)] = None,
) -> EventSourceResponse:
    """Replays the job's events from the first (or after `Last-Event-ID` / `after`), then
    follows them live; closes after the `end` event. A finished job's stream replays and closes."""
    await check_job(state.engine, principal.tenant_id, job_id)
    start = last_event_id if last_event_id is not None else (after or 0)
    settings = state.settings
    events = follow(state.engine, state.events, principal.tenant_id, job_id, start, settings.job_events_poll_seconds)

    async def frames():  # type: ignore[no-untyped-def]
        async for e in events:
            yield ServerSentEvent(e.data, event=e.type, id=str(e.seq))

    return EventSourceResponse(frames(), ping=settings.job_events_ping_seconds)
