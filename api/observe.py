"""Per-request observability as plain ASGI middleware (no task per body chunk, which
matters for multi-GB uploads): the request id, a server span, and the latency histogram."""

import time
import uuid

from opentelemetry import context, trace
from opentelemetry.propagate import extract
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lodestone.logs import request_id
from lodestone.metrics import HTTP_REQUESTS
from lodestone.tracing import with_request_id


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
        started, status = time.monotonic(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", rid.encode("latin-1", "replace"))]}
            await send(message)

        span = self.tracer.start_span(f"{scope['method']} {scope['path']}", kind=trace.SpanKind.SERVER)
        try:
            with trace.use_span(span, end_on_exit=False):
                await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            span.update_name(f"{scope['method']} {route}")
            span.set_attribute("http.response.status_code", status)
            span.end()
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).observe(time.monotonic() - started)
            context.detach(otel_token)
            request_id.reset(token)
