"""A local stand-in for Twilio's Programmable Messaging API (POST
/2010-04-01/Accounts/{AccountSid}/Messages.json): it checks HTTP basic auth against the one
account it knows, records every message it accepts, and answers as Twilio does, including
its error answers: an invalid 'To' (400, code 21211) for the numbers in `invalid`, and the
statuses queued in `script[to]` (429, 5xx) before a number's message is accepted."""

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

INVALID_NUMBER = "+15005550001"  # Twilio's own test number for an invalid 'To'


@dataclass
class Sms:
    account_sid: str
    to: str
    sender: str
    body: str
    at: float


class TwilioStandIn:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[Sms] = []
        self.answers: list[tuple[str, int]] = []  # (to, status) of every request, in order
        self.script: dict[str, list[int]] = {}
        self.invalid = {INVALID_NUMBER}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def to(self, number: str) -> list[Sms]:
        with self._lock:
            return [m for m in self.messages if m.to == number]

    def statuses(self, number: str) -> list[int]:
        with self._lock:
            return [status for to, status in self.answers if to == number]

    def __enter__(self) -> "TwilioStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, auth: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if auth != f"Basic {expected}":
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        to = form.get("To", "")
        with self._lock:
            queued = self.script.get(to) or []
            status = queued.pop(0) if queued else 0
            if status:
                self.answers.append((to, status))
                return status, {"code": 20429 if status == 429 else 20500, "message": "stand-in", "status": status}
            if to in self.invalid:
                self.answers.append((to, 400))
                return 400, {
                    "code": 21211,
                    "message": f"The 'To' number {to} is not a valid phone number.",
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                    "status": 400,
                }
            sender = form.get("From") or form.get("MessagingServiceSid", "")
            self.messages.append(Sms(self.account_sid, to, sender, form.get("Body", ""), time.monotonic()))
            self.answers.append((to, 201))
        sid = "SM" + uuid.uuid4().hex
        return 201, {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From"),
            "body": form.get("Body"),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = parse_qs(self.rfile.read(length).decode())
                form = {k: v[0] for k, v in raw.items()}
                status, body = standin._answer(self.path, self.headers.get("Authorization", ""), form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
