"""Standard Webhooks signing (webhook-id, webhook-timestamp, webhook-signature)."""

import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

_NAMESPACE = uuid.UUID("8f4b3c7e-2f7a-4a51-9d0e-6c1b2a9e4d10")


def webhook_id(job_id: str, target_index: int) -> str:
    """Stable for a (job, target) pair, so every retry carries the same id."""
    return "msg_" + uuid.uuid5(_NAMESPACE, f"{job_id}:{target_index}").hex


def signed_headers(secret: str, msg_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
    ts = now or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(ts.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, ts, body),
        "content-type": "application/json",
    }


def verify(secret: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """Raises standardwebhooks.WebhookVerificationError when the signature is wrong."""
    payload: dict[str, Any] = Webhook(secret).verify(body, headers)
    return payload
