"""Signed approval links: a person approves or rejects a callback Task without a bearer token.
The link names the task token and carries the tenant, the time it expires and the question
shown on its page, all under one HMAC-SHA256 with a key derived from the link-signing key
(lodestone/links.py), so none of them can be changed, and a link minted for one tenant's
token never works for another tenant. The token's row must also say it was issued with an
approval link (`task_tokens.approval_link`), and still wait: a link is used once."""

import base64
import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from lodestone import links
from lodestone.settings import Settings

_CONTEXT = b"lodestone/approval-link/v1"
_EXPIRES = re.compile(r"[0-9]{1,12}")
QUESTION_MAX = 500  # characters of the question the link carries
PREFIX = "/v1/approvals"
APPROVE, REJECT = "approve", "reject"


class InvalidApprovalLink(Exception):
    """Tampered with, signed for another token or tenant, or expired; the holder is told no more."""


@dataclass(frozen=True)
class ApprovalLink:
    token: str
    tenant_id: uuid.UUID
    expires: int
    question: str
    sig: str

    def query(self) -> str:
        return urlencode({"tenant": str(self.tenant_id), "expires": self.expires, "q": self.question, "sig": self.sig})

    def url(self, api_url: str, action: str | None = None) -> str:
        """The page's address (GET), or one action's (POST: approve or reject)."""
        tail = f"/{action}" if action else ""
        return f"{api_url}{PREFIX}/{quote(self.token, safe='')}{tail}?{self.query()}"


def approval_key(settings: Settings) -> bytes:
    return hmac.new(links.signing_key(settings), _CONTEXT, hashlib.sha256).digest()


def sign(key: bytes, token: str, tenant_id: uuid.UUID, expires: int, question: str) -> str:
    message = "\n".join([token, str(tenant_id), str(expires), question]).encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=").decode()


def mint(key: bytes, token: str, tenant_id: uuid.UUID, expires: int, question: str) -> ApprovalLink:
    question = question[:QUESTION_MAX]
    return ApprovalLink(token, tenant_id, expires, question, sign(key, token, tenant_id, expires, question))


def verify(
    key: bytes, token: str, *, tenant: str, expires: str, q: str, sig: str, now: float | None = None
) -> ApprovalLink:
    """The link, when the query parameters are an unexpired link for this token."""
    if not _EXPIRES.fullmatch(expires) or len(q) > QUESTION_MAX:
        raise InvalidApprovalLink()
    try:
        tenant_id = uuid.UUID(tenant)
    except ValueError:
        raise InvalidApprovalLink() from None
    expected = sign(key, token, tenant_id, int(expires), q)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise InvalidApprovalLink()
    if int(expires) <= (now if now is not None else time.time()):
        raise InvalidApprovalLink()
    return ApprovalLink(token, tenant_id, int(expires), q, sig)
