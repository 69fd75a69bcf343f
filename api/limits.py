"""Request limits: a body-size cap per route (413) and a per-tenant submission rate (429).

The rate limiter is a token bucket per tenant in this API process: with N API processes a
tenant can reach N times the rate. A shared store would make it exact; the bound it gives
is what protects the workers.
"""

import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from api.problems import problem_response

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

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
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
        response = problem_response(413, "payload_too_large", f"request bodies here are limited to {self.limit} bytes",
                                    headers={"Connection": "close"})
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
