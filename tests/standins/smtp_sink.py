"""An SMTP sink on 127.0.0.1 (aiosmtpd): the stand-in for a mail server, counting what it
takes by Message-ID.

The recipient's local part picks the answer to RCPT TO, so one sink covers every case:
  reject-*        550 (permanent)
  tempfail-N-*    451 for the first N attempts to that address, then accepted
  anything else   accepted
and `unavailable` (set it while the sink runs) answers 451 to every recipient.
"""

import threading
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from devstack.processes import free_port


@dataclass
class Sunk:
    message_id: str
    to: list[str]
    message: EmailMessage


class SMTPSink:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.unavailable = False
        self.messages: list[Sunk] = []
        self.rcpt_answers: list[tuple[str, int]] = []
        self._tries: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,  # noqa: N802
        rcpt_options: list[str],
    ) -> str:
        local = address.partition("@")[0].lower()
        with self._lock:
            self._tries[address] += 1
            tries = self._tries[address]
            if self.unavailable:
                code = 451
            elif local.startswith("reject-"):
                code = 550
            elif local.startswith("tempfail-") and tries <= int(local.split("-")[1]):
                code = 451
            else:
                code = 250
            self.rcpt_answers.append((address, code))
        if code == 550:
            return "550 5.1.1 mailbox unavailable (stand-in)"
        if code == 451:
            return "451 4.3.0 try again later (stand-in)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(Sunk(str(msg.get("Message-ID", "")), list(envelope.rcpt_tos), msg))
        return "250 2.0.0 accepted (stand-in)"

    def by_message_id(self) -> Counter[str]:
        with self._lock:
            return Counter(m.message_id for m in self.messages)

    def to(self, address: str) -> list[Sunk]:
        with self._lock:
            return [m for m in self.messages if address in m.to]

    def __enter__(self) -> "SMTPSink":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
