"""Request limits: a body-size cap per route (413), the rate of a tenant's submissions (429,
its token bucket in PostgreSQL, taken in the submission's transaction by
services.submissions), and a cap on the uploads streaming into one API process (UploadSlots).
"""

import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from api.problems import problem_response
from lodestone.metrics import UPLOADS_IN_FLIGHT
from lodestone.settings import Settings
from lodestone.token_bucket import Rate
from services.tenants import tenant_limits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

# Routes that enforce their own, larger limit while streaming.
OWN_LIMIT = ("/v1/uploads",)


class BodyLimit:
    """Answer 413 for a declared Content-Length over the limit before reading the body, and
    stop reading a chunked body as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OWN_LIMIT):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send)
        seen, started, answered = 0, False, False

        async def limited() -> Message:
            nonlocal seen, answered
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    if not started and not answered:
                        answered = True
                        await self._reject(send)
                    return {"type": "http.disconnect"}  # the app stops reading; we have answered
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            if answered:
                return  # whatever the app says after a disconnect goes nowhere
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except Exception:
            if not answered:
                raise

    async def _reject(self, send: Callable[[Message], Awaitable[None]]) -> None:
        response = problem_response(
            413,
            "payload_too_large",
            f"request bodies here are limited to {self.limit} bytes",
            headers={"Connection": "close"},
        )
        await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


class SubmissionRates:
    """The rate each submission takes a token at (lodestone.token_bucket, one bucket per
    tenant in PostgreSQL, shared by every API process). A tenant's API submissions: its
    effective submissions_per_minute and submissions_burst, read at most once per `ttl`
    seconds per tenant in this process (so an override takes effect within that); public
    form submissions: the deployment's PUBLIC_FORM_SUBMISSIONS_* settings."""

    MAX_REMEMBERED = 100_000

    def __init__(self, engine: AsyncEngine, settings: Settings, ttl: float) -> None:
        self.engine, self.settings, self.ttl = engine, settings, ttl
        self.forms = Rate(
            "form_submissions", settings.public_form_submissions_per_minute, settings.public_form_submissions_burst
        )
        self._read: dict[uuid.UUID, tuple[float, Rate]] = {}

    async def submissions(self, tenant_id: uuid.UUID) -> Rate:
        now = time.monotonic()
        read = self._read.get(tenant_id)
        if read is not None and now - read[0] < self.ttl:
            return read[1]
        limits = await tenant_limits(self.engine, self.settings, tenant_id)
        rate = Rate("submissions", limits.submissions_per_minute, limits.submissions_burst)
        if len(self._read) >= self.MAX_REMEMBERED:
            self._read.clear()
        self._read[tenant_id] = (now, rate)
        return rate


class UploadSlots:
    """The uploads in flight in this API process: at most `total`, and at most `per_tenant`
    of any one tenant's, so one tenant cannot take every slot. Each upload holds threads and
    buffers (filesystem store) or temporary disk (S3 store) until it ends; the cap bounds
    them however many clients send at once."""

    def __init__(self, total: int, per_tenant: int) -> None:
        self.total, self.per_tenant = total, per_tenant
        self.in_flight: dict[str, int] = {}

    def take(self, tenant: str) -> Literal["tenant", "process"] | None:
        """None when a slot was taken (give it back with release); otherwise which cap is full."""
        if self.in_flight.get(tenant, 0) >= self.per_tenant:
            return "tenant"
        if sum(self.in_flight.values()) >= self.total:
            return "process"
        self.in_flight[tenant] = self.in_flight.get(tenant, 0) + 1
        UPLOADS_IN_FLIGHT.inc()
        return None

    def release(self, tenant: str) -> None:
        left = self.in_flight[tenant] - 1
        if left:
            self.in_flight[tenant] = left
        else:
            del self.in_flight[tenant]
        UPLOADS_IN_FLIGHT.dec()
