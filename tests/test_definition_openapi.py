"""The OpenAPI document types a workflow definition by the definition format's JSON Schema,
so /docs shows it, and that form accepts and refuses exactly what the format does."""

import copy
import json
from pathlib import Path

import httpx
import jsonschema
import pytest

from schema.definition_kinds import definition_schema
from tests.helpers import definition

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def openapi(stack, settings) -> dict:
    answer = httpx.get(f"{settings.api_url}/openapi.json", timeout=30)
    assert answer.status_code == 200
    return answer.json()


def request_schema(openapi: dict, path: str, method: str) -> dict:
    return openapi["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def test_post_workflows_body_is_the_definition_format(openapi):
    body = request_schema(openapi, "/v1/workflows", "post")
    assert "$defs/" not in json.dumps(body)  # every reference resolves inside the OpenAPI document
    pipeline, machine = body["oneOf"]
    assert {"key", "kind", "name", "input_schema", "steps", "template", "outputs", "delivery"} == set(
        pipeline["properties"]
    )
    assert pipeline["required"] == ["key", "steps", "template"]
    assert {"id", "model", "models", "output_schema", "instructions", "inputs", "depends_on"} == set(
        pipeline["properties"]["steps"]["items"]["properties"]
    )
    assert {"key", "kind", "description", "input_schema", "state_machine", "resources"} == set(machine["properties"])
    assert machine["properties"]["kind"] == {"const": "state_machine"}
    assert body["description"] == definition_schema()["description"]


def definitions() -> list[tuple[str, dict]]:
    """Every example, and variants each valid or not in the format's own eyes."""
    found = [
        (p.name, json.loads(p.read_text()))
        for p in sorted(EXAMPLES.rglob("*.json"))
        if not p.name.endswith(".submission.json")
    ]
    pipeline = definition("https://example.com/hook")
    machine = next(d for _, d in found if d.get("kind") == "state_machine")
    variants = {
        "pipeline kind named": {**pipeline, "kind": "pipeline"},
        "unknown kind": {**pipeline, "kind": "dag"},
        "machine without kind": {k: v for k, v in machine.items() if k != "kind"},
        "machine as pipeline": {**machine, "kind": "pipeline"},
        "pipeline as machine": {**pipeline, "kind": "state_machine"},
        "no steps": {k: v for k, v in pipeline.items() if k != "steps"},
        "bad key": {**pipeline, "key": "Not A Key"},
        "email target": {**pipeline, "delivery": [{"type": "email", "to": "a@example.com"}]},
        "email target with a url": {**pipeline, "delivery": [{"type": "email", "to": "a@example.com", "url": "x"}]},
        "extra field": {**pipeline, "colour": "blue"},
        "empty": {},
    }
    return found + [(name, copy.deepcopy(d)) for name, d in variants.items()]


@pytest.mark.parametrize(("name", "document"), definitions(), ids=[n for n, _ in definitions()])
def test_the_openapi_form_judges_as_the_format_does(openapi, name, document):
    ours = jsonschema.Draft202012Validator(request_schema(openapi, "/v1/workflows", "post"))
    theirs = jsonschema.Draft202012Validator(definition_schema())
    assert ours.is_valid(document) == theirs.is_valid(document), name
