"""Named providers, model fallback, structured output and usage accounting, on the real stack:
a tenant's provider on its own failing server (a stand-in that answers 429 or refuses) and the
deployment's default provider (the session's stand-in) that answers."""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.conftest import TenantCtx, _tenant
from tests.helpers import create_workflow, submit, wait_job
from tests.standins.openai_server import OpenAIStandIn

SCHEMA = {
    "type": "object",
    "required": ["name", "score"],
    "properties": {"name": {"type": "string"}, "score": {"type": "integer"}},
}
ANSWER = '{"name": "Acme", "score": 7}'


@pytest.fixture(scope="module")
def failing() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture(scope="module")
async def tenant(settings, engine, failing) -> AsyncIterator[TenantCtx]:
    """A tenant of this module's own, with one named provider on the failing server."""
    ctx = await _tenant(settings, engine, f"Providers {uuid.uuid4().hex[:6]}")
    path = settings.data_path / "secrets" / "tenants" / str(ctx.id) / "primary_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("primary-secret-key")
    resp = await ctx.api.put("/v1/tenant/secrets", json={"refs": {"primary_key": f"file:{path}"}})
    assert resp.status_code == 200, resp.text
    providers = {
        "primary": {
            "base_url": failing.base_url,
            "api_key_secret": "primary_key",
            "models": ["ratelimit", "refuse"],
            "prices": {"ratelimit": [1.0, 2.0]},
        }
    }
    resp = await ctx.api.put("/v1/tenant/providers", json={"providers": providers})
    assert resp.status_code == 200, resp.text
    yield ctx
    await ctx.api.aclose()


def pipeline(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": f"prov-{uuid.uuid4().hex[:10]}",
        "steps": list(steps),
        "template": "<p>{{ input.company }}</p>",
        "delivery": [],
    }


async def run(ctx: TenantCtx, body: dict[str, Any]) -> dict[str, Any]:
    wf = await create_workflow(ctx.api, body)
    resp = await submit(ctx.api, wf["key"])
    assert resp.status_code == 202, resp.text
    return await wait_job(ctx.api, resp.json()["job_id"])


async def test_a_rate_limited_model_falls_back_to_the_next(tenant, failing, llm_standin):
    backup = f"ok-{uuid.uuid4().hex[:8]}"
    job = await run(tenant, pipeline({"id": "one", "models": ["ratelimit", backup], "instructions": "Hello"}))

    assert job["status"] == "delivered", job
    usage = job["steps"][0]["usage"]
    assert (usage["provider"], usage["model"]) == ("default", backup)
    assert [(f["provider"], f["model"]) for f in usage["fallbacks"]] == [("primary", "ratelimit")]
    assert "429" in usage["fallbacks"][0]["error"]
    # The first model was asked at the tenant's provider, with the key its secret holds.
    asked = [r for r in failing.requests if r["model"] == "ratelimit"]
    assert asked and asked[-1]["_authorization"] == "Bearer primary-secret-key"
    assert llm_standin.count(backup) == 1
    assert job["usage"]["by_model"] == [
        {
            "provider": "default",
            "model": backup,
            "calls": 1,
            **{k: usage[k] for k in ("tokens_in", "tokens_out")},
            "cost_usd": 0.0,
        }
    ]


async def test_when_every_model_fails_the_step_fails_with_the_last_error(tenant, failing):
    before = failing.count("refuse")
    job = await run(tenant, pipeline({"id": "one", "models": ["ratelimit", "refuse"], "instructions": "Hello"}))

    assert job["status"] == "failed", job
    step = job["steps"][0]
    assert step["status"] == "failed" and step["usage"] is None
    assert job["error"]["code"] == "LLMRefused"
    assert "every model failed, the last with: refuse refused" in step["error"]
    assert "ratelimit (primary)" in step["error"]
    assert failing.count("refuse") == before + 1


async def test_structured_output_reaches_a_later_steps_template(tenant, llm_standin):
    first = f"json-0-{uuid.uuid4().hex[:8]}"
    second = f"ok-{uuid.uuid4().hex[:8]}"
    job = await run(
        tenant,
        pipeline(
            {"id": "facts", "model": first, "output_schema": SCHEMA, "instructions": f"Facts.\nJSON: {ANSWER}"},
            {
                "id": "use",
                "model": second,
                "inputs": {"facts": "steps.facts"},
                "instructions": "Score {{ facts.score }} for {{ facts.name }}",
            },
        ),
    )

    assert job["status"] == "delivered", job
    asked = next(r for r in llm_standin.requests if r["model"] == first)
    assert asked["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}
    assert llm_standin.count(first) == 1  # valid the first time
    used = next(r for r in llm_standin.requests if r["model"] == second)
    assert used["messages"][0]["content"] == "Score 7 for Acme"


async def test_an_answer_off_its_schema_is_asked_again_with_the_error(tenant, llm_standin):
    model = f"json-1-{uuid.uuid4().hex[:8]}"
    job = await run(
        tenant, pipeline({"id": "facts", "model": model, "output_schema": SCHEMA, "instructions": f"JSON: {ANSWER}"})
    )

    assert job["status"] == "delivered", job
    tries = [r for r in llm_standin.requests if r["model"] == model]
    assert len(tries) == 2
    retry = tries[1]["messages"]
    assert retry[1] == {"role": "assistant", "content": '{"off_schema": true}'}
    assert "'name' is a required property" in retry[2]["content"]
    usage = job["steps"][0]["usage"]
    assert usage["tokens_out"] == 2 * 7  # both tries counted


async def test_an_answer_never_on_its_schema_fails_the_step_by_name(tenant, llm_standin):
    model = f"json-99-{uuid.uuid4().hex[:8]}"
    job = await run(
        tenant, pipeline({"id": "facts", "model": model, "output_schema": SCHEMA, "instructions": f"JSON: {ANSWER}"})
    )

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "LLMOutputInvalid"
    assert "did not match output_schema after 3 tries" in job["steps"][0]["error"]
    assert llm_standin.count(model) == 3  # LLM_OUTPUT_RETRIES (2) more, then never again


async def test_usage_is_grouped_and_kept_to_its_tenant(tenant, tenant_b, settings):
    model = f"ok-{uuid.uuid4().hex[:8]}"
    body = pipeline(
        {"id": "a", "model": model, "instructions": "one"}, {"id": "b", "model": "offline", "instructions": "two"}
    )
    job = await run(tenant, body)
    assert job["status"] == "delivered", job
    viewer = {"Authorization": f"Bearer {tenant.token_for(settings, 'viewer')}"}

    by_model = await tenant.api.get("/v1/usage", params={"group_by": "model"}, headers=viewer)
    assert by_model.status_code == 200, by_model.text
    groups = {g["key"]: g for g in by_model.json()["groups"]}
    mine = job["steps"][0]["usage"] if job["steps"][0]["id"] == "a" else job["steps"][1]["usage"]
    assert groups[model] == {
        "key": model,
        "calls": 1,
        "tokens_in": mine["tokens_in"],
        "tokens_out": mine["tokens_out"],
        "cost_usd": 0.0,
    }

    by_workflow = (await tenant.api.get("/v1/usage", params={"group_by": "workflow"})).json()
    assert {g["key"]: g["calls"] for g in by_workflow["groups"]}[body["key"]] == 2
    by_day = (await tenant.api.get("/v1/usage", params={"group_by": "day"})).json()
    assert sum(g["calls"] for g in by_day["groups"]) == by_day["total"]["calls"] >= 2
    future = (await tenant.api.get("/v1/usage", params={"from": "2999-01-01T00:00:00Z"})).json()
    assert future["groups"] == [] and future["total"]["calls"] == 0

    other = (await tenant_b.api.get("/v1/usage", params={"group_by": "workflow"})).json()
    assert body["key"] not in {g["key"] for g in other["groups"]}
    bad = await tenant.api.get("/v1/usage", params={"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert (await tenant.api.get("/v1/usage", params={"group_by": "tenant"})).status_code == 422


async def test_providers_are_checked_and_only_an_admin_sets_them(tenant, settings):
    editor = {"Authorization": f"Bearer {tenant.token_for(settings, 'editor')}"}
    assert (await tenant.api.get("/v1/tenant/providers", headers=editor)).status_code == 403
    kept = (await tenant.api.get("/v1/tenant/providers")).json()
    assert kept["providers"]["primary"]["models"] == ["ratelimit", "refuse"]
    for bad in (
        {"default": {"base_url": "https://x.example/v1", "models": ["m"]}},
        {"p": {"base_url": "file:///etc/passwd", "models": ["m"]}},
        {"p": {"base_url": "https://x.example/v1", "models": []}},
        {"p": {"base_url": "https://x.example/v1", "models": ["m"], "api_key_secret": "Not A Name"}},
        {"p": {"base_url": "https://x.example/v1", "models": ["m"], "prices": {"m": [-1, 0]}}},
    ):
        resp = await tenant.api.put("/v1/tenant/providers", json={"providers": bad})
        assert resp.status_code == 422, (bad, resp.text)
    assert (await tenant.api.get("/v1/tenant/providers")).json() == kept


async def test_an_llm_task_falls_back_and_a_choice_reads_its_validated_object(tenant, llm_standin):
    model = f"json-1-{uuid.uuid4().hex[:8]}"
    machine = {
        "key": f"prov-sm-{uuid.uuid4().hex[:8]}",
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    "Type": "Task",
                    "Resource": "lodestone:llm",
                    "Parameters": {
                        "prompt": f"Facts.\nJSON: {ANSWER}",
                        "models": ["ratelimit", model],
                        "output_schema": SCHEMA,
                    },
                    "Next": "High?",
                },
                "High?": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.json.score", "NumericGreaterThan": 5, "Next": "High"}],
                    "Default": "Low",
                },
                "High": {"Type": "Pass", "Result": "high", "ResultPath": "$.verdict", "End": True},
                "Low": {"Type": "Pass", "Result": "low", "ResultPath": "$.verdict", "End": True},
            },
        },
    }
    job = await run(tenant, machine)

    assert job["status"] == "succeeded", job
    assert job["output"]["json"] == {"name": "Acme", "score": 7} and job["output"]["verdict"] == "high"
    assert job["output"]["model"] == model and llm_standin.count(model) == 2
    (usage,) = job["usage"]["by_model"]
    assert (usage["provider"], usage["model"], usage["tokens_out"]) == ("default", model, 14)
