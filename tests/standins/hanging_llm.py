"""An OpenAI-compatible endpoint that never answers: each chat request is held open until the
client closes its connection (or `hold` seconds pass), as a model still generating would be.
It counts the requests it began and the ones whose client hung up on it."""

import select
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HangingLLM:
    def __init__(self, hold: float = 120.0) -> None:
        self.hold = hold
        self.began = 0
        self.hung_up = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda *_a: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with standin._lock:
                    standin.began += 1
                deadline = time.monotonic() + standin.hold
                while time.monotonic() < deadline:
                    readable, _, _ = select.select([self.connection], [], [], 0.1)
                    if readable and not self.connection.recv(1):  # EOF: the client closed it
                        with standin._lock:
                            standin.hung_up += 1
                        self.close_connection = True
                        return
                self.send_error(504)

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> "HangingLLM":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
