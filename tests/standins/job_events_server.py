"""A stand-in for the API's `GET /v1/jobs/{id}/events`: serves a scripted list of events as
Server-Sent Events the way sse-starlette frames them (CRLF lines, `: ping` comments, chunked
transfer), resumes after the `Last-Event-ID` it is sent, and can break its connections on
purpose: the first `drops` connections are cut mid-stream after `drop_after` events (no
final chunk), and with `overlap` it resends that many events before the one asked for, as a
server replaying too much would."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JobEventsStandIn:
    def __init__(self, events: list[tuple[str, dict[str, Any]]], *, drops: int = 0, drop_after: int = 3) -> None:
        self.events = events  # (type, data); the seq is the index + 1
        self.drops, self.drop_after, self.overlap = drops, drop_after, 0
        self.last_event_ids: list[str | None] = []  # the header of each request, in order
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda *_a: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_GET(self) -> None:  # noqa: N802
                if not re.fullmatch(r"/v1/jobs/[^/?]+/events", self.path):
                    self.send_error(404)
                    return
                last = self.headers.get("last-event-id")
                with standin._lock:
                    standin.last_event_ids.append(last)
                    drop = standin.drops > 0
                    standin.drops -= 1 if drop else 0
                start = max(int(last or 0) - standin.overlap, 0)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                self._chunk(": ping - keep-alive\r\n\r\n")
                for sent, (kind, data) in enumerate(standin.events[start:]):
                    if drop and sent == standin.drop_after:
                        self.close_connection = True
                        return  # cut: no terminating chunk
                    self._chunk(f"id: {start + sent + 1}\r\nevent: {kind}\r\ndata: {json.dumps(data)}\r\n\r\n")
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> "JobEventsStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
