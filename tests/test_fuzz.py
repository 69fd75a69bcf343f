"""Schemathesis fuzzes every operation of the running API as tenant A's admin: no 5xx, and
every status code, content type, header and body is the one the OpenAPI document declares.
Random ids only find 404s, so real artifacts get the same checks in a test of their own."""

import os
from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.serialization import serialize_binary

from devstack.receiver import WebhookReceiver
from tests.helpers import create_workflow, definition, submit, wait_job

# Tests may read the environment for their own parameters: `make fuzz` sets 200.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="session")
def api_schema(stack, settings):
    return schemathesis.openapi.from_url(f"{settings.api_url}/openapi.json")


@pytest.fixture(autouse=True)
def _legacy_nodeid(request):
    # schemathesis 4.32's from_fixture reads (and renames) node._nodeid, which pytest 9.2 replaced
    # with the nodeid property: give it the attribute back.
    request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None and STATUSES:
        seen = ", ".join(f"{status}: {n}" for status, n in sorted(STATUSES.items()))
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"fuzz: {STATUSES.total()} cases passed all checks ({seen})")


@pytest.fixture(scope="module", autouse=True)
async def _no_budget_or_limit_left(tenant_a):
    """The fuzzed PUT /v1/budgets and PUT /v1/tenant/limits leave tenant A random LLM budgets
    (a 0 would pause its jobs) and limits (a submission rate of 1 a minute, one running job):
    the modules after this one run tenant A's jobs with no budget and the deployment's limits."""
    yield
    resp = await tenant_a.api.put("/v1/budgets", json={"budgets": []})
    assert resp.status_code == 200, resp.text
    resp = await tenant_a.api.put("/v1/tenant/limits", json={})
    assert resp.status_code == 200, resp.text


schema = schemathesis.pytest.from_fixture("api_schema")


@schemathesis.serializer("application/offset+octet-stream")
def _offset_octets(ctx, value):  # type: ignore[no-untyped-def]
    """A tus PATCH body: raw bytes, as application/octet-stream."""
    return {"data": serialize_binary(value)}


@pytest.mark.timeout(120 + 6 * EXAMPLES)  # one test runs every operation
@schema.parametrize()
@hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None)
def test_api_conforms_to_its_schema(case, tenant_a):
    response = case.call_and_validate(headers={"Authorization": tenant_a.api.headers["authorization"]}, checks=CHECKS)
    STATUSES[response.status_code] += 1


async def test_real_artifacts_conform(api_schema, tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, outputs=["html", "pdf"]))
        job = await wait_job(tenant_a.api, (await submit(tenant_a.api, wf["key"])).json()["job_id"])
    assert len(job["artifacts"]) == 2, job
    auth = {"Authorization": tenant_a.api.headers["authorization"]}
    for artifact in job["artifacts"]:
        ident = {"artifact_id": artifact["id"]}
        for headers, status in [({}, 200), ({"Range": "bytes=0-9"}, 206), ({"Range": "bytes=99999999-"}, 416)]:
            case = api_schema["/v1/artifacts/{artifact_id}"]["GET"].Case(path_parameters=ident, headers=headers)
            assert case.call_and_validate(headers=auth, checks=CHECKS).status_code == status
        link = api_schema["/v1/artifacts/{artifact_id}/link"]["GET"].Case(path_parameters=ident)
        signed = dict(parse_qsl(urlsplit(link.call_and_validate(headers=auth, checks=CHECKS).json()["url"]).query))
        for headers, status in [({}, 200), ({"Range": "bytes=-5"}, 206)]:
            case = api_schema["/v1/artifacts/{artifact_id}/download"]["GET"].Case(
                path_parameters=ident, query=signed, headers=headers
            )
            assert case.call_and_validate(checks=CHECKS).status_code == status
