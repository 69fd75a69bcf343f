"""A webhook receiver that answers 200 at once and then trickles its body a byte at a time,
each byte well inside any read timeout, for longer than a delivery may take: a client that
bounds only each read never ends the request. It counts requests, notes when each starts
and ends (the end is when it finishes writing or finds the client gone), and the most it
had in flight at once."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TrickleReceiver:
    def __init__(self, body_bytes: int = 400, every: float = 0.1) -> None:
        self.body_bytes, self.every = body_bytes, every
        self.spans: list[list[float]] = []  # [start, end]; end 0.0 while in flight
        self.webhook_ids: list[str] = []
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda *_a: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/trickle"

    def in_flight(self) -> int:
        with self._lock:
            return self.in_flight_locked()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                span = [time.monotonic(), 0.0]
                with receiver._lock:
                    receiver.spans.append(span)
                    receiver.webhook_ids.append(self.headers.get("webhook-id", ""))
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight_locked())
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/plain")
                    self.send_header("content-length", str(receiver.body_bytes))
                    self.end_headers()
                    self.wfile.flush()
                    for _ in range(receiver.body_bytes):
                        time.sleep(receiver.every)
                        self.wfile.write(b".")
                        self.wfile.flush()
                except OSError:  # the client went away
                    pass
                finally:
                    with receiver._lock:
                        span[1] = time.monotonic()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def in_flight_locked(self) -> int:
        return sum(1 for _, end in self.spans if not end)

    def __enter__(self) -> "TrickleReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
