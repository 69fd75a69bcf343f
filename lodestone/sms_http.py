"""twilio's async HTTP client interface over Lodestone's guarded httpx client (imported by
lodestone.sms on the first SMS, so the worker does not load twilio until then)."""

import asyncio
import logging

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from lodestone.netguard import check_url
from lodestone.sms import TIMEOUT_SECONDS, TWILIO_API, SmsError


class GuardedTwilioHttp(AsyncHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """twilio's async HTTP client interface over an httpx client, sending to `base_url`."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        super().__init__(logger=logging.getLogger("lodestone.sms"), is_async=True, timeout=timeout)
        self.http, self.base_url = http, base_url.rstrip("/")

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if not uri.startswith(TWILIO_API + "/"):
            raise SmsError(f"unexpected Twilio URL {uri[:80]!r}", status=None, code=None, retryable=False)
        url = check_url(self.base_url + uri.removeprefix(TWILIO_API))
        limit = timeout or self.timeout or TIMEOUT_SECONDS
        async with asyncio.timeout(limit):
            resp = await self.http.request(
                method,
                url,
                params=params,  # type: ignore[arg-type]  # twilio passes str values
                data=data,
                headers=headers,
                auth=auth,
                timeout=limit,
                follow_redirects=allow_redirects,
            )
        return Response(resp.status_code, resp.text, resp.headers)
