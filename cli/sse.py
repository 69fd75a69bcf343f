"""A Server-Sent Events client: the frames of one response, and a stream followed across
dropped connections by reconnecting with `Last-Event-ID`, each event handed on once."""

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    id: str | None
    type: str
    data: str

    @property
    def seq(self) -> int | None:
        return int(self.id) if self.id is not None and self.id.isdigit() else None

    def json(self) -> dict[str, Any]:
        value = json.loads(self.data) if self.data else {}
        return value if isinstance(value, dict) else {"value": value}


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """The events in a stream of lines, as the SSE spec reads them: `field: value` lines,
    a blank line ends an event, a line starting with `:` is a comment (keep-alive pings)."""
    event_id: str | None = None
    event_type, data = "", []
    for line in lines:
        if not line:
            if data:
                yield Event(event_id, event_type or "message", "\n".join(data))
            event_type, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            event_type = value
        elif field == "id" and "\0" not in value:
            event_id = value  # the spec keeps the last id for later events too


class StreamError(Exception):
    """The server answered with an error status (not one a reconnect can mend)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class StreamLost(Exception):
    """The stream could not be re-opened within the reconnect budget."""


RETRYABLE_STATUS = frozenset({502, 503, 504})


def follow(
    http: httpx.Client,
    path: str,
    *,
    last: str | None = None,
    until: Callable[[Event], bool] = lambda _e: False,
    attempts: int = 8,
    idle_timeout: float = 60.0,
    backoff: float = 0.5,
    on_reconnect: Callable[[str | None, str], None] = lambda _last, _why: None,
) -> Iterator[Event]:
    """Every event of the stream at `path`, in order, each once: on a dropped connection (or
    a stream that ends before an event `until` accepts) it reconnects with `Last-Event-ID`
    set to the last id seen and skips anything at or below that id. `attempts` reconnects in a
    row without a new event, `backoff` seconds doubling up to 5 s between them. The server's
    keep-alive pings arrive well within `idle_timeout`: silence that long is a dead connection."""
    timeout = httpx.Timeout(idle_timeout, connect=10)
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last} if last is not None else {})
        progressed = False
        try:
            with http.stream("GET", path, headers=headers, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    if resp.status_code not in RETRYABLE_STATUS:
                        raise StreamError(resp)
                    why = f"HTTP {resp.status_code}"
                else:
                    for event in parse(resp.iter_lines()):
                        if _seen(event, last):
                            continue
                        if event.id is not None:
                            last = event.id
                        progressed = True
                        yield event
                        if until(event):
                            return
                    why = "the stream ended early"
        except httpx.TransportError as e:
            why = str(e) or type(e).__name__
        failures = 0 if progressed else failures + 1
        if failures > attempts:
            raise StreamLost(f"{path}: {why} ({attempts} reconnects gave up)")
        on_reconnect(last, why)
        time.sleep(min(backoff * 2 ** max(failures - 1, 0), 5.0))


def _seen(event: Event, last: str | None) -> bool:
    """True for an event at or below the last id handed on (the server resent it)."""
    if last is None or event.id is None:
        return False
    if event.seq is not None and last.isdigit():
        return event.seq <= int(last)
    return event.id == last
