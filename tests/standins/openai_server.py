"""A local OpenAI-compatible HTTP server: the stand-in for a real LLM provider.

Behaviour is picked by the request's model name, so one server covers every case:
  ok-*            a normal answer that echoes the prompt's first words
  empty           an empty answer
  refuse          a refusal
  ratelimit       429 with Retry-After: 7
  error500        500
  flaky-N         500 for the first N requests, then answers (per server)
  slow            sleeps past any sane client timeout before answering
and any model a test puts in `broken` answers like `empty` until it is taken out again
(a fault an operator can fix).
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIStandIn:
    def __init__(self, slow_seconds: float = 5.0) -> None:
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, Any]] = []
        self.broken: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A client that timed out has closed its socket; the late answer's broken pipe is expected.
        self._server.handle_error = lambda *_a: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def count(self, model: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.get("model") == model)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                req["_authorization"] = self.headers.get("authorization")
                with standin._lock:
                    standin.requests.append(req)
                    seen = sum(1 for r in standin.requests if r.get("model") == req.get("model"))
                model = str(req.get("model", ""))
                prompt = " ".join(str(m.get("content", "")) for m in req.get("messages", []))
                err = {"error": {"message": "stand-in error", "type": "server_error"}}
                if model == "ratelimit":
                    return self._send(
                        429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"retry-after": "7"}
                    )
                if model == "error500":
                    return self._send(500, err)
                if model.startswith("flaky-") and seen <= int(model.split("-", 1)[1]):
                    return self._send(500, err)
                if model == "slow":
                    time.sleep(standin.slow_seconds)
                content: str | None = f"stand-in answer to: {' '.join(prompt.split()[:12])}"
                refusal = None
                if model == "empty" or model in standin.broken:
                    content = ""
                if model == "refuse":
                    content, refusal = None, "I can't help with that."
                return self._send(
                    200,
                    {
                        "id": "chatcmpl-standin",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content, "refusal": refusal},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": len(prompt.split()),
                            "completion_tokens": 7,
                            "total_tokens": len(prompt.split()) + 7,
                        },
                    },
                )

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> "OpenAIStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
