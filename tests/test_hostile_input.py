"""Hostile input gets a 4xx problem, never a 500, and never lands in a log: JSON that
Python accepts but JSON does not, tokens for tenants that do not exist or with roles of the
wrong shape, and a bogus job status filter."""

import asyncio
import json
import logging
import time
import uuid
import warnings

import httpx
import pytest
from jwcrypto import jwt
from sqlalchemy import text

from api.app import create_app
from api.deps import get_principal
from devstack.keys import load_or_create_key
from lodestone.db import tenant_session
from lodestone.logs import JsonFormatter
from schema.tables import JobStatus
from tests.helpers import definition, in_process_api, store_unchecked, wait_job

# (name, JSON text of the bad value, where it sits in the body, as an RFC 6901 pointer)
NOT_JSON = [
    ("nan", '{"note": NaN}', "/input/note"),
    ("infinity", '{"note": Infinity}', "/input/note"),
    ("minus-infinity", '{"note": [1, -Infinity]}', "/input/note/1"),
    ("overflow", '{"note": 1e400}', "/input/note"),
    ("surrogate-value", '{"note": "a\\ud800b"}', "/input/note"),
    ("surrogate-key", '{"\\udfff": 1}', "/input/\\udfff"),
]


def json_routes(openapi: dict) -> list[tuple[str, str]]:
    """Every operation that takes a JSON body, by the API's own description, and the
    WhatsApp webhook, which reads its JSON itself."""
    routes = [
        (method.upper(), path)
        for path, ops in openapi["paths"].items()
        for method, op in ops.items()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    return [*routes, ("POST", "/webhooks/whatsapp")]


def fill(path: str) -> str:
    return path.replace("{slug}", "no-such-form").replace("{schedule_id}", "no-such-schedule")


def any_input(workflow: dict) -> dict:
    return {**workflow, "input_schema": {"type": "object"}}


def claims_token(settings, **claims) -> str:
    key = load_or_create_key(settings.data_path)
    now = int(time.time())
    body = {
        "iss": settings.issuer,
        "aud": settings.auth_audience,
        "sub": "hostile",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        **claims,
    }
    with warnings.catch_warnings():  # jwcrypto marks one of its own classes deprecated, with no message
        warnings.simplefilter("ignore", DeprecationWarning)
        token = jwt.JWT(header={"alg": "RS256", "kid": key.key_id, "typ": "JWT"}, claims=json.dumps(body))
        token.make_signed_token(key)
        return token.serialize()


@pytest.fixture(scope="module")
async def openapi(settings, stack) -> dict:
    async with httpx.AsyncClient(base_url=settings.api_url) as http:
        return (await http.get("/openapi.json")).json()


@pytest.fixture(scope="module")
async def open_workflow(engine, tenant_a) -> str:
    """A real workflow that takes any object, so bad input can reach the database; its webhook
    is refused when a job runs (stored past POST /v1/workflows' checks, which refuse it)."""
    return (await store_unchecked(engine, tenant_a.id, any_input(definition("http://10.0.0.1/unused"))))["key"]


@pytest.fixture(scope="module")
async def public_form(tenant_a, open_workflow) -> str:
    slug = f"hostile-{uuid.uuid4().hex[:10]}"
    resp = await tenant_a.api.post("/v1/forms", json={"slug": slug, "workflow_key": open_workflow})
    assert resp.status_code == 201, resp.text
    return slug


async def test_non_json_numbers_and_lone_surrogates_are_422_everywhere(openapi, tenant_a, open_workflow, public_form):
    routes = json_routes(openapi)
    assert {
        ("POST", "/v1/submissions"),
        ("POST", "/v1/workflows"),
        ("POST", "/v1/forms"),
        ("POST", "/v1/public/forms/{slug}/submissions"),
        ("PUT", "/v1/tenant/secrets"),
    } <= set(routes)
    wrong = []
    for method, path in routes:
        target = path.replace("{slug}", public_form) if "public" in path else fill(path)
        for name, bad, pointer in NOT_JSON:
            body = f'{{"workflow_key": "{open_workflow}", "input": {bad}}}'
            if "public" in path:  # a form's body is its fields
                body, pointer = bad, pointer.removeprefix("/input")
            resp = await tenant_a.api.request(
                method, target, content=body.encode(), headers={"content-type": "application/json"}
            )
            problem = resp.json() if resp.headers.get("content-type") == "application/problem+json" else {}
            if (resp.status_code, problem.get("code"), problem.get("pointer")) != (422, "invalid_json", pointer):
                wrong.append(f"{method} {path} {name}: {resp.status_code} {resp.text[:150]}")
            elif not resp.headers.get("x-request-id"):
                wrong.append(f"{method} {path} {name}: no X-Request-Id")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le"])
async def test_a_surrogate_encoded_rather_than_escaped_is_422(tenant_a, open_workflow, encoding):
    """json.loads decodes with surrogatepass, so a surrogate's raw bytes decode too."""
    text = f'{{"workflow_key": "{open_workflow}", "input": {{"note": "a\ud800b"}}}}'
    resp = await tenant_a.api.post(
        "/v1/submissions", content=text.encode(encoding, "surrogatepass"), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "invalid_json" and resp.json()["pointer"] == "/input/note"


async def test_a_workflow_definition_with_nan_is_422(tenant_a):
    body = json.dumps(any_input(definition("http://10.0.0.1/unused"))).replace(
        '"input_schema": {"type": "object"}', '"input_schema": {"type": "object", "maximum": NaN}'
    )
    resp = await tenant_a.api.post("/v1/workflows", content=body.encode(), headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "invalid_json" and resp.json()["pointer"] == "/input_schema/maximum"


async def test_public_form_refuses_nan_without_a_token(settings, public_form):
    async with httpx.AsyncClient(base_url=settings.api_url) as anonymous:
        resp = await anonymous.post(
            f"/v1/public/forms/{public_form}/submissions",
            content=b'{"amount": NaN}',
            headers={"content-type": "application/json"},
        )
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "invalid_json" and resp.json()["pointer"] == "/amount"
    assert "NaN" in resp.json()["detail"]


async def test_a_marker_sent_through_every_json_route_reaches_no_log(
    settings, stack, engine, openapi, tenant_a, open_workflow, public_form
):
    """An email address and an SSN-like marker, sent well-formed and in every bad shape
    through every JSON route, appear in no log the stack writes: the API's, the worker's,
    PostgreSQL's, Temporal's."""
    marker = f"SSN-MARKER-{uuid.uuid4().hex}"
    email = f"{uuid.uuid4().hex[:12]}@hostile.example"
    variants = [
        json.dumps({"note": marker, "email": email}),  # well-formed: a schema error, or accepted
        f'{{"note": "{marker}", "email": "{email}", "n": NaN}}',
        f'{{"note": "{marker}\\ud800", "email": "{email}"}}',
        f'{{"note": "{marker}\\u0000", "email": "{email}"}}',  # PostgreSQL refuses NUL in jsonb
        f'{{"{marker}": 1e400, "email": "{email}"}}',
        f'{{"note": "{marker}", "email": "{email}", "deep": {"[" * 64}{"]" * 64}}}',
        f'{{"note": "{marker}", "email": "{email}"',  # not JSON at all
    ]
    server_errors: list[str] = []
    for method, path in json_routes(openapi):
        target = (
            path.replace("{slug}", public_form) if "public" in path else fill(path).replace("no-such-schedule", marker)
        )
        for inner in variants:
            body = (
                inner
                if "public" in path
                else f'{{"workflow_key": "{open_workflow}", "input": {inner}, '
                f'"phone_number_id": "{marker}", "slug": "{marker}"}}'
            )
            resp = await tenant_a.api.request(
                method,
                target,
                content=body.encode(),
                headers={"content-type": "application/json", "Idempotency-Key": f"{marker}-{uuid.uuid4().hex[:6]}"},
            )
            if resp.status_code >= 500:
                server_errors.append(f"{method} {path}: {resp.status_code}")
    # Jobs that carry the marker through the worker: one delivered nowhere (a refused webhook),
    # one whose input URL is refused, and one whose workflow's definition carries it too.
    # POST /v1/workflows refuses its webhook (422 url_refused); stored past that check, its jobs
    # meet the outbound guard when they run.
    failing_body = any_input(definition(f"http://10.0.0.1/{marker}"))
    refused = await tenant_a.api.post("/v1/workflows", json=failing_body)
    assert refused.status_code == 422 and refused.json()["code"] == "url_refused", refused.text
    failing = await store_unchecked(engine, tenant_a.id, failing_body)
    jobs = []
    for body in (
        {"workflow_key": failing["key"], "input": {"company": marker, "email": email}},
        {
            "workflow_key": failing["key"],
            "input": {"company": email},
            "input_url": f"http://10.0.0.2/{marker}?email={email}",
        },
    ):
        resp = await tenant_a.api.post("/v1/submissions", json=body)
        assert resp.status_code == 202, resp.text
        jobs.append(resp.json()["job_id"])
    for job_id in jobs:
        assert (await wait_job(tenant_a.api, job_id, timeout=90))["status"] == "failed"
    await asyncio.sleep(1.0)  # let every process write out what it logs
    logs = sorted(stack.settings.data_path.rglob("*.log"))
    assert {p.name for p in logs} >= {"api.log", "worker.log", "postgres.log", "temporal.log"}
    # Every process logs to DATA_DIR/logs, where `lodestone dev` says the logs are.
    assert {p.name for p in stack.logs.glob("*.log")} >= {"api.log", "worker.log", "postgres.log", "temporal.log"}
    found = [
        f"{what} in {log.relative_to(stack.settings.data_path)}"
        for log in logs
        for what, value in (("marker", marker), ("email", email))
        if value.encode() in log.read_bytes()
    ]
    assert found == []
    assert server_errors == []


@pytest.fixture(scope="module")
def authenticated_routes() -> list[tuple[str, str]]:
    """Every route behind a bearer token, from the app itself."""

    def needs_token(dependant) -> bool:
        return any(d.call is get_principal or needs_token(d) for d in dependant.dependencies)

    routes = [
        r
        for included in create_app().routes
        if hasattr(included, "original_router")
        for r in included.original_router.routes
    ]
    return sorted((method, route.path) for route in routes if needs_token(route.dependant) for method in route.methods)


def fill_ids(path: str) -> str:
    ident = str(uuid.uuid4())
    for name in ("{job_id}", "{artifact_id}", "{schedule_id}", "{key}", "{phone_number_id}"):
        path = path.replace(name, ident if name.endswith("_id}") else "x")
    return path


async def test_a_token_for_a_tenant_that_does_not_exist_is_403_everywhere(settings, stack, authenticated_routes):
    assert len(authenticated_routes) > 20
    token = claims_token(settings, tenant_id=str(uuid.uuid4()), realm_access={"roles": ["admin"]})
    wrong = []
    async with httpx.AsyncClient(
        base_url=settings.api_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        # Bodies that would be stored, where the issue saw a 500 (workflows, channels) or a 409 (forms).
        valid = {
            ("POST", "/v1/workflows"): definition("http://127.0.0.1:9/unused"),
            ("POST", "/v1/channels/whatsapp"): {"phone_number_id": "15550001111"},
            ("POST", "/v1/forms"): {"slug": f"ghost-{uuid.uuid4().hex[:8]}", "workflow_key": "any"},
        }
        for method, path in authenticated_routes:
            body = b"" if method in ("GET", "DELETE") else json.dumps(valid.get((method, path), {})).encode()
            resp = await http.request(
                method, fill_ids(path), content=body, headers={"content-type": "application/json"} if body else {}
            )
            if method == "HEAD":  # a HEAD answer has no body: its status says it
                code = "unknown_tenant" if resp.headers.get("content-type") == "application/problem+json" else None
            else:
                problem = resp.headers.get("content-type") == "application/problem+json"
                code = resp.json().get("code") if problem else None
            if (resp.status_code, code) != (403, "unknown_tenant") or not resp.headers.get("x-request-id"):
                wrong.append(f"{method} {path}: {resp.status_code} {resp.text[:120]}")
    assert wrong == [], "\n".join(wrong)


async def test_a_deleted_tenant_is_refused_once_the_cache_expires(settings, owner_engine, engine):
    from services.tenants import create_tenant

    tenant = await create_tenant(engine, "short-lived")
    token = claims_token(settings, tenant_id=str(tenant.id), realm_access={"roles": ["admin"]})
    async with in_process_api(settings, token, tenant_cache_seconds=1.0) as api:
        assert (await api.get("/v1/jobs")).status_code == 200
        async with tenant_session(owner_engine, tenant.id) as session:
            deleted = await session.execute(text("DELETE FROM tenants WHERE id = :id"), {"id": tenant.id})
            assert deleted.rowcount == 1
        await asyncio.sleep(1.2)
        resp = await api.get("/v1/jobs")
    assert resp.status_code == 403 and resp.json()["code"] == "unknown_tenant", resp.text


@pytest.mark.parametrize(
    "claims",
    [
        {"realm_access": ["admin"]},
        {"realm_access": "admin"},
        {"realm_access": {"roles": "admin"}},
        {"realm_access": {"roles": [1, 2]}},
        {"realm_access": {"roles": {"admin": True}}},
        {"realm_access": {"roles": ["admin"]}, "nbf": "soon"},
    ],
    ids=["access-list", "access-string", "roles-string", "roles-ints", "roles-object", "nbf-string"],
)
async def test_a_malformed_roles_claim_is_401_with_a_request_id(settings, tenant_a, claims):
    token = claims_token(settings, tenant_id=str(tenant_a.id), **claims)
    async with httpx.AsyncClient(base_url=settings.api_url) as http:
        resp = await http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}", "X-Request-Id": "bad-roles"})
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers.get("x-request-id") == "bad-roles"


async def test_a_bogus_job_status_is_422_naming_the_allowed_ones(tenant_a):
    resp = await tenant_a.api.get("/v1/jobs", params={"status": "bogus"})
    assert resp.status_code == 422, resp.text
    [error] = resp.json()["errors"]
    assert error["loc"] == ["query", "status"]
    assert all(f"'{s.value}'" in error["msg"] for s in JobStatus), error["msg"]
    for status in JobStatus:  # each allowed one still filters
        assert (await tenant_a.api.get("/v1/jobs", params={"status": status.value})).status_code == 200


async def test_an_unhandled_error_is_a_500_with_a_request_id_and_a_log_line_without_input(settings, caplog):
    """Any exception no handler takes: the 500 problem carries X-Request-Id, and the one
    log line names the route's template and the exception's type, not its message or the path."""
    marker = f"SSN-MARKER-{uuid.uuid4().hex}"
    app = create_app(settings.model_copy(update={"auth_issuer": settings.issuer}))

    @app.get("/boom/{anything}")
    async def boom(anything: str) -> None:
        raise RuntimeError(f"failed on {anything}")

    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
        resp = await http.get(f"/boom/{marker}", headers={"X-Request-Id": "boom-1"})
    assert resp.status_code == 500 and resp.json()["code"] == "internal_error"
    assert resp.headers.get("x-request-id") == "boom-1"
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name != "httpx"]  # the test's own client
    crash = [line for line in lines if "unhandled error" in line]
    assert len(crash) == 1 and "/boom/{anything}" in crash[0] and "builtins.RuntimeError" in crash[0], lines
    assert not [line for line in lines if marker in line], lines


async def test_a_stalled_body_logs_the_route_template_not_the_path(caplog):
    """The 408's log line: a path carries input (a form's slug), a route's template does not."""
    from fastapi import FastAPI, Request

    from api.body_timeout import BodyIdleTimeout

    app = FastAPI()

    @app.post("/v1/forms/{slug}/submissions")
    async def submit(slug: str, request: Request) -> dict[str, str]:
        await request.body()
        return {"slug": slug}

    slug = f"secret-slug-{uuid.uuid4().hex}"
    sent: list[dict] = []
    first = True

    async def receive() -> dict:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.sleep(60)  # the body stalls
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/v1/forms/{slug}/submissions",
        "raw_path": f"/v1/forms/{slug}/submissions".encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    caplog.set_level(logging.INFO, "lodestone.api")
    await asyncio.wait_for(BodyIdleTimeout(app, 0.2)(scope, receive, send), 10)
    assert sent[0]["status"] == 408
    lines = [r.getMessage() for r in caplog.records if r.name == "lodestone.api"]
    assert any("/v1/forms/{slug}/submissions" in line for line in lines), lines
    assert not any(slug in line for line in lines), lines
