"""A scripted HTTP stand-in for the services a real-world state machine's Tasks call.

Each route (the first path segment, ``/<route>``) answers from its script, a list of
entries used once each, in order. An entry is either a JSON body answered with 200, or a
reply object whose keys are among ``status``, ``body`` and ``match`` (``body`` required):
``status`` defaults to 200, and ``match`` (a JSON value the request body must contain,
objects compared as subsets) makes the entry answer only a matching request, so
concurrent Map iterations or Parallel branches can share a route. The first unused entry
that matches answers; a request no entry answers gets a 500 ``ScriptExhausted`` error and is
recorded as unanswered. Every request is recorded.
"""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REPLY_KEYS = {"status", "body", "match"}


@dataclass
class Request:
    route: str
    method: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, None when there was none


def is_reply(entry: Any) -> bool:
    return isinstance(entry, dict) and "body" in entry and set(entry) <= _REPLY_KEYS


def contains(value: Any, pattern: Any) -> bool:
    """Whether ``value`` contains ``pattern``: objects as subsets, everything else equal."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and contains(value[k], v) for k, v in pattern.items())
    return bool(value == pattern)


class ScriptedEndpoint:
    def __init__(self, script: dict[str, list[Any]]) -> None:
        self._left = {route: list(entries) for route, entries in script.items()}
        self.requests: list[Request] = []
        self.unanswered: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "ScriptedEndpoint":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def left(self) -> dict[str, list[Any]]:
        """The entries no request used, by route (routes with none left are omitted)."""
        with self._lock:
            return {route: entries for route, entries in self._left.items() if entries}

    def bodies(self, route: str) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests if r.route == route]

    def answer(self, request: Request) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            entries = self._left.get(request.route, [])
            for i, entry in enumerate(entries):
                if not is_reply(entry) or "match" not in entry or contains(request.body, entry["match"]):
                    del entries[i]
                    if is_reply(entry):
                        return int(entry.get("status", 200)), entry["body"]
                    return 200, entry
            self.unanswered.append(request)
        cause = f"the script for /{request.route} has no answer left for this request"
        return 500, {"error": "ScriptExhausted", "cause": cause}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw) if raw else None
                route = self.path.split("?", 1)[0].strip("/").split("/", 1)[0]
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer = endpoint.answer(Request(route, self.command, headers, body))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, *args: object) -> None:
                return None

        return Handler
