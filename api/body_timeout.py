"""A request body that stops arriving is cut off: 408.

The server waits for a client's body as long as the client keeps the connection open, and
a body that trickles (slowloris) would hold what its request holds (an upload slot, a
partial file, a database session) for ever. Every wait for the next piece of a body is
bounded by REQUEST_BODY_IDLE_TIMEOUT_SECONDS; past it the client is answered 408 (with
Connection: close) and the app is told the client went away, so it stops, cleans up and
frees what it held. Only the wait for the client counts: the app's own work between two
reads does not, and neither does the wait for a disconnect once the body is complete (a
streamed response, such as an artifact download, listens for one as long as it streams).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from api.limits import ASGIApp, Message, Scope
from api.problems import problem_response, route_template

log = logging.getLogger("lodestone.api")


class BodyIdleTimeout:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = answered = body_done = False

        async def bounded() -> Message:
            nonlocal answered, body_done
            if answered:
                return {"type": "http.disconnect"}
            if body_done:
                # The body is all in: what is left is waiting for the client to go away, which a
                # streamed response does for as long as it streams. That wait is not bounded.
                return await receive()
            try:
                # asyncio.timeout re-arms one timer per wait; wait_for would make a task per
                # piece of body, which cost more CPU than the upload's own event loop work.
                async with asyncio.timeout(self.seconds):
                    message = await receive()
                body_done = message["type"] != "http.request" or not message.get("more_body", False)
                return message
            except TimeoutError:
                answered = True
                log.info("request body idle for %.0fs on %s; answered 408", self.seconds, route_template(scope))
                if not started:
                    await problem_response(
                        408,
                        "body_timeout",
                        f"the request body stalled for more than {self.seconds:g} seconds",
                        headers={"Connection": "close"},
                    )({"type": "http"}, _disconnected, send)
                return {"type": "http.disconnect"}  # the app stops reading and cleans up

        async def tracking(message: Message) -> None:
            nonlocal started
            if answered and not started:
                return  # the client has its 408; whatever the app answers after goes nowhere
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded, tracking)
        except Exception:
            if not answered:
                raise


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
