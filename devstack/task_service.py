"""A stand-in for a tenant's own service, the endpoint a state machine's http Tasks call.

Each route (the request's path without its outer slashes) answers from its script: a
function of the request's JSON, or a list of answers used up in order. In a list, the first
answer left whose ``match`` the request's body contains answers; the last one left repeats,
unless the service is built with ``repeat_last=False``. An answer is a JSON body (200),
``(status, body)`` or a Reply (status, headers, a JSON body or raw bytes). A route with no
script answers from ``otherwise`` when given, else 404; a list with nothing left for the
request answers 500 ScriptExhausted. Every request is recorded as a Call, with whether its
Standard Webhooks signature verified; those no script answered are in ``unanswered`` too.
"""

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standardwebhooks import WebhookVerificationError

from lodestone.webhooks import verify

Answer = Any  # a JSON body, (status, body), or a Reply
Script = Callable[[Any], Answer] | list[Answer]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    match: Any = None  # in a list: answers only a request whose body contains this (None: any)


@dataclass
class Call:
    route: str
    body: Any  # the request's JSON; its text when it is not JSON, None when it is empty
    headers: dict[str, str]  # names in lower case
    verified: bool
    status: int = 0
    method: str = "POST"
    query: dict[str, list[str]] = field(default_factory=dict)
    raw: bytes = b""


def contains(value: Any, pattern: Any) -> bool:
    """Whether ``value`` contains ``pattern``: objects as subsets, everything else equal."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and contains(value[k], v) for k, v in pattern.items())
    return bool(value == pattern)


def _reply(answer: Answer) -> Reply:
    if isinstance(answer, Reply):
        return answer
    if isinstance(answer, tuple):
        return Reply(int(answer[0]), answer[1])
    return Reply(200, answer)


class TaskService:
    def __init__(
        self,
        secret: str | None,
        routes: dict[str, Script],
        port: int = 0,
        *,
        otherwise: Script | None = None,
        repeat_last: bool = True,
    ) -> None:
        """`secret`: the tenant's webhook secret the calls are signed with (None: not checked).
        The service uses up its own copies of the lists in `routes`."""
        self.secret, self.otherwise, self.repeat_last = secret, otherwise, repeat_last
        self.routes = {route: list(s) if isinstance(s, list) else s for route, s in routes.items()}
        self.calls: list[Call] = []
        self.unanswered: list[Call] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def calls_to(self, route: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.route == route]

    def left(self) -> dict[str, list[Answer]]:
        """The answers no request used, by route (routes with none left are omitted)."""
        with self._lock:
            return {route: list(s) for route, s in self.routes.items() if isinstance(s, list) and s}

    def serve(self, call: Call) -> Reply:
        """Records the call and answers it."""
        if self.secret is not None and not call.verified:
            reply = Reply(401, {"error": "Unauthorized", "cause": "the signature did not verify"})
        else:
            reply = self._answer(call)
        with self._lock:
            call.status = reply.status
            self.calls.append(call)
        return reply

    def _answer(self, call: Call) -> Reply:
        script = self.routes.get(call.route, self.otherwise)
        if callable(script):
            return _reply(script(call.body))
        reply = None if script is None else self._take(script, call.body)
        if reply is not None:
            return reply
        with self._lock:
            self.unanswered.append(call)
        if script is None:
            return Reply(404, {"error": "NotFound", "cause": f"no route {call.route!r}"})
        cause = f"the script for /{call.route} has no answer left for this request"
        return Reply(500, {"error": "ScriptExhausted", "cause": cause})

    def _take(self, answers: list[Answer], body: Any) -> Reply | None:
        """The first answer left that matches the body, used up unless it is the last and repeats."""
        with self._lock:
            for i, answer in enumerate(answers):
                reply = _reply(answer)
                if reply.match is None or contains(body, reply.match):
                    if len(answers) > 1 or not self.repeat_last:
                        del answers[i]
                    return reply
        return None

    def __enter__(self) -> "TaskService":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a caller that gave up waiting
            super().handle_error(request, client_address)


def _handler(service: TaskService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            url = urlsplit(self.path)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            verified = _verified(service.secret, raw, headers)
            call = Call(url.path.strip("/"), body, headers, verified, 0, self.command, parse_qs(url.query), raw)
            reply = service.serve(call)
            is_bytes = isinstance(reply.body, bytes)
            out = reply.body if is_bytes else json.dumps(reply.body).encode()
            kind = "application/octet-stream" if is_bytes else "application/json"
            self.send_response(reply.status)
            named = {k.lower(): v for k, v in reply.headers.items()}
            for name, value in {"content-type": kind, **named, "content-length": str(len(out))}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815

        def log_message(self, *args: object) -> None:
            return None

    return Handler


def _verified(secret: str | None, raw: bytes, headers: dict[str, str]) -> bool:
    if secret is None:
        return False
    try:
        verify(secret, raw, headers)
    except WebhookVerificationError:
        return False
    return True
