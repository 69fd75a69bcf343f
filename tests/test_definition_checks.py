"""Definitions are checked when stored for what would certainly fail at run time: a template or
instruction variable nothing provides, a model this deployment cannot call, a delivery URL the
outbound guard refuses. One 422 lists every problem, each at its JSON pointer; a definition
whose templates bind their own names (loops, sets, macros) stores and runs."""

import copy
import uuid
from typing import Any

from devstack.receiver import WebhookReceiver
from tests.conftest import _tenant
from tests.helpers import create_workflow, definition, in_process_api, submit, wait_job
from tests.test_imports import FILES, MAPPING, TEMPLATE

HOOK = "http://127.0.0.1:9/hook"  # the session stack's OUTBOUND_ALLOW_CIDRS admit 127.0.0.1/32


def problems(resp) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    """{pointer: {code, ...}} of a 422's errors."""
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["pointer"] == body["errors"][0]["pointer"] and body["code"] == body["errors"][0]["code"]
    out: dict[str, set[str]] = {}
    for p in body["errors"]:
        out.setdefault(p["pointer"], set()).add(p["code"])
    return out


def messages(resp, pointer: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [p["message"] for p in resp.json()["errors"] if p["pointer"] == pointer]


def machine(key: str, states: dict[str, Any], resources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    first = next(iter(states))
    return {
        "key": key,
        "kind": "state_machine",
        "state_machine": {"StartAt": first, "States": states},
        "resources": resources or [],
    }


async def test_every_undefined_variable_and_refused_url_in_one_answer(tenant_a):
    body = definition(HOOK)
    body["steps"][0]["instructions"] = "Research {{ company }} in {{ input.country }}; {{ steps.research }}"
    body["steps"][3]["instructions"] = "Write using {{ a }}, {{ o }} and {{ notes }}."
    body["template"] = "<h1>{{ input.company }}</h1>{{ steps.summary }}\n{{ job.owner }}{{ steps['write'] }}"
    body["delivery"] = [
        {"type": "webhook", "url": HOOK},
        {"type": "webhook", "url": "http://169.254.169.254/latest/meta-data"},
        {"type": "webhook", "url": "http://[::1]:8000/hook"},
    ]
    resp = await tenant_a.api.post("/v1/workflows", json=body)
    assert problems(resp) == {
        "/steps/0/instructions": {"undefined_variable"},
        "/steps/3/instructions": {"undefined_variable"},
        "/template": {"undefined_variable"},
        "/delivery/1/url": {"url_refused"},
        "/delivery/2/url": {"url_refused"},
    }
    first = messages(resp, "/steps/0/instructions")
    assert len(first) == 2 and any("input.country" in m for m in first) and any("'steps'" in m for m in first)
    assert messages(resp, "/steps/3/instructions") == [
        "line 1: 'notes' is not defined here (defined: a, input, input_file, o)"
    ]
    template = messages(resp, "/template")
    assert len(template) == 2 and "line 1: steps.summary" in template[0] and "line 2: job.owner" in template[1]
    assert "not public" in messages(resp, "/delivery/1/url")[0]
    assert (await tenant_a.api.get(f"/v1/workflows/{body['key']}")).status_code == 404  # nothing stored


async def test_templates_binding_their_own_names_store_and_run(tenant_a):
    """Loops, sets, macros, filters, the `loop` variable and mapping methods: no false positive."""
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        body = definition(hook.url)
        body["input_schema"]["properties"]["topics"] = {"type": "array", "items": {"type": "string"}}
        body["steps"][0]["instructions"] = (
            "{% set who = company | upper %}Research {{ who }}.{% for t in input.get('topics', []) %}"
            " {{ loop.index }}. {{ t | title }}{% endfor %}"
            "{% if input_file is defined %}{{ input_file.excerpt }}{% endif %}"
        )
        body["template"] = (
            "{% macro card(title, text) %}<h2>{{ title }}</h2>{{ text | paragraphs }}{% endmacro %}"
            "{% set ns = namespace(n=0) %}<h1>{{ input['company'] }}</h1>"
            "{% for id, text in steps.items() | sort %}{% set ns.n = ns.n + 1 %}{{ card(id, text) }}{% endfor %}"
            "<p>{{ ns.n }} steps for job {{ job.id }} ({{ job.workflow_key }}) at {{ job.created_at }}</p>"
            "{% for k in input %}{{ k }}{% else %}none{% endfor %}{{ range(2) | list }}{{ steps.write | length }}"
        )
        wf = await create_workflow(tenant_a.api, body)
        resp = await submit(tenant_a.api, wf["key"], {"company": "Loop Ltd", "topics": ["a", "b"]})
        job = await wait_job(tenant_a.api, resp.json()["job_id"])
    assert job["status"] == "delivered", job


async def test_without_input_properties_any_input_field_is_accepted(tenant_a):
    body = definition(HOOK)
    del body["input_schema"]
    body["steps"][0]["inputs"] = {}
    body["steps"][0]["instructions"] = "Research {{ input.company }} in {{ input['country'] }}."
    assert (await tenant_a.api.post("/v1/workflows", json=body)).status_code == 201


async def test_url_refused_by_this_deployments_allow_list(settings, tenant_a):
    """The check reads OUTBOUND_ALLOW_CIDRS as the worker does: admitted on one port only."""
    token = tenant_a.token_for(settings, "admin")
    body = definition("http://127.0.0.1:9100/hook")
    async with in_process_api(settings, token, outbound_allow_cidrs=["127.0.0.1:9100"]) as api:
        assert (await api.post("/v1/workflows", json=body)).status_code == 201
        body["delivery"] = [{"type": "webhook", "url": "http://127.0.0.1:9101/hook"}]
        resp = await api.post("/v1/workflows", json=body)
    assert problems(resp) == {"/delivery/0/url": {"url_refused"}}
    assert "port 9101" in resp.json()["detail"]


async def test_model_without_a_provider_is_refused(settings, tenant_a):
    """Without LLM_BASE_URL only `offline` runs: any other model, named or the default, fails."""
    token = tenant_a.token_for(settings, "admin")
    body = definition(HOOK)
    body["steps"][1]["model"] = "gpt-4o-mini"
    del body["steps"][2]["model"]  # LLM_MODEL's, below
    async with in_process_api(settings, token, llm_base_url=None, llm_api_key=None, llm_model="llama3") as api:
        resp = await api.post("/v1/workflows", json=body)
        assert problems(resp) == {"/steps/1/model": {"model_unavailable"}, "/steps/2": {"model_unavailable"}}
        assert "LLM_MODEL" in messages(resp, "/steps/2")[0]
        assert (await api.post("/v1/workflows", json=definition(HOOK))).status_code == 201  # offline runs
    body["key"] = f"wf-{uuid.uuid4().hex[:10]}"
    assert (await tenant_a.api.post("/v1/workflows", json=body)).status_code == 201  # the stack has a provider


async def test_a_model_served_by_the_tenants_own_provider_is_accepted(settings, engine):
    """Without a deployment provider, a model one of the tenant's named providers lists stores;
    a model none lists is refused, and another tenant cannot use the first one's provider."""
    own = await _tenant(settings, engine, f"Checks {uuid.uuid4().hex[:6]}")
    other = await _tenant(settings, engine, f"Checks {uuid.uuid4().hex[:6]}")
    providers = {"house": {"base_url": "https://llm.example.com/v1", "models": ["house-model"]}}
    assert (await own.api.put("/v1/tenant/providers", json={"providers": providers})).status_code == 200
    body = definition(HOOK)
    body["steps"][1]["model"] = "house-model"
    no_default = {"llm_base_url": None, "llm_api_key": None}
    async with in_process_api(settings, own.token_for(settings, "admin"), **no_default) as api:
        assert (await api.post("/v1/workflows", json=body)).status_code == 201
        body["steps"][1]["model"] = "elsewhere-model"
        assert problems(await api.post("/v1/workflows", json=body)) == {"/steps/1/model": {"model_unavailable"}}
    body["steps"][1]["model"] = "house-model"
    async with in_process_api(settings, other.token_for(settings, "admin"), **no_default) as api:
        assert problems(await api.post("/v1/workflows", json=body)) == {"/steps/1/model": {"model_unavailable"}}
    for ctx in (own, other):
        await ctx.api.aclose()


async def test_state_machine_models_and_delivery_urls(settings, tenant_a):
    states = {
        "Ask": {
            "Type": "Task",
            "Resource": "lodestone:llm",
            "Parameters": {"prompt": "hi", "model": "gpt-4o"},
            "Next": "Bound",
        },
        "Bound": {"Type": "Task", "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:Writer", "Next": "Dyn"},
        "Dyn": {
            "Type": "Task",
            "Resource": "lodestone:llm",
            "Parameters": {"prompt": "x", "model.$": "$.m"},
            "Next": "Send",
        },
        "Send": {
            "Type": "Task",
            "Resource": "lodestone:deliver",
            "Parameters": {"target": {"type": "webhook", "url": "http://10.1.2.3/in"}, "body": {}},
            "Next": "Notify",
        },
        "Notify": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:Notify",
            "Next": "Again",
        },
        "Again": {"Type": "Task", "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:Notify", "End": True},
    }
    resources = [
        {"function": "Writer", "llm": {"model": "claude-x"}},
        {"function": "Notify", "deliver": {"target": {"type": "webhook", "url": "http://192.168.1.5/x"}}},
    ]
    token = tenant_a.token_for(settings, "admin")
    body = machine(f"sm-{uuid.uuid4().hex[:8]}", copy.deepcopy(states), resources)
    async with in_process_api(settings, token, llm_base_url=None, llm_api_key=None) as api:
        resp = await api.post("/v1/workflows", json=body)
    # The binding used by two Tasks is named once; the computed model is judged when it runs.
    assert problems(resp) == {
        "/state_machine/States/Ask/Parameters/model": {"model_unavailable"},
        "/resources/0/llm/model": {"model_unavailable"},
        "/state_machine/States/Send/Parameters/target/url": {"url_refused"},
        "/resources/1/deliver/target/url": {"url_refused"},
    }
    body["state_machine"]["States"]["Send"]["Parameters"]["target"]["url"] = HOOK
    body["resources"][1]["deliver"]["target"]["url"] = HOOK
    resp = await tenant_a.api.post("/v1/workflows", json=body)  # a provider, and 127.0.0.1 allowed
    assert resp.status_code == 201, resp.text


async def test_the_import_route_reports_and_refuses_the_same(tenant_a):
    refused = [{"function": "Price", "deliver": {"target": {"type": "webhook", "url": "http://10.9.9.9/in"}}}]
    body = {"template": TEMPLATE, "files": FILES, "mapping": MAPPING, "key": f"order-{uuid.uuid4().hex[:8]}"}
    dry = await tenant_a.api.post("/v1/workflows/import", json=body | {"bindings": refused, "dry_run": True})
    assert dry.status_code == 200, dry.text
    [report] = dry.json()["machines"]
    assert [(p["pointer"], p["code"]) for p in report["problems"]] == [
        ("/resources/0/deliver/target/url", "url_refused")
    ]
    resp = await tenant_a.api.post("/v1/workflows/import", json=body | {"bindings": refused})
    assert problems(resp) == {"/resources/0/deliver/target/url": {"url_refused"}}
    assert (await tenant_a.api.get(f"/v1/workflows/{body['key']}")).status_code == 404


async def test_a_template_too_deep_to_check_is_a_422_not_a_500(tenant_a):
    """A long attribute chain parses without recursing, but walking it does: refused, as it
    would fail to compile when it ran."""
    body = definition(HOOK)
    body["template"] = "{{ input" + ".a" * 4000 + " }}"
    resp = await tenant_a.api.post("/v1/workflows", json=body)
    assert resp.status_code == 422, resp.text
    assert (resp.json()["code"], resp.json()["pointer"]) == ("bad_template", "/template")
