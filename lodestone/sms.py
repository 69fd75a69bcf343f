"""Sending an SMS through Twilio's Programmable Messaging API. The `twilio` package builds
and authenticates the request (its async client, `messages.create_async`); the request itself
goes out through Lodestone's guarded httpx client, to TWILIO_API_URL in place of
https://api.twilio.com (a stand-in in tests and `lodestone dev`)."""

from dataclasses import dataclass
from typing import Any

import httpx

from lodestone.netguard import OutboundRefused

TWILIO_API = "https://api.twilio.com"
INVALID_TO = 21211  # Twilio: the 'To' number is not a valid phone number
TIMEOUT_SECONDS = 15.0


class SmsError(Exception):
    """Twilio did not take the message. `retryable`: a later attempt may (429, 5xx, no answer)."""

    def __init__(self, message: str, *, status: int | None, code: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status, self.code, self.retryable = status, code, retryable


@dataclass(frozen=True)
class SmsAccount:
    account_sid: str
    auth_token: str
    sender: str | None = None  # an E.164 number of the account's, or
    messaging_service_sid: str | None = None  # a Messaging Service that picks one


async def send_sms(http: httpx.AsyncClient, base_url: str, account: SmsAccount, to: str, body: str) -> str:
    """Send `body` to `to`; the message's SID once Twilio has queued it."""
    # twilio (and requests under it) load on the first SMS, not with the worker: ~8 MB.
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    from lodestone.sms_http import GuardedTwilioHttp

    client = Client(account.account_sid, account.auth_token, http_client=GuardedTwilioHttp(http, base_url))
    kwargs: dict[str, Any] = {"to": to, "body": body}
    if account.messaging_service_sid:
        kwargs["messaging_service_sid"] = account.messaging_service_sid
    else:
        kwargs["from_"] = account.sender
    try:
        message = await client.messages.create_async(**kwargs)
    except TwilioRestException as e:
        retryable = e.status == 429 or e.status >= 500
        raise SmsError(
            f"Twilio answered {e.status} (code {e.code}): {e.msg}", status=e.status, code=e.code, retryable=retryable
        ) from e
    except OutboundRefused as e:
        raise SmsError(f"refused: {e}", status=None, code=None, retryable=False) from e
    except TimeoutError as e:
        raise SmsError(
            f"no answer from Twilio within {TIMEOUT_SECONDS:g} s", status=None, code=None, retryable=True
        ) from e
    except httpx.HTTPError as e:
        raise SmsError(f"Twilio unreachable: {type(e).__name__}: {e}", status=None, code=None, retryable=True) from e
    return str(message.sid)
