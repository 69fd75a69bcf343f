"""The body idle timeout bounds only the wait for the request body: a streamed response that
outlasts it (an artifact download) is not cut off, while a body that stalls is answered 408.
Driven as ASGI with a receive() that behaves like a server whose client stays connected."""

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from api.body_timeout import BodyIdleTimeout

TIMEOUT = 0.2
CHUNKS = 8


async def slow_stream(request: Request) -> StreamingResponse:
    await request.body()

    async def chunks():
        for _ in range(CHUNKS):
            await asyncio.sleep(TIMEOUT / 2)  # the whole stream takes 4 timeouts
            yield b"x" * 10

    return StreamingResponse(chunks())


APP = BodyIdleTimeout(Starlette(routes=[Route("/stream", slow_stream, methods=["GET", "POST"])]), TIMEOUT)


async def call(method: str, messages: list[dict]) -> list[dict]:
    """Runs one request: receive() hands out `messages`, then waits as a connected client does."""
    pending = list(messages)
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # connected, saying nothing
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "path": "/stream",
        "raw_path": b"/stream",
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    await asyncio.wait_for(APP(scope, receive, send), 10)
    return sent


async def test_a_streamed_response_longer_than_the_timeout_is_not_cut_off():
    sent = await call("GET", [{"type": "http.request", "body": b"", "more_body": False}])
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert body == b"x" * 10 * CHUNKS
    assert sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body", False)


async def test_a_body_that_stalls_is_answered_408():
    sent = await call("POST", [{"type": "http.request", "body": b"part", "more_body": True}])
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    assert b"body_timeout" in b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
