"""An OpenAI-compatible endpoint that never answers: each chat request is held open until the
client closes its connection (or `hold` seconds pass), as a model still generating would be.
It counts the requests it began and the ones whose client hung up on it."""

import select
import time
from http.server import BaseHTTPRequestHandler

from tests.standins.openai_server import OpenAIStandIn


class HangingLLM(OpenAIStandIn):
    def __init__(self, hold: float = 120.0) -> None:
        self.hold = hold
        self.began = 0
        self.hung_up = 0
        super().__init__()

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
