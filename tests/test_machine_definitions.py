"""State-machine definitions through POST /v1/workflows: every problem in one 422, each at its
JSON pointer (the ASL document's under /state_machine, the bindings' under /resources); a
good one stored and versioned like a pipeline, shown with its kind."""

import uuid

from sqlmodel import select

from lodestone.db import tenant_session
from schema.definitions import DefinitionInvalid, validate_definition
from schema.tables import WorkflowDefinition
from tests.helpers import create_workflow, definition

SM = "/state_machine/States"


def bad_machine(key: str) -> dict:
    """One definition with one of each problem the issue names."""
    return {
        "key": key,
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Start",
            "States": {
                "Start": {"Type": "Pass", "Next": "Route"},
                "Route": {
                    "Type": "Choice",
                    "Choices": [
                        {"Variable": "$.x[", "StringEquals": "a", "Next": "Each"},  # bad JSONPath
                        {"Variable": "$.x", "StringEquals": "b", "Next": "Weird"},
                    ],
                    "Default": "Ghost",  # no such state
                },
                "Each": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ItemProcessor": {
                        "StartAt": "Call",
                        "States": {
                            "Call": {  # no binding handles this function
                                "Type": "Task",
                                "Resource": "arn:aws:states:::lambda:invoke",
                                "Parameters": {"FunctionName": "Unbound", "Payload.$": "$"},
                                "End": True,
                            }
                        },
                    },
                    "Next": "Expr",
                },
                "Weird": {"Type": "Sleep", "Next": "Start"},  # unknown state type
                "Expr": {
                    "Type": "Pass",
                    "QueryLanguage": "JSONata",
                    "Output": "{% $states.input.( %}",  # bad JSONata
                    "Bogus": 1,  # unknown field
                    "Next": "Start",  # a loop: no terminal state is reachable
                },
                "Island": {"Type": "Pass", "End": True},  # unreachable
            },
        },
        "resources": [{"function": "Other", "http": {"url": "ftp://svc.example/other"}}],  # not http(s)
    }


EXPECTED = {
    (f"{SM}/Weird/Type", "invalid_state_machine"),
    (f"{SM}/Expr/Bogus", "invalid_state_machine"),
    (f"{SM}/Route/Default", "invalid_state_machine"),
    (f"{SM}/Island", "invalid_state_machine"),
    (SM, "invalid_state_machine"),
    (f"{SM}/Route/Choices/0/Variable", "invalid_state_machine"),
    (f"{SM}/Expr/Output", "invalid_state_machine"),
    (f"{SM}/Each/ItemProcessor/States/Call/Resource", "unbound_resource"),
    ("/resources/0/http/url", "invalid_binding"),
}


def good_machine(key: str, url: str = "https://svc.example/check") -> dict:
    return {
        "key": key,
        "kind": "state_machine",
        "description": "checks stock",
        "input_schema": {"type": "object", "properties": {"sku": {"type": "string"}}},
        "state_machine": {
            "StartAt": "Check",
            "States": {
                "Check": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "CheckStock", "Payload.$": "$"},
                    "ResultSelector": {"stock.$": "$.Payload.stock"},
                    "Next": "Done",
                },
                "Done": {"Type": "Succeed"},
            },
        },
        "resources": [{"function": "CheckStock", "http": {"url": url}}],
    }


def test_every_problem_is_found_at_once():
    try:
        validate_definition(bad_machine("sm-pure"))
    except DefinitionInvalid as e:
        found = {(p.pointer, p.code) for p in e.problems}
    else:
        raise AssertionError("a definition with nine problems was accepted")
    assert found == EXPECTED


async def test_api_answers_one_422_with_every_problem_and_stores_nothing(tenant_a, engine):
    key = f"sm-bad-{uuid.uuid4().hex[:8]}"
    resp = await tenant_a.api.post("/v1/workflows", json=bad_machine(key))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    errors = problem["errors"]
    assert {(e["pointer"], e["code"]) for e in errors} == EXPECTED
    assert all(e["message"] for e in errors)
    # Today's fields carry the first problem, so a client reading only them still sees one.
    assert (problem["pointer"], problem["code"], problem["detail"]) == (
        errors[0]["pointer"],
        errors[0]["code"],
        errors[0]["message"],
    )
    unbound = next(e for e in errors if e["code"] == "unbound_resource")
    assert "Unbound" in unbound["message"]
    async with tenant_session(engine, tenant_a.id) as s:
        assert (await s.exec(select(WorkflowDefinition).where(WorkflowDefinition.key == key))).all() == []


async def test_envelope_problems_join_the_list(tenant_a):
    body = {**good_machine(f"sm-env-{uuid.uuid4().hex[:8]}"), "steps": [], "resources": "none"}
    body["state_machine"]["States"]["Check"]["Parameters"]["FunctionName"] = "Elsewhere"
    problem = (await tenant_a.api.post("/v1/workflows", json=body)).json()
    assert {(e["pointer"], e["code"]) for e in problem["errors"]} == {
        ("", "schema_violation"),  # `steps` is not a state machine's field
        ("/resources", "schema_violation"),  # not a list
    }


async def test_a_good_machine_is_stored_versioned_and_listed_with_its_kind(tenant_a):
    key = f"sm-good-{uuid.uuid4().hex[:8]}"
    first = await create_workflow(tenant_a.api, good_machine(key))
    second = await create_workflow(tenant_a.api, good_machine(key, "https://svc.example/v2"))
    assert (first["kind"], first["version"], second["version"]) == ("state_machine", 1, 2)
    assert second["definition"]["resources"][0]["http"]["url"] == "https://svc.example/v2"
    current = (await tenant_a.api.get(f"/v1/workflows/{key}")).json()
    old = (await tenant_a.api.get(f"/v1/workflows/{key}?version=1")).json()
    assert (current["version"], old["version"]) == (2, 1)
    assert old["definition"] == good_machine(key)
    listed = {w["key"]: w for w in (await tenant_a.api.get("/v1/workflows")).json()}
    assert (listed[key]["kind"], listed[key]["version"]) == ("state_machine", 2)


async def test_pipelines_are_unchanged(tenant_a):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    assert wf["kind"] == "pipeline"
    explicit = await create_workflow(tenant_a.api, {**definition("http://127.0.0.1:9/hook"), "kind": "pipeline"})
    assert explicit["kind"] == "pipeline"
    broken = definition("http://127.0.0.1:9/hook")
    broken["steps"][0]["inputs"]["c"] = "input.missing"  # not a field of its input_schema
    problem = (await tenant_a.api.post("/v1/workflows", json=broken)).json()
    assert (problem["code"], problem["pointer"]) == ("unknown_ref", "/steps/0/inputs/c")
    assert "errors" not in problem  # a pipeline's 422 names its first problem only, as before
