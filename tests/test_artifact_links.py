"""Signed, expiring artifact links: minted with a bearer token or carried in a delivered webhook,
downloaded without one."""

import asyncio
import json
import stat
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from api.routers.artifacts import download_name
from devstack.receiver import WebhookReceiver
from lodestone import links
from lodestone.settings import Settings
from schema.tables import Artifact
from tests.helpers import create_workflow, definition, submit, wait_job

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def delivered_a(tenant_a) -> tuple[dict, dict]:
    """A delivered job of tenant A with html and pdf artifacts, and the webhook body it sent."""
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, outputs=["html", "pdf"]))
        job_id = (await submit(tenant_a.api, wf["key"], {"company": "Linkable Ltd"})).json()["job_id"]
        job = await wait_job(tenant_a.api, job_id)
        sent = hook.successes()
    assert job["status"] == "delivered", job
    assert len(sent) == 1 and sent[0].verified
    return job, json.loads(sent[0].body)


@pytest.fixture(scope="module")
def artifacts_a(delivered_a) -> dict[str, dict]:
    """The delivered job's artifacts, by kind."""
    return {a["kind"]: a for a in delivered_a[0]["artifacts"]}


@pytest.fixture(scope="module")
async def anon(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def mint(tenant, artifact_id: str, **params: int) -> dict:
    resp = await tenant.api.get(f"/v1/artifacts/{artifact_id}/link", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def assert_refused(resp: httpx.Response) -> None:
    # One answer for every failure, so a holder learns nothing about why.
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["detail"] == "this link is not valid"


async def test_link_downloads_without_auth_with_range(settings, tenant_a, artifacts_a, anon):
    for art in artifacts_a.values():
        link = await mint(tenant_a, art["id"])
        assert link["url"].startswith(f"{settings.api_url}/v1/artifacts/{art['id']}/download?")
        full = (await tenant_a.api.get(f"/v1/artifacts/{art['id']}")).content
        got = await anon.get(link["url"])
        assert got.status_code == 200 and got.content == full and len(full) == art["size"]
        assert got.headers["content-type"].startswith(art["content_type"])
        part = await anon.get(link["url"], headers={"Range": "bytes=3-12"})
        assert part.status_code == 206 and part.content == full[3:13]
        assert part.headers["content-range"] == f"bytes 3-12/{len(full)}"


async def test_downloads_carry_a_file_name(tenant_a, artifacts_a, anon):
    """Saved by a browser or `curl -OJ` as report.pdf / report.html, with a token or a link."""
    for kind, name in (("pdf", "report.pdf"), ("html", "report.html")):
        art = artifacts_a[kind]
        expected = f'attachment; filename="{name}"'
        direct = await tenant_a.api.get(f"/v1/artifacts/{art['id']}")
        assert direct.status_code == 200 and direct.headers["content-disposition"] == expected
        linked = await anon.get((await mint(tenant_a, art["id"]))["url"], headers={"Range": "bytes=0-9"})
        assert linked.status_code == 206 and linked.headers["content-disposition"] == expected


def test_download_names_are_safe_in_a_header_and_as_a_path():
    def name(key: str, kind: str = "pdf", content_type: str = "application/pdf") -> str:
        return download_name(Artifact(kind=kind, key=key, content_type=content_type, size=1, sha256="0"))

    assert name("t/jobs/j/report.pdf") == "report.pdf"
    assert name('t/jobs/j/a "b";\\r\\n.pdf') == "a_b_r_n.pdf"
    assert name("t/jobs/j/..") == "pdf.pdf"
    assert name("t/jobs/j/blob", kind="document", content_type="text/html; charset=utf-8") == "blob.html"
    assert name("t/jobs/j/", kind="../x y", content_type="application/json") == "x_y.json"


async def test_default_ttl_is_fifteen_minutes(tenant_a, artifacts_a):
    link = await mint(tenant_a, artifacts_a["html"]["id"])
    remaining = datetime.fromisoformat(link["expires_at"]).timestamp() - time.time()
    assert 890 <= remaining <= 905
    assert int(parse_qs(urlsplit(link["url"]).query)["expires"][0]) == int(
        datetime.fromisoformat(link["expires_at"]).timestamp()
    )


async def test_expired_link_is_refused(tenant_a, artifacts_a, anon):
    link = await mint(tenant_a, artifacts_a["html"]["id"], ttl_seconds=1)
    await asyncio.sleep(2)
    assert_refused(await anon.get(link["url"]))


async def test_tampered_links_are_refused(tenant_a, artifacts_a, anon):
    url = (await mint(tenant_a, artifacts_a["html"]["id"]))["url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    sig, expires = query["sig"], int(query["expires"])
    for bad in (
        with_query(url, sig=("A" if sig[0] != "A" else "B") + sig[1:]),
        with_query(url, sig=sig[:-2]),
        with_query(url, sig=""),
        with_query(url, expires=str(expires + 3600)),
        with_query(url, expires=f"{expires}.0"),
        with_query(url, expires="soon"),
        with_query(url, tenant="not-a-uuid"),
        url.split("?")[0],
    ):
        assert_refused(await anon.get(bad))


async def test_webhook_payload_links_download_without_a_token(settings, tenant_a, delivered_a, anon):
    """Each artifact in job.delivered carries a signed link, valid LINK_MAX_TTL_SECONDS from the
    delivery, that a receiver can GET with no bearer token; a tampered one is refused."""
    job, payload = delivered_a
    sent = {a["kind"]: a for a in payload["data"]["artifacts"]}
    assert sent.keys() == {"html", "pdf"}
    issued = datetime.fromisoformat(payload["timestamp"]).timestamp()
    for kind, art in sent.items():
        assert art["id"] == next(a["id"] for a in job["artifacts"] if a["kind"] == kind)
        link = art["download_url"]
        assert link.startswith(f"{settings.api_url}/v1/artifacts/{art['id']}/download?")
        expires = datetime.fromisoformat(art["download_expires_at"]).timestamp()
        assert expires == int(parse_qs(urlsplit(link).query)["expires"][0])
        assert abs(expires - issued - settings.link_max_ttl_seconds) <= 1
        got = await anon.get(link)
        assert got.status_code == 200, got.text
        assert got.content == (await tenant_a.api.get(f"/v1/artifacts/{art['id']}")).content
        assert len(got.content) == art["size"]
    assert (await anon.get(sent["pdf"]["download_url"])).content.startswith(b"%PDF-")
    assert b"Linkable Ltd" in (await anon.get(sent["html"]["download_url"])).content
    sig = parse_qs(urlsplit(sent["pdf"]["download_url"]).query)["sig"][0]
    assert_refused(
        await anon.get(with_query(sent["pdf"]["download_url"], sig=("A" if sig[0] != "A" else "B") + sig[1:]))
    )
    assert_refused(await anon.get(sent["pdf"]["download_url"].replace(sent["pdf"]["id"], sent["html"]["id"])))
    assert (await anon.get(f"{settings.api_url}/v1/artifacts/{sent['pdf']['id']}")).status_code == 401


async def test_link_for_one_artifact_opens_no_other(tenant_a, artifacts_a, anon):
    url = (await mint(tenant_a, artifacts_a["html"]["id"]))["url"]
    for other in (artifacts_a["pdf"]["id"], str(uuid.uuid4())):
        assert_refused(await anon.get(url.replace(artifacts_a["html"]["id"], other)))


async def test_other_tenant_cannot_mint_a_link(tenant_b, artifacts_a):
    resp = await tenant_b.api.get(f"/v1/artifacts/{artifacts_a['html']['id']}/link")
    assert resp.status_code == 404 and resp.headers["content-type"] == PROBLEM


async def test_link_signed_for_other_tenant_reads_nothing(settings, tenant_a, tenant_b, artifacts_a, anon):
    art = artifacts_a["html"]
    full = (await tenant_a.api.get(f"/v1/artifacts/{art['id']}")).content
    # A genuine signature over A's artifact id, but naming tenant B: RLS must hide A's row.
    forged = links.mint(links.signing_key(settings), uuid.UUID(art["id"]), tenant_b.id, 60)
    resp = await anon.get(f"{settings.api_url}/v1/artifacts/{art['id']}/download?{forged.query()}")
    assert resp.status_code in (403, 404), resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert full not in resp.content and b"Linkable Ltd" not in resp.content
    # Swapping tenant A's id into a link B could hold breaks the signature.
    swapped = with_query(
        f"{settings.api_url}/v1/artifacts/{art['id']}/download?{forged.query()}", tenant=str(tenant_a.id)
    )
    assert_refused(await anon.get(swapped))


async def test_ttl_bounds(tenant_a, artifacts_a):
    art = artifacts_a["html"]["id"]
    too_long = await tenant_a.api.get(f"/v1/artifacts/{art}/link", params={"ttl_seconds": 7 * 86400 + 1})
    assert too_long.status_code == 422 and too_long.headers["content-type"] == PROBLEM
    assert too_long.json()["code"] == "validation_error"
    zero = await tenant_a.api.get(f"/v1/artifacts/{art}/link", params={"ttl_seconds": 0})
    assert zero.status_code == 422
    week = await mint(tenant_a, art, ttl_seconds=7 * 86400)
    assert datetime.fromisoformat(week["expires_at"]).timestamp() - time.time() > 7 * 86400 - 10


async def test_link_needs_a_bearer_token(settings, artifacts_a, anon):
    resp = await anon.get(f"{settings.api_url}/v1/artifacts/{artifacts_a['html']['id']}/link")
    assert resp.status_code == 401


def test_sign_and_verify_round_trip():
    key, art, tenant = b"k" * 32, uuid.uuid4(), uuid.uuid4()
    link = links.mint(key, art, tenant, 60, now=1_000)
    ok = dict(tenant=str(tenant), expires=str(link.expires), sig=link.sig, max_ttl_seconds=3600)
    assert links.verify(key, art, **ok, now=1_000) == tenant
    for now in (link.expires, link.expires + 1):
        with pytest.raises(links.InvalidLink):
            links.verify(key, art, **ok, now=now)
    with pytest.raises(links.InvalidLink):
        links.verify(b"x" * 32, art, **ok, now=1_000)
    with pytest.raises(links.InvalidLink):  # minted before the max TTL was lowered
        links.verify(key, art, **(ok | {"max_ttl_seconds": 30}), now=1_000)


def test_file_key_is_private_and_stable(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path)
    first = links.signing_key(settings)
    path = links.key_path(settings.data_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    links._file_key.cache_clear()  # as after a restart
    assert links.signing_key(settings) == first
    assert links.signing_key(Settings(_env_file=None, link_signing_key="s" * 32)) != first


def test_short_signing_key_fails_fast():
    with pytest.raises(ValidationError, match="LINK_SIGNING_KEY"):
        Settings(_env_file=None, link_signing_key="too-short")
