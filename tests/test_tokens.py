"""TokenVerifier against a local JWKS server standing in for a Keycloak realm: pinned RS256,
claim checks, and key rotation with a rate-limited re-fetch."""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from jwcrypto import jwk, jwt

from api.auth import LEEWAY, TokenVerifier
from api.problems import Problem
from lodestone.settings import Settings

AUD = "lodestone-api"


class JWKSServer:
    """Serves /realms/test/protocol/openid-connect/certs from a swappable key list, counting fetches."""

    def __init__(self) -> None:
        self.keys: list[jwk.JWK] = []
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.fetches += 1
                body = json.dumps({"keys": [json.loads(k.export_public()) for k in server.keys]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}/realms/test"


def new_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="RSA", size=2048, kid=uuid.uuid4().hex, alg="RS256", use="sig")


def claims(issuer: str, **over) -> dict:
    now = int(time.time())
    base = {
        "iss": issuer,
        "aud": AUD,
        "sub": "u",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "tenant_id": str(uuid.uuid4()),
        "realm_access": {"roles": ["viewer", "offline_access"]},
    }
    base.update(over)
    return base


def sign(key: jwk.JWK, body: dict, alg: str = "RS256") -> str:
    token = jwt.JWT(header={"alg": alg, "kid": key.key_id, "typ": "JWT"}, claims=body)
    token.make_signed_token(key)
    return token.serialize()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
async def realm():
    server = JWKSServer()
    server.keys = [new_key()]
    settings = Settings(_env_file=None, auth_issuer=server.issuer, auth_dev_issuer=False, auth_audience=AUD)
    async with httpx.AsyncClient() as http:
        yield server, TokenVerifier(settings, http)
    server.httpd.shutdown()


async def test_valid_token_gives_tenant_and_known_roles(realm):
    server, verifier = realm
    body = claims(server.issuer)
    principal = await verifier.verify(sign(server.keys[0], body))
    assert str(principal.tenant_id) == body["tenant_id"]
    assert principal.roles == {"viewer"}  # realm roles Lodestone does not know are dropped


async def test_key_rotation_refetches_once_then_rate_limits(realm):
    server, verifier = realm
    old = server.keys[0]
    await verifier.verify(sign(old, claims(server.issuer)))
    assert server.fetches == 1
    server.keys = [new_key()]  # the realm rotates its key
    await verifier.verify(sign(server.keys[0], claims(server.issuer)))
    assert server.fetches == 2  # one re-fetch on the unknown kid, no restart needed
    with pytest.raises(Problem) as err:
        await verifier.verify(sign(new_key(), claims(server.issuer)))
    assert err.value.status == 401
    assert server.fetches == 2  # a second unknown kid within the interval does not hammer the realm


@pytest.mark.parametrize(
    "case",
    [
        "alg_none",
        "hs256_with_public_key",
        "wrong_iss",
        "wrong_aud",
        "expired",
        "not_yet_valid",
        "malformed",
        "no_tenant",
        "foreign_key_same_kid",
    ],
)
async def test_rejections_are_401(realm, case):
    server, verifier = realm
    key = server.keys[0]
    good = claims(server.issuer)
    if case == "alg_none":
        token = f"{b64(json.dumps({'alg': 'none', 'kid': key.key_id}).encode())}.{b64(json.dumps(good).encode())}."
    elif case == "hs256_with_public_key":
        public_pem = key.export_to_pem()
        head = b64(json.dumps({"alg": "HS256", "kid": key.key_id, "typ": "JWT"}).encode())
        payload = b64(json.dumps(good).encode())
        mac = hmac.new(public_pem, f"{head}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{head}.{payload}.{b64(mac)}"
    elif case == "wrong_iss":
        token = sign(key, claims("http://evil.example/realms/test"))
    elif case == "wrong_aud":
        token = sign(key, claims(server.issuer, aud="other"))
    elif case == "expired":
        token = sign(key, claims(server.issuer, exp=int(time.time()) - 600))
    elif case == "not_yet_valid":
        token = sign(key, claims(server.issuer, nbf=int(time.time()) + 600))
    elif case == "malformed":
        token = "abc.def"
    elif case == "no_tenant":
        body = claims(server.issuer)
        del body["tenant_id"]
        token = sign(key, body)
    else:
        impostor = jwk.JWK.generate(kty="RSA", size=2048, kid=key.key_id)
        token = sign(impostor, good)
    with pytest.raises(Problem) as err:
        await verifier.verify(token)
    assert err.value.status == 401 and err.value.code == "unauthorized"


def count_decodes(verifier: TokenVerifier) -> list[str]:
    calls: list[str] = []
    decode = verifier._decode

    def counted(token: str) -> dict:
        calls.append(token)
        return decode(token)

    verifier._decode = counted  # type: ignore[method-assign]
    return calls


async def test_a_verified_token_is_checked_once_until_its_exp(realm, monkeypatch):
    server, verifier = realm
    calls = count_decodes(verifier)
    body = claims(server.issuer, exp=int(time.time()) + 60)
    token = sign(server.keys[0], body)
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert len(calls) == 1  # the second came from the cache
    other = sign(server.keys[0], claims(server.issuer))
    assert (await verifier.verify(other)).tenant_id != first.tenant_id  # keyed by the token, not shared
    assert len(calls) == 2
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 60 + LEEWAY + 1)  # past exp and the leeway
    with pytest.raises(Problem) as err:
        await verifier.verify(token)
    assert err.value.status == 401 and len(calls) == 3  # dropped at exp: checked again, and refused


async def test_a_cached_token_of_a_key_the_realm_dropped_is_refused(realm):
    server, verifier = realm
    old = server.keys[0]
    token = sign(old, claims(server.issuer))
    await verifier.verify(token)
    server.keys = [new_key()]  # the realm revokes the old key
    await verifier.verify(sign(server.keys[0], claims(server.issuer)))  # its new kid re-fetches the keys
    with pytest.raises(Problem) as err:
        await verifier.verify(token)
    assert err.value.status == 401


async def test_the_cache_is_bounded(realm, monkeypatch):
    server, verifier = realm
    monkeypatch.setattr("api.auth.TOKEN_CACHE_SIZE", 2)
    calls = count_decodes(verifier)
    tokens = [sign(server.keys[0], claims(server.issuer)) for _ in range(3)]
    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[0])  # the least recently used, dropped when the third came
    assert len(calls) == 4 and len(verifier._verified) == 2
