"""What both upload routers share: the answer for a stored upload, the 413 for one over the
limit, and the slot an upload holds while its body streams in."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel

from api.auth import Principal
from api.deps import AppState
from api.problems import Problem


class UploadPublic(BaseModel):
    upload_id: str
    key: str
    size: int
    sha256: str


# An upload takes minutes, so a refused client is told to come back in a while, not at once.
BUSY_RETRY_AFTER = "10"


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "payload_too_large",
        f"uploads are limited to {limit} bytes for this tenant",
        headers={"Connection": "close"},
    )


@asynccontextmanager
async def upload_slot(state: AppState, principal: Principal) -> AsyncIterator[None]:
    """One of UploadSlots' slots while a body streams in: 429 or 503 when none is free."""
    tenant = str(principal.tenant_id)
    if full := state.upload_slots.take(tenant):
        # Connection: close, as for 413: the body was not read, so the connection cannot be reused.
        if full == "tenant":
            raise Problem(
                429,
                "too_many_uploads",
                f"this tenant already has {state.upload_slots.per_tenant} uploads in progress; retry when one ends",
                headers={"Retry-After": BUSY_RETRY_AFTER, "Connection": "close"},
            )
        raise Problem(
            503,
            "uploads_busy",
            "the API is taking as many uploads as it can; retry shortly",
            headers={"Retry-After": BUSY_RETRY_AFTER, "Connection": "close"},
        )
    try:
        yield
    finally:
        state.upload_slots.release(tenant)
