"""The dev token issuer: an RSA key pair under the data dir, its JWKS, and token minting.

It stands in for a Keycloak realm: tokens carry the same claims (iss, aud, exp,
tenant_id, realm_access.roles) and the JWKS is served at Keycloak's path.
"""

import json
import time
import uuid
from pathlib import Path

from jwcrypto import jwk, jwt

ROLES = ("admin", "editor", "viewer")


def key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / "jwt-signing.json"


def load_or_create_key(data_dir: Path) -> jwk.JWK:
    path = key_path(data_dir)
    if path.exists():
        return jwk.JWK.from_json(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = jwk.JWK.generate(kty="RSA", size=2048, kid=uuid.uuid4().hex, alg="RS256", use="sig")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key.export_private())
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


def jwks(data_dir: Path) -> dict:
    return {"keys": [json.loads(load_or_create_key(data_dir).export_public())]}


def mint_token(
    data_dir: Path,
    *,
    issuer: str,
    audience: str,
    tenant_id: str,
    roles: list[str],
    subject: str = "dev-user",
    ttl_seconds: int = 3600,
) -> str:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; choose from {', '.join(ROLES)}")
    key = load_or_create_key(data_dir)
    now = int(time.time())
    claims = {
        "iss": issuer, "aud": audience, "sub": subject, "iat": now, "nbf": now,
        "exp": now + ttl_seconds, "tenant_id": tenant_id, "realm_access": {"roles": roles},
        "azp": audience, "typ": "Bearer",
    }
    token = jwt.JWT(header={"alg": "RS256", "kid": key.key_id, "typ": "JWT"}, claims=claims)
    token.make_signed_token(key)
    return token.serialize()
