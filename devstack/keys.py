"""The dev token issuer: token minting with the key pair under the data dir (lodestone.signing_keys).

It stands in for a Keycloak realm: tokens carry the same claims (iss, aud, exp,
tenant_id, realm_access.roles) and the JWKS is served at Keycloak's path.
"""

import time
from pathlib import Path

from jwcrypto import jwt

from lodestone.signing_keys import jwks, key_path, load_or_create_key  # noqa: F401 - the stack and tests take them here

ROLES = ("admin", "editor", "viewer")


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
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "tenant_id": tenant_id,
        "realm_access": {"roles": roles},
        "azp": audience,
        "typ": "Bearer",
    }
    token = jwt.JWT(header={"alg": "RS256", "kid": key.key_id, "typ": "JWT"}, claims=claims)
    token.make_signed_token(key)
    return token.serialize()
