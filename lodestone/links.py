"""Signed, expiring artifact links: HMAC-SHA256 over (artifact id, tenant id, expires).

The key is LINK_SIGNING_KEY, or else one derived from a random file under DATA_DIR/keys,
created on first use, so links outlive restarts and the API and worker agree on it.
"""

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from lodestone.settings import Settings

_CONTEXT = b"lodestone/artifact-link/v1"
_EXPIRES = re.compile(r"[0-9]{1,12}")


class InvalidLink(Exception):
    """Expired, tampered with, or minted for another artifact or tenant. Callers answer all of
    these alike, so the reason is never worth telling the holder."""


@dataclass(frozen=True)
class Link:
    tenant_id: uuid.UUID
    expires: int
    sig: str

    def query(self) -> str:
        return urlencode({"expires": self.expires, "tenant": str(self.tenant_id), "sig": self.sig})


def key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / "link-signing.key"


def signing_key(settings: Settings) -> bytes:
    if settings.link_signing_key:
        return _derive(settings.link_signing_key.encode())
    return _file_key(key_path(settings.data_path))


def _derive(material: bytes) -> bytes:
    # Domain separation: the raw secret never signs anything directly.
    return hmac.new(material, _CONTEXT, hashlib.sha256).digest()


@lru_cache(maxsize=8)
def _file_key(path: Path) -> bytes:
    if not path.exists():
        _create(path)
    material = bytes.fromhex(path.read_text().strip())
    if len(material) < 32:
        raise RuntimeError(f"{path} holds fewer than 32 bytes of key; delete it to make a new one")
    return _derive(material)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    try:
        # link() never replaces: when the API and worker race, both end up with the first key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def sign(key: bytes, artifact_id: uuid.UUID, tenant_id: uuid.UUID, expires: int) -> str:
    message = f"{artifact_id}\n{tenant_id}\n{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(key: bytes, artifact_id: uuid.UUID, tenant_id: uuid.UUID, ttl_seconds: int, now: float | None = None) -> Link:
    expires = int(now if now is not None else time.time()) + ttl_seconds
    return Link(tenant_id, expires, sign(key, artifact_id, tenant_id, expires))


def download_url(api_url: str, artifact_id: uuid.UUID, link: Link) -> str:
    """The absolute URL that downloads the artifact without a bearer token."""
    return f"{api_url}/v1/artifacts/{artifact_id}/download?{link.query()}"


def delivered_link(settings: Settings, artifact_id: uuid.UUID, tenant_id: uuid.UUID, issued: float) -> tuple[str, int]:
    """(URL, expires) of the link a delivery carries: valid LINK_MAX_TTL_SECONDS from `issued`,
    so that every retry of the delivery sends the same link."""
    link = mint(signing_key(settings), artifact_id, tenant_id, settings.link_max_ttl_seconds, now=issued)
    return download_url(settings.api_url, artifact_id, link), link.expires


def verify(
    key: bytes,
    artifact_id: uuid.UUID,
    *,
    tenant: str,
    expires: str,
    sig: str,
    max_ttl_seconds: int,
    now: float | None = None,
) -> uuid.UUID:
    """The link's tenant id, when the query parameters are an unexpired link for this artifact."""
    if not _EXPIRES.fullmatch(expires):
        raise InvalidLink()
    try:
        tenant_id = uuid.UUID(tenant)
    except ValueError:
        raise InvalidLink() from None
    expected = sign(key, artifact_id, tenant_id, int(expires)).encode()
    if not hmac.compare_digest(expected, sig.encode()):
        raise InvalidLink()
    now = now if now is not None else time.time()
    # Beyond the max TTL means it was minted before LINK_MAX_TTL_SECONDS was lowered: refuse it too.
    if not now < int(expires) <= now + max_ttl_seconds:
        raise InvalidLink()
    return tenant_id
