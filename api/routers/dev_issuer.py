"""The dev issuer's JWKS at Keycloak's path, mounted only when AUTH_DEV_ISSUER is on."""

from fastapi import APIRouter

from api.deps import StateDep
from api.problems import not_found
from lodestone.signing_keys import jwks

router = APIRouter(tags=["health"])


@router.get("/realms/{realm}/protocol/openid-connect/certs", include_in_schema=False)
async def dev_jwks(realm: str, state: StateDep) -> dict:
    if realm != state.settings.auth_realm:
        raise not_found("realm", realm)
    return jwks(state.settings.data_path)
