"""A small client for the WhatsApp Cloud (Graph) API calls Lodestone makes."""

from typing import Any

import httpx

from lodestone.settings import Settings


class GraphError(Exception):
    """The Graph API failed; `retryable` says whether trying again can help."""

    def __init__(self, message: str, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable, self.status = retryable, status


class WhatsAppClient:
    """Each call takes the access token to send with: the tenant's own (by reference), or the
    platform's WHATSAPP_ACCESS_TOKEN."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http, self.base = http, settings.whatsapp_graph_url.rstrip("/")

    async def _post(self, token: str | None, path: str, **kwargs: Any) -> dict[str, Any]:
        if not token:
            raise GraphError(
                "no WhatsApp access token: set WHATSAPP_ACCESS_TOKEN or the tenant's whatsapp_token", retryable=False
            )
        headers = {"Authorization": f"Bearer {token}"}
        try:
            resp = await self.http.post(f"{self.base}/{path}", headers=headers, timeout=30, **kwargs)
        except httpx.HTTPError as e:
            raise GraphError(f"Graph API unreachable: {e}", retryable=True) from e
        if resp.status_code >= 400:
            retryable = resp.status_code >= 500 or resp.status_code == 429
            raise GraphError(f"Graph API answered {resp.status_code}: {resp.text[:300]}", retryable, resp.status_code)
        data: dict[str, Any] = resp.json()
        return data

    async def typing(self, token: str | None, phone_number_id: str, message_id: str) -> None:
        """Mark the message read and show the typing indicator while the reply is written."""
        await self._post(
            token,
            f"{phone_number_id}/messages",
            json={
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": message_id,
                "typing_indicator": {"type": "text"},
            },
        )

    async def send_text(self, token: str | None, phone_number_id: str, to: str, body: str) -> str:
        data = await self._post(
            token,
            f"{phone_number_id}/messages",
            json={
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"preview_url": False, "body": body[:4096]},
            },
        )
        return str(data["messages"][0]["id"])

    async def upload_media(self, token: str | None, phone_number_id: str, data: bytes, filename: str, mime: str) -> str:
        resp = await self._post(
            token,
            f"{phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": (filename, data, mime)},
        )
        return str(resp["id"])

    async def send_document(
        self, token: str | None, phone_number_id: str, to: str, media_id: str, filename: str, caption: str
    ) -> str:
        data = await self._post(
            token,
            f"{phone_number_id}/messages",
            json={
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "document",
                "document": {"id": media_id, "filename": filename, "caption": caption},
            },
        )
        return str(data["messages"][0]["id"])
