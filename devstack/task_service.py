"""A stand-in for a tenant's own service, the endpoint a state machine's http Tasks call.

Each route answers from a script: a function of the request's JSON, or a list of answers
given in order (the last one repeats). An answer is a JSON body (200) or ``(status, body)``.
Every request is recorded with whether its Standard Webhooks signature verified.
"""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import WebhookVerificationError

from lodestone.webhooks import verify

Answer = Any  # a JSON body, or (status, body)
Script = Callable[[Any], Answer] | list[Answer]


@dataclass
class Call:
    route: str
    body: Any
    headers: dict[str, str]
    verified: bool
    status: int


class TaskService:
    def __init__(self, secret: str | None, routes: dict[str, Script], port: int = 0) -> None:
        """`secret`: the tenant's webhook secret the calls are signed with (None: not checked)."""
        self.secret, self.routes = secret, routes
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def calls_to(self, route: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.route == route]

    def _answer(self, route: str, body: Any) -> tuple[int, Any]:
        script = self.routes.get(route)
        if script is None:
            return 404, {"error": "NotFound", "cause": f"no route {route!r}"}
        if callable(script):
            answer = script(body)
        else:
            answered = sum(c.route == route for c in self.calls)
            answer = script[min(answered, len(script) - 1)]
        if isinstance(answer, tuple):
            return int(answer[0]), answer[1]
        return 200, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = False
                if service.secret is not None:
                    try:
                        verify(service.secret, raw, headers)
                        verified = True
                    except WebhookVerificationError:
                        verified = False
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                route = self.path.split("?", 1)[0].strip("/")
                with service._lock:
                    if service.secret is not None and not verified:
                        status, answer = 401, {"error": "Unauthorized", "cause": "the signature did not verify"}
                    else:
                        status, answer = service._answer(route, body)
                    service.calls.append(Call(route, body, headers, verified, status))
                out = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _serve  # noqa: N815

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> "TaskService":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
