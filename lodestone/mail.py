"""Delivery emails over SMTP (aiosmtplib): the message, and the send, with its failures sorted
into permanent (a 5xx reply) and transient (a 4xx reply, a lost connection, a timeout)."""

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from lodestone.settings import Settings


class MailError(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class MailNotConfigured(MailError):
    """SMTP_HOST is not set: no attempt can succeed until an operator sets it."""


class MailRejected(MailError):
    """The server refused the message for good (a 5xx reply)."""


class MailUnavailable(MailError):
    """Worth another attempt: a 4xx reply, a refused or lost connection, a timeout."""


@dataclass(frozen=True)
class ArtifactLink:
    kind: str
    content_type: str
    size: int
    url: str


def message_id(delivery_id: str, sender: str) -> str:
    """The same for every attempt of one delivery, so a receiver can de-duplicate on it."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "lodestone.localhost"  # "Name <a@b>" too
    return f"<{delivery_id}@{domain}>"


def delivery_message(
    *,
    sender: str,
    to: str,
    delivery_id: str,
    job_id: str,
    workflow_key: str,
    when: datetime,
    links: list[ArtifactLink],
    expires: datetime,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, to
    msg["Subject"] = f"{workflow_key}: your results are ready"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id(delivery_id, sender)
    msg["X-Lodestone-Job-Id"] = job_id
    msg["X-Lodestone-Delivery-Id"] = delivery_id
    lines = [f"Job {job_id} ({workflow_key}) is done. Download its results:", ""]
    lines += [f"- {a.kind} ({a.content_type}, {a.size} bytes): {a.url}" for a in links]
    lines += ["", f"These links work until {format_datetime(expires)}."]
    # All ASCII (keys, ids and URLs), so 7bit keeps each link on one line for any reader.
    msg.set_content("\n".join(lines) + "\n", cte="7bit")
    return msg


def _code_error(code: int, text: str) -> MailError:
    kind = MailRejected if code >= 500 else MailUnavailable
    return kind(f"the mail server answered {code}: {text[:300]}", code)


async def send(settings: Settings, msg: EmailMessage) -> int:
    """Send one message; its reply code (250) when the server took it."""
    if not settings.smtp_host:
        raise MailNotConfigured("SMTP_HOST is not set, so email deliveries cannot be sent")
    try:
        await aiosmtplib.send(
            msg,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as e:
        refused = e.recipients[0]
        raise _code_error(refused.code, refused.message) from e
    except aiosmtplib.SMTPResponseException as e:
        raise _code_error(e.code, e.message) from e
    except aiosmtplib.SMTPNotSupported as e:
        raise MailRejected(f"the mail server cannot do what the settings ask: {e}") from e
    except (aiosmtplib.SMTPException, OSError) as e:
        raise MailUnavailable(f"{type(e).__name__}: {e}") from e
    return 250  # send() raises unless the server took the message after DATA
