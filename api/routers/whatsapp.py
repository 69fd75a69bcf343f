"""The WhatsApp Cloud API webhook: GET verifies the subscription; POST checks the signature,
parses the payload and hands it to services.conversations, which stores inbound messages
and delivery statuses and signal-with-starts each contact's ConversationWorkflow."""

import hashlib
import hmac
import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from api.deps import StateDep
from api.problems import Problem, responses, temporal_unavailable
from lodestone.whatsapp_payload import WebhookPayload
from services import conversations

router = APIRouter(prefix="/webhooks/whatsapp", tags=["whatsapp"])
log = logging.getLogger("lodestone.api.whatsapp")
MAX_BODY = 1024 * 1024  # Meta's payloads are a few KB


def configured(value: str | None, name: str) -> str:
    if not value:
        raise Problem(503, "whatsapp_not_configured", f"whatsapp is not configured ({name} is unset)")
    return value


@router.get(
    "",
    response_class=PlainTextResponse,
    responses=responses(
        403, 422, 503, descriptions={403: "wrong mode or token", 503: "WHATSAPP_VERIFY_TOKEN is unset"}
    ),
)
async def verify_subscription(
    state: StateDep,
    mode: Annotated[str, Query(alias="hub.mode")] = "",
    token: Annotated[str, Query(alias="hub.verify_token")] = "",
    challenge: Annotated[str, Query(alias="hub.challenge")] = "",
) -> PlainTextResponse:
    expected = configured(state.settings.whatsapp_verify_token, "WHATSAPP_VERIFY_TOKEN")
    if mode != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Problem(403, "forbidden", "the verify token or hub.mode is wrong")
    return PlainTextResponse(challenge)


async def read_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Problem(413, "payload_too_large", f"the webhook body is larger than {MAX_BODY} bytes")
    return bytes(body)


def check_signature(secret: str, raw: bytes, header: str | None) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not header or not hmac.compare_digest(expected.encode(), header.strip().lower().encode("latin-1")):
        raise Problem(401, "bad_signature", "X-Hub-Signature-256 is missing or does not match the body")


@router.post(
    "",
    responses=responses(
        400,
        401,
        413,
        422,
        503,
        descriptions={
            400: "not a WhatsApp webhook payload",
            401: "bad or missing signature",
            503: "WHATSAPP_APP_SECRET is unset, or Temporal did not answer",
        },
    ),
)
async def receive(
    request: Request, state: StateDep, signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None
) -> dict[str, str]:
    secret = configured(state.settings.whatsapp_app_secret, "WHATSAPP_APP_SECRET")
    raw = await read_body(request)
    check_signature(secret, raw, signature)
    try:
        payload = WebhookPayload.model_validate_json(raw)
    except ValidationError as e:
        raise Problem(400, "invalid_payload", "the body is not a WhatsApp webhook payload") from e
    texts = await conversations.store_inbound(state.engine, payload.routed_values())
    try:
        for msg in texts:
            await conversations.signal(state.temporal, state.settings, msg)
    except Exception as e:
        log.warning("could not signal the conversation: %s", type(e).__name__, extra={"tenant_id": msg.tenant_id})
        raise temporal_unavailable("could not hand the message to its conversation") from e
    return {"status": "ok"}
