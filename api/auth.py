"""Bearer tokens from a Keycloak realm (or the dev issuer at Keycloak's path), checked
against the realm's JWKS: RS256 only, with iss, aud, exp and nbf.

A token that passed is remembered (keyed by its SHA-256, at most TOKEN_CACHE_SIZE, least
recently used dropped first) until its exp, and only while the key set it was checked
against is the current one: a re-fetched JWKS that drops a key refuses that key's tokens
from then on, as an uncached check would."""

import asyncio
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import httpx
from jwcrypto import jwk
from jwcrypto.common import JWException
from keycloak import KeycloakOpenID

from api.problems import Problem
from lodestone.settings import Settings

REFETCH_MIN_INTERVAL = 30.0
LEEWAY = 30
TOKEN_CACHE_SIZE = 10_000
ROLE_RANK = {"viewer": 0, "editor": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    subject: str
    roles: frozenset[str]

    def allows(self, role: str) -> bool:
        need = ROLE_RANK[role]
        return any(ROLE_RANK.get(r, -1) >= need for r in self.roles)


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


class TokenVerifier:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings, self.http = settings, http
        issuer = settings.issuer
        base, _, realm = issuer.rpartition("/realms/")
        self._kc = KeycloakOpenID(
            server_url=base or issuer, realm_name=realm or settings.auth_realm, client_id=settings.auth_audience
        )
        self._keys: jwk.JWKSet | None = None
        self._forced_at = float("-inf")
        self._lock = asyncio.Lock()
        # sha256(token) -> (principal, exp as wall-clock seconds, the key set that verified it)
        self._verified: OrderedDict[bytes, tuple[Principal, float, jwk.JWKSet]] = OrderedDict()

    async def _refresh(self, force: bool) -> None:
        """Fetch the JWKS once; on an unknown kid (force) again, but at most once per
        REFETCH_MIN_INTERVAL, so made-up kids cannot turn us into a load on the realm."""
        async with self._lock:
            if self._keys is not None and not force:
                return
            if force and time.monotonic() - self._forced_at < REFETCH_MIN_INTERVAL:
                return
            resp = await self.http.get(self.settings.jwks_url, timeout=5.0)
            resp.raise_for_status()
            self._keys = jwk.JWKSet.from_json(resp.text)
            if force:
                self._forced_at = time.monotonic()

    def _decode(self, token: str) -> dict:
        assert self._keys is not None
        return self._kc.decode_token(
            token,
            key=self._keys,
            algs=["RS256"],
            leeway=LEEWAY,
            check_claims={"iss": self.settings.issuer, "aud": self.settings.auth_audience, "exp": None},
        )

    async def verify(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None:
            principal, exp, keys = hit
            if keys is self._keys and time.time() < exp:
                self._verified.move_to_end(digest)
                return principal
            del self._verified[digest]
        principal, exp = await self._verify(token)
        if self._keys is not None and time.time() < exp:
            self._verified[digest] = (principal, exp, self._keys)
            if len(self._verified) > TOKEN_CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        """The caller, and the token's exp."""
        try:
            await self._refresh(force=False)
        except httpx.HTTPError as e:
            raise Problem(503, "auth_unavailable", f"could not fetch the issuer's keys: {e}") from e
        try:
            claims = self._decode(token)
        except JWException as e:
            if "key" not in str(e).lower():
                raise unauthorized(f"invalid token: {e}") from e
            await self._refresh(force=True)  # an unknown kid: maybe the realm rotated its keys
            try:
                claims = self._decode(token)
            except JWException as e2:
                raise unauthorized(f"invalid token: {e2}") from e2
        except (ValueError, json.JSONDecodeError) as e:
            raise unauthorized("malformed token") from e
        principal = principal_of(claims)
        return principal, float(claims["exp"])  # check_claims made exp required and an integer


def principal_of(claims: object) -> Principal:
    """The caller named by a verified token's claims; a claim of the wrong shape is a bad token (401)."""
    if not isinstance(claims, dict):
        raise unauthorized("malformed token claims")
    # jwcrypto checks nbf only when asked to require it; Keycloak tokens may omit it.
    nbf = claims.get("nbf")
    if nbf is not None and (isinstance(nbf, bool) or not isinstance(nbf, int | float)):
        raise unauthorized("token has a malformed nbf claim")
    if nbf is not None and nbf > time.time() + LEEWAY:
        raise unauthorized("token is not valid yet")
    try:
        tenant = uuid.UUID(str(claims["tenant_id"]))
    except (KeyError, ValueError) as e:
        raise unauthorized("token has no valid tenant_id claim") from e
    access = claims.get("realm_access", {})
    roles = access.get("roles", []) if isinstance(access, dict) else None
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise unauthorized("token's realm_access.roles claim is not a list of role names")
    return Principal(tenant, str(claims.get("sub", "")), frozenset(roles) & set(ROLE_RANK))
