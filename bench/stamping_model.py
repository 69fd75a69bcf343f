"""A streaming OpenAI-compatible chat model for bench/job_events.py: every answer is `chunks`
chunks, `interval` seconds apart, each carrying the time.time() it was sent as `[t=<secs>] `;
`stamps(text)` reads them back. Without `stream` it answers the whole text at once."""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STAMP = re.compile(r"\[t=(\d+\.\d+)\]")


def stamps(text: str) -> list[float]:
    return [float(s) for s in STAMP.findall(text)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # every stream connects at once; the default backlog of 5 resets some


class StampingModel:
    def __init__(self, chunks: int, interval: float) -> None:
        self.chunks, self.interval = chunks, interval
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.handle_error = lambda *_a: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _frame(self, body: dict[str, object] | str) -> None:
                data = f"data: {body if isinstance(body, str) else json.dumps(body)}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_POST(self) -> None:  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                base = {"id": "chatcmpl-stamp", "created": int(time.time()), "model": req.get("model", "stamp")}
                usage = {"prompt_tokens": 1, "completion_tokens": model.chunks, "total_tokens": model.chunks + 1}
                if not req.get("stream"):
                    text = "".join(f"[t={time.time():.6f}] " for _ in range(model.chunks))
                    message = {"role": "assistant", "content": text}
                    body = base | {"object": "chat.completion", "usage": usage}
                    body["choices"] = [{"index": 0, "finish_reason": "stop", "message": message}]
                    data = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                chunk = base | {"object": "chat.completion.chunk"}
                for i in range(model.chunks):
                    if i:
                        time.sleep(model.interval)
                    delta = {"role": "assistant", "content": f"[t={time.time():.6f}] "}
                    self._frame(chunk | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                self._frame(chunk | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._frame(chunk | {"choices": [], "usage": usage})
                self._frame("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> "StampingModel":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
