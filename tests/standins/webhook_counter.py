"""A webhook receiver that counts accepted deliveries per webhook-id (Standard Webhooks
signatures checked), and answers 503 to everything while `unavailable` is set."""

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import WebhookVerificationError

from lodestone.webhooks import verify


class CountingWebhookReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.unavailable = False
        self.accepted: Counter[str] = Counter()  # webhook-id -> 2xx answers given
        self.refused = 0  # 503s answered while unavailable
        self.unverified = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/faults"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    if receiver.unavailable:
                        status = 503
                        receiver.refused += 1
                    else:
                        try:
                            verify(receiver.secret, body, headers)
                            status = 204
                            receiver.accepted[headers.get("webhook-id", "")] += 1
                        except WebhookVerificationError:
                            status = 401
                            receiver.unverified += 1
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.accepted)

    def __enter__(self) -> "CountingWebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
