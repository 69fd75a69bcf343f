"""Submissions: rate-limited per tenant, then handed to services.submissions, which commits
the job and starts its workflow (Idempotency-Key honoured)."""

from typing import Annotated

from fastapi import APIRouter, Header

from api.bodies import SubmissionAccepted, SubmissionCreate, accepted
from api.deps import Editor, StateDep
from api.problems import AUTHENTICATED, responses
from services import submissions

router = APIRouter(prefix="/v1/submissions", tags=["submissions"], responses=AUTHENTICATED)


@router.post(
    "",
    status_code=202,
    response_model=SubmissionAccepted,
    responses=responses(
        400,
        404,
        409,
        422,
        429,
        503,
        descriptions={
            404: "no such workflow or upload",
            409: "Idempotency-Key reused with another body",
            429: "the tenant's submission rate is exceeded; see Retry-After",
            503: "PostgreSQL or the token issuer did not answer; see Retry-After",
        },
    ),
)
async def submit(
    body: SubmissionCreate,
    state: StateDep,
    principal: Editor,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> SubmissionAccepted:
    job = await submissions.submit(
        state.engine,
        state.temporal,
        state.settings,
        tenant_id=principal.tenant_id,
        request=body.request(),
        idempotency_key=idempotency_key,
        recorder=state.recorder,
        rate=await state.rates.submissions(principal.tenant_id),
    )
    return accepted(job, state.settings)
