"""The shipped Keycloak realm export produces the claims the API checks."""

import json
from pathlib import Path

from api.auth import ROLE_RANK
from lodestone.settings import Settings

REALM = json.loads((Path(__file__).parent.parent / "deploy" / "keycloak" / "lodestone-realm.json").read_text())


def test_realm_has_the_roles_the_api_ranks():
    assert {r["name"] for r in REALM["roles"]["realm"]} == set(ROLE_RANK)
    assert Settings(_env_file=None).auth_realm == REALM["realm"]


def test_tokens_carry_tenant_id_and_the_api_audience():
    scope = next(s for s in REALM["clientScopes"] if s["name"] == "lodestone-tenant")
    mappers = {m["protocolMapper"]: m["config"] for m in scope["protocolMappers"]}
    tenant = mappers["oidc-usermodel-attribute-mapper"]
    assert tenant["claim.name"] == "tenant_id" and tenant["access.token.claim"] == "true"
    audience = mappers["oidc-audience-mapper"]
    assert audience["included.client.audience"] == Settings(_env_file=None).auth_audience
    client = next(c for c in REALM["clients"] if c["clientId"] == "lodestone-client")
    assert "lodestone-tenant" in client["defaultClientScopes"] and "roles" in client["defaultClientScopes"]
    assert client["attributes"]["access.token.signed.response.alg"] == "RS256" == REALM["defaultSignatureAlgorithm"]
