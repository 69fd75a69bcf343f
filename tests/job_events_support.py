"""Reading a job's event stream (GET /v1/jobs/{id}/events) as an SSE client does."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Frame:
    id: int
    event: str
    data: dict[str, Any]


async def frames(lines: AsyncIterator[str]) -> AsyncIterator[Frame]:
    """SSE frames from a response's lines; comments (keep-alive pings) are skipped."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in fields:
                yield Frame(int(fields["id"]), fields.get("event", "message"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


async def read_events(
    api: httpx.AsyncClient, job_id: str, *, last_event_id: int | None = None, after: int | None = None, stop: int = 0
) -> list[Frame]:
    """The stream's frames until it closes, or until `stop` frames were read (then it hangs up)."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    params = {"after": after} if after is not None else {}
    got: list[Frame] = []
    async with api.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, params=params, timeout=90) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for frame in frames(resp.aiter_lines()):
            got.append(frame)
            if stop and len(got) == stop:
                break
    return got
