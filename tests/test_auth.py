"""Tokens are checked for signature, iss, aud and exp with RS256 pinned; roles gate routes."""

import base64
import json

import httpx
import pytest
from jwcrypto import jwk, jwt

from devstack.keys import mint_token


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def bad_tokens(settings, tenant_a):
    def mint(**kw):
        args = {
            "issuer": settings.issuer,
            "audience": settings.auth_audience,
            "tenant_id": str(tenant_a.id),
            "roles": ["admin"],
        }
        args.update(kw)
        return mint_token(settings.data_path, **args)

    good = mint()
    header, payload, _ = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    foreign = jwk.JWK.generate(kty="RSA", size=2048, kid="foreign")
    forged = jwt.JWT(
        header={"alg": "RS256", "kid": json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]}, claims=claims
    )
    forged.make_signed_token(foreign)
    return {
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong_signature": forged.serialize(),
        "wrong_issuer": mint(issuer="http://evil.example/realms/lodestone"),
        "wrong_audience": mint(audience="someone-else"),
        "expired": mint(ttl_seconds=-3600),
        "malformed": "not.a.jwt",
    }


@pytest.mark.parametrize(
    "case", ["alg_none", "wrong_signature", "wrong_issuer", "wrong_audience", "expired", "malformed"]
)
async def test_bad_tokens_get_401(case, settings, bad_tokens):
    async with httpx.AsyncClient(base_url=settings.api_url) as client:
        resp = await client.get("/v1/jobs", headers={"Authorization": f"Bearer {bad_tokens[case]}"})
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"


async def test_missing_token_and_viewer_role(settings, tenant_a):
    async with httpx.AsyncClient(base_url=settings.api_url) as client:
        assert (await client.get("/v1/jobs")).status_code == 401
        viewer = tenant_a.token_for(settings, "viewer")
        headers = {"Authorization": f"Bearer {viewer}"}
        assert (await client.get("/v1/jobs", headers=headers)).status_code == 200
        resp = await client.post("/v1/submissions", json={"workflow_key": "x", "input": {}}, headers=headers)
        assert resp.status_code == 403 and resp.json()["code"] == "forbidden"


async def test_health_ready_and_request_id(settings):
    async with httpx.AsyncClient(base_url=settings.api_url) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready", headers={"X-Request-Id": "trace-me-123"})
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "temporal": "ok"}
        assert ready.headers["x-request-id"] == "trace-me-123"
        assert len((await client.get("/health")).headers["x-request-id"]) == 32
        jwks = (await client.get(f"/realms/{settings.auth_realm}/protocol/openid-connect/certs")).json()
        assert jwks["keys"][0]["kty"] == "RSA" and "d" not in jwks["keys"][0]
