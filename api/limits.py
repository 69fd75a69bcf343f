"""Request limits: a body-size cap per route (413), a per-tenant submission rate (429), and
a cap on the uploads streaming into one API process (UploadSlots).

The rate limiter is a token bucket per tenant in this API process: with N API processes a
tenant can reach N times the rate. A shared store would make it exact; the bound it gives
is what protects the workers.
"""

import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from api.problems import Problem, problem_response
from lodestone.metrics import SUBMISSIONS, UPLOADS_IN_FLIGHT

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


class TenantRateLimiter:
    """A token bucket per tenant: `rate` requests per minute, bursts up to `burst`."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, tenant: str, now: float | None = None) -> float:
        """0 when allowed; otherwise the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(tenant, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[tenant] = (tokens - 1, now)
            return 0.0
        self._buckets[tenant] = (tokens, now)
        return (1 - tokens) / self.rate if self.rate > 0 else math.inf


def admit_submission(limiter: TenantRateLimiter, tenant_id: object, workflow_key: str) -> None:
    """429, with Retry-After, when the tenant's submissions are over their rate."""
    wait = limiter.take(str(tenant_id))
    if wait:
        SUBMISSIONS.labels(str(tenant_id), workflow_key, "rate_limited").inc()
        raise Problem(
            429,
            "rate_limited",
            "too many submissions for this tenant; slow down",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )


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
