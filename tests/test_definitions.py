"""Bad workflow definitions and bad input get a clear error, and no job runs."""

import copy

import pytest
from sqlmodel import func, select

from lodestone.db import tenant_session
from schema.dag import DependencyCycle, UnknownStepRef, step_dependencies, topological_order
from schema.definitions import DefinitionInvalid, validate_definition
from schema.tables import Job, WorkflowDefinition
from tests.helpers import create_workflow, definition, submit

BASE = definition("http://127.0.0.1:9/hook", key="base")
NESTED = "{{ " + "(" * 9000 + "1" + ")" * 9000 + " }}"  # far deeper than the parser's recursion


def broken(mutate) -> dict:
    d = copy.deepcopy(BASE)
    mutate(d)
    return d


CASES = {
    "cycle": (broken(lambda d: d["steps"][0].update(depends_on=["write"])), "dependency_cycle"),
    "self_loop": (broken(lambda d: d["steps"][0].update(depends_on=["research"])), "dependency_cycle"),
    "unknown_step": (broken(lambda d: d["steps"][1]["inputs"].update(x="steps.nope")), "unknown_ref"),
    "unknown_depends": (broken(lambda d: d["steps"][1].update(depends_on=["ghost"])), "unknown_ref"),
    "unknown_field": (broken(lambda d: d["steps"][0]["inputs"].update(c="input.missing")), "unknown_ref"),
    "bad_template": (broken(lambda d: d.update(template="<p>{% for x in %}</p>")), "bad_template"),
    "bad_instructions": (broken(lambda d: d["steps"][0].update(instructions="{{ unclosed")), "bad_template"),
    "include": (broken(lambda d: d.update(template="<p>{% include 'other.html' %}</p>")), "bad_template"),
    "import": (broken(lambda d: d["steps"][0].update(instructions="{% import 'm' as m %}{{ m.x() }}")), "bad_template"),
    "nested_template": (broken(lambda d: d.update(template=NESTED)), "bad_template"),
    "nested_instructions": (broken(lambda d: d["steps"][0].update(instructions=NESTED)), "bad_template"),
    "no_steps": (broken(lambda d: d.update(steps=[])), "schema_violation"),
    "bad_target": (broken(lambda d: d.update(delivery=[{"type": "fax", "url": "x"}])), "schema_violation"),
    "file_url": (
        broken(lambda d: d.update(delivery=[{"type": "webhook", "url": "file:///etc/passwd"}])),
        "schema_violation",
    ),
    "duplicate_ids": (broken(lambda d: d["steps"].append(dict(d["steps"][0]))), "invalid_dag"),
}


@pytest.mark.parametrize("name", CASES)
def test_validator_names_the_problem(name):
    body, code = CASES[name]
    with pytest.raises(DefinitionInvalid) as err:
        validate_definition(body)
    assert err.value.code == code
    assert err.value.message


def test_dag_order_and_cycle_message():
    deps = step_dependencies(BASE["steps"])
    assert deps["write"] == ["angles", "outline"]
    assert topological_order(deps) == ["research", "angles", "outline", "write"]
    with pytest.raises(DependencyCycle, match="a -> b -> a|b -> a -> b"):
        topological_order({"a": ["b"], "b": ["a"]})
    with pytest.raises(UnknownStepRef):
        step_dependencies([{"id": "a", "depends_on": ["z"]}])


@pytest.mark.parametrize("name", ["cycle", "unknown_step", "bad_template", "include", "import", "nested_template"])
async def test_api_rejects_bad_definition_and_runs_nothing(name, tenant_a, engine):
    body, code = CASES[name]
    body = {**body, "key": f"bad-{name.replace('_', '-')}"}
    async with tenant_session(engine, tenant_a.id) as s:
        jobs_before = (await s.exec(select(func.count()).select_from(Job))).one()
    resp = await tenant_a.api.post("/v1/workflows", json=body)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["code"] == code and problem["detail"]
    assert (await submit(tenant_a.api, body["key"])).status_code == 404
    async with tenant_session(engine, tenant_a.id) as s:
        assert (await s.exec(select(func.count()).select_from(Job))).one() == jobs_before
        stored = (await s.exec(select(WorkflowDefinition).where(WorkflowDefinition.key == body["key"]))).all()
    assert stored == []


async def test_submission_input_is_validated(tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    resp = await tenant_a.api.post("/v1/submissions", json={"workflow_key": wf["key"], "input": {"company": 5}})
    assert resp.status_code == 422
    assert resp.json()["code"] == "invalid_input"
    resp = await tenant_a.api.post(
        "/v1/submissions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422 and resp.json()["code"] == "validation_error"


async def test_new_version_supersedes_old(tenant_a):
    body = definition("http://127.0.0.1:9/hook", key="versioned")
    v1 = await create_workflow(tenant_a.api, body)
    v2 = await create_workflow(tenant_a.api, {**body, "name": "second"})
    assert (v1["version"], v2["version"]) == (1, 2)
    latest = (await tenant_a.api.get("/v1/workflows/versioned")).json()
    assert latest["version"] == 2 and latest["definition"]["name"] == "second"
    assert (await tenant_a.api.get("/v1/workflows/versioned?version=1")).json()["version"] == 1
    keys = [w["key"] for w in (await tenant_a.api.get("/v1/workflows")).json()]
    assert keys.count("versioned") == 1
