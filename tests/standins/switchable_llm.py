"""The OpenAI-compatible stand-in, able to go down and come back on the same port: while it
is down, new connections are refused and pooled keep-alive connections are dropped unanswered,
as when a provider's endpoint disappears. `latency` makes each answer take that long, as a
real model's does."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.standins.openai_server import OpenAIStandIn


class SwitchableOpenAIStandIn(OpenAIStandIn):
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.down = False
        self.dropped = 0
        super().__init__()
        self.port = self._server.server_address[1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(super()._handler()):  # type: ignore[misc]
            def do_POST(self) -> None:  # noqa: N802
                if standin.down:  # a keep-alive connection opened before the outage
                    standin.dropped += 1
                    self.close_connection = True
                    return
                time.sleep(standin.latency)
                super().do_POST()

        return Handler

    def go_down(self) -> None:
        self.down = True
        self._server.shutdown()
        self._server.server_close()

    def come_up(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        server.handle_error = lambda *_a: None  # type: ignore[method-assign]
        self._server, self._thread = server, threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        self.down = False

    def __exit__(self, *exc: object) -> None:
        if not self.down:
            super().__exit__(*exc)
