"""A webhook receiver that verifies Standard Webhooks signatures and counts deliveries.

The demo uses it as the customer's endpoint, and the tests as a counting stand-in that
can be told to fail its first N requests, or every request while `unavailable` is set, and
given a `before_answer(status)` hook, called (in the request's thread) after the request is
counted and before it is answered: a test can stall the answer there or break something.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import WebhookVerificationError

from lodestone.webhooks import verify


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int


class WebhookReceiver:
    def __init__(
        self,
        secret: str,
        fail_first: int = 0,
        fail_status: int = 503,
        before_answer: Callable[[int], None] | None = None,
        port: int = 0,
    ) -> None:
        self.secret, self.fail_first, self.fail_status = secret, fail_first, fail_status
        self.before_answer = before_answer
        self.received: list[Received] = []
        self.unavailable = False  # while set, every request gets fail_status
        self._lock = threading.Lock()
        self._event = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/lodestone"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    verify(receiver.secret, body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                with receiver._lock:
                    failing = receiver.unavailable or len(receiver.received) < receiver.fail_first
                    status = receiver.fail_status if failing else (204 if verified else 401)
                    receiver.received.append(Received(headers.get("webhook-id", ""), headers, body, verified, status))
                    receiver._event.notify_all()
                if receiver.before_answer is not None:
                    receiver.before_answer(status)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def successes(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def wait_for_success(self, timeout: float) -> Received | None:
        with self._lock:
            self._event.wait_for(lambda: any(200 <= r.status < 300 for r in self.received), timeout)
        ok = self.successes()
        return ok[0] if ok else None

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
