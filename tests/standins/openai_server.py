"""A local OpenAI-compatible HTTP server: the stand-in for a real LLM provider.

Behaviour is picked by the request's model name, so one server covers every case:
  ok-*            a normal answer that echoes the prompt's first words
  empty           an empty answer
  refuse          a refusal
  ratelimit       429 with Retry-After: 7
  error500        500
  flaky-N         500 for the first N requests, then answers (per server)
  slow            sleeps past any sane client timeout before answering
  trickle-*       as ok-*, streamed (when asked to stream) with a pause of trickle_seconds per piece
  cutoff-N-*      streamed: the first N requests send three pieces of the answer and hang up
  hold-N-*        as ok-*, after holding the request N milliseconds (max_in_flight tells how
                  many requests of one model were held at once)
  json-N-*        JSON: the first N requests (per server) answer {"off_schema": true}, later
                  ones the JSON object the messages give after `JSON:` (up to the line's end)
A request with `"stream": true` is answered as OpenAI streams: SSE chunks of the answer, a word
at a time, the last with finish_reason; a usage chunk when stream_options.include_usage; [DONE].
and any model a test puts in `broken` answers like `empty` until it is taken out again
(a fault an operator can fix).
"""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIStandIn:
    def __init__(self, slow_seconds: float = 5.0, trickle_seconds: float = 0.05) -> None:
        self.slow_seconds, self.trickle_seconds = slow_seconds, trickle_seconds
        self.requests: list[dict[str, Any]] = []
        self.broken: set[str] = set()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}  # per model: the most of its requests answered at once
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
                req["_at"] = time.time()
                model = str(req.get("model", ""))
                with standin._lock:
                    standin.in_flight[model] = now = standin.in_flight.get(model, 0) + 1
                    standin.max_in_flight[model] = max(now, standin.max_in_flight.get(model, 0))
                try:
                    self._answer(req)
                finally:
                    with standin._lock:
                        standin.in_flight[model] -= 1

            def _answer(self, req: dict[str, Any]) -> None:
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
                if model.startswith("hold-"):
                    time.sleep(int(model.split("-")[1]) / 1000)
                content: str | None = f"stand-in answer to: {' '.join(prompt.split()[:12])}"
                refusal = None
                if model == "empty" or model in standin.broken:
                    content = ""
                if model == "refuse":
                    content, refusal = None, "I can't help with that."
                if model.startswith("json-"):
                    texts = "\n".join(str(m.get("content", "")) for m in req.get("messages", []))
                    given = re.search(r"JSON: *([^\n]*)", texts)
                    good = seen > int(model.split("-")[1]) and given is not None
                    content = given.group(1).strip() if good and given else '{"off_schema": true}'
                usage = {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": 7,
                    "total_tokens": len(prompt.split()) + 7,
                }
                if req.get("stream"):
                    return self._stream(req, content, refusal, usage, seen)
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
                        "usage": usage,
                    },
                )

            def _stream(
                self, req: dict[str, Any], content: str | None, refusal: str | None, usage: Any, seen: int
            ) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                model = str(req.get("model", ""))
                pause = standin.trickle_seconds if model.startswith("trickle-") else 0.0
                pieces: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
                pieces += [{"content": w} for w in re.findall(r"\S+\s*|\s+", content or "")]
                if refusal:
                    pieces.append({"refusal": refusal})
                cut = model.startswith("cutoff-") and seen <= int(model.split("-")[1])
                for i, delta in enumerate(pieces):
                    if cut and i == 4:  # the role and three pieces sent: the connection drops
                        self.close_connection = True
                        return
                    last = i == len(pieces) - 1
                    choice = {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
                    self._chunk({"model": model, "choices": [choice], "usage": None})
                    time.sleep(pause)
                if (req.get("stream_options") or {}).get("include_usage"):
                    self._chunk({"model": model, "choices": [], "usage": usage})
                self._write(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, body: dict[str, Any]) -> None:
                body = {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    **body,
                }
                self._write(f"data: {json.dumps(body)}\n\n".encode())

            def _write(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> "OpenAIStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
