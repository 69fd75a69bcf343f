"""A local stand-in for the WhatsApp Cloud (Graph) API: it records every call it receives.

`lodestone demo` and the tests send replies and summary PDFs here instead of to Meta. It
answers the calls Lodestone makes, with Meta's response shapes: POST /{version}/{phone_id}/messages
(text, document, and the read + typing indicator) and POST /{version}/{phone_id}/media.
"""

import email.policy
import json
import threading
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class GraphCall:
    path: str
    authorized: bool
    body: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = 0.0


class GraphAPIStandIn:
    def __init__(self, token: str, version: str = "v21.0") -> None:
        self.token, self.version = token, version
        self.calls: list[GraphCall] = []
        self.media: dict[str, bytes] = {}
        self.fail_next: list[int] = []  # statuses to answer the next calls with
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{self.version}"

    def texts(self) -> list[GraphCall]:
        with self._lock:
            return [c for c in self.calls if c.body.get("type") == "text"]

    def documents(self) -> list[GraphCall]:
        with self._lock:
            return [c for c in self.calls if c.body.get("type") == "document"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                import time

                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                authorized = self.headers.get("authorization") == f"Bearer {standin.token}"
                body, files = standin._parse(self.headers.get("content-type", ""), raw)
                with standin._lock:
                    standin.calls.append(GraphCall(self.path, authorized, body, files, time.time()))
                    failing = standin.fail_next.pop(0) if standin.fail_next else None
                if not authorized:
                    return self._send(401, {"error": {"message": "Invalid OAuth access token.", "code": 190}})
                if failing:
                    return self._send(failing, {"error": {"message": "stand-in failure", "code": 2}})
                if self.path.endswith("/media"):
                    media_id = uuid.uuid4().hex
                    standin.media[media_id] = files.get("file", b"")
                    return self._send(200, {"id": media_id})
                if self.path.endswith("/messages"):
                    if body.get("status") == "read":
                        return self._send(200, {"success": True})
                    to = body.get("to", "")
                    return self._send(
                        200,
                        {
                            "messaging_product": "whatsapp",
                            "contacts": [{"input": to, "wa_id": to}],
                            "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}],
                        },
                    )
                return self._send(404, {"error": {"message": "unknown path", "code": 100}})

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    @staticmethod
    def _parse(content_type: str, raw: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + raw
            )
            body: dict[str, Any] = {}
            files: dict[str, bytes] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if part.get_filename():
                    files[str(name)] = payload
                else:
                    body[str(name)] = payload.decode()
            return body, files
        try:
            return json.loads(raw or b"{}"), {}
        except json.JSONDecodeError:
            return {"_raw": raw.decode(errors="replace")}, {}

    def __enter__(self) -> "GraphAPIStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
