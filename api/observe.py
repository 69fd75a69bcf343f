"""Per-request observability as plain ASGI middleware (no task per body chunk, which
matters for multi-GB uploads): the request id, a server span, and the latency histogram.

It is also where an exception no handler took becomes a 500 problem: here, inside the
request id, so that answer carries X-Request-Id like every other and its log line names
the request."""

import logging
import time
import uuid

from opentelemetry import context, trace
from opentelemetry.propagate import extract
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response, route_template
from lodestone.logs import request_id
from lodestone.metrics import HTTP_REQUESTS
from lodestone.tracing import with_request_id

log = logging.getLogger("lodestone.api")


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer("lodestone.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        # The request id rides as baggage beside the trace context, so workflows and
        # activities started by this request log it too.
        rid = headers.get("x-request-id", "")[:128] or uuid.uuid4().hex
        token, otel_token = request_id.set(rid), context.attach(with_request_id(rid, extract(headers)))
        started, status, answering = time.monotonic(), 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1", "replace"))],
                }
            await send(message)

        span = self.tracer.start_span(scope["method"], kind=trace.SpanKind.SERVER)  # named by its route below
        try:
            # The span keeps the exception's type, not its message, which may quote input.
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception as exc:
                    span.set_attribute("error.type", type(exc).__qualname__)
                    span.set_status(trace.StatusCode.ERROR, type(exc).__qualname__)
                    if answering:
                        raise  # a response is under way: the server can only cut it off
                    log.exception("unhandled error on %s %s", scope["method"], route_template(scope))
                    await problem_response(500, "internal_error", "an internal error occurred")(
                        scope, receive, send_with_id
                    )
        finally:
            route = route_template(scope, "unmatched")
            span.update_name(f"{scope['method']} {route}")
            span.set_attribute("http.response.status_code", status)
            span.end()
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).observe(time.monotonic() - started)
            context.detach(otel_token)
            request_id.reset(token)
