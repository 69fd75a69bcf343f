"""The dev issuer's RSA key pair under the data dir and its JWKS. The API serves the JWKS at
Keycloak's path when AUTH_DEV_ISSUER is on; devstack.keys mints tokens with the same key."""

import json
import uuid
from pathlib import Path
from typing import Any

from jwcrypto import jwk


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


def jwks(data_dir: Path) -> dict[str, Any]:
    return {"keys": [json.loads(load_or_create_key(data_dir).export_public())]}
