"""Every definition in examples/ runs: stored through POST /v1/workflows, its sample
submission posted to POST /v1/submissions, delivered to a webhook, on the session stack."""

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pypdf
import pytest

from devstack.demo import demo_definition
from devstack.receiver import WebhookReceiver
from lodestone.llm import OFFLINE_MODEL
from tests.helpers import create_workflow, wait_job

EXAMPLES = Path(__file__).parent.parent / "examples"
NAMES = sorted(p.name.removesuffix(".json") for p in EXAMPLES.glob("*.json") if not p.name.endswith(".submission.json"))


def load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def test_each_example_has_a_sample_submission():
    assert len(NAMES) >= 3
    for name in NAMES:
        definition, submission = load(f"{name}.json"), load(f"{name}.submission.json")
        assert submission["workflow_key"] == definition["key"] == name


def test_lead_magnet_is_the_demo_definition():
    """examples/lead-magnet.json is what `make run` submits, less the demo's own webhook, on
    the offline model (the demo's runs on the local one)."""
    demo = demo_definition("http://127.0.0.1:1/hooks/lodestone", OFFLINE_MODEL)
    del demo["delivery"]
    assert load("lead-magnet.json") == demo


@pytest.mark.parametrize("name", NAMES)
async def test_example_is_delivered(tenant_a, name):
    definition, submission = load(f"{name}.json"), load(f"{name}.submission.json")
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        stored = await create_workflow(
            tenant_a.api,
            {**definition, "delivery": [*definition.get("delivery", []), {"type": "webhook", "url": hook.url}]},
        )
        assert stored["key"] == name
        resp = await tenant_a.api.post(
            "/v1/submissions", json=submission, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        job = await wait_job(tenant_a.api, job_id, timeout=90)
        received = hook.wait_for_success(timeout=10)

    assert job["status"] == "delivered", job
    assert {s["id"] for s in job["steps"]} == {s["id"] for s in definition["steps"]}
    assert all(s["status"] == "completed" for s in job["steps"]), job["steps"]
    assert received is not None and received.verified
    payload = json.loads(received.body)
    assert payload["data"]["job_id"] == job_id
    kinds = {a["kind"] for a in payload["data"]["artifacts"]}
    assert kinds == set(definition.get("outputs", ["html"]))

    html = next(a for a in job["artifacts"] if a["kind"] == "html")
    body = (await tenant_a.api.get(f"/v1/artifacts/{html['id']}")).text
    name_in_report = next(iter(submission["input"].values())).split(" (")[0]
    assert name_in_report in body and "[offline output" in body
    if "pdf" in kinds:
        pdf = next(a for a in job["artifacts"] if a["kind"] == "pdf")
        data = (await tenant_a.api.get(f"/v1/artifacts/{pdf['id']}")).content
        assert data.startswith(b"%PDF")
        text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)
        assert name_in_report in " ".join(text.split())


async def test_readme_walkthrough_without_a_target(tenant_a):
    """The README's first workflow posts examples/lead-magnet.json as it is, with no
    delivery target: the job still ends delivered, its artifacts stored."""
    definition, submission = load("lead-magnet.json"), load("lead-magnet.submission.json")
    assert "delivery" not in definition
    await create_workflow(tenant_a.api, definition)
    resp = await tenant_a.api.post("/v1/submissions", json=submission, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert resp.status_code == 202, resp.text
    job = await wait_job(tenant_a.api, resp.json()["job_id"], timeout=90)
    assert job["status"] == "delivered", job
    assert job["deliveries"] == []
    assert {a["kind"] for a in job["artifacts"]} == {"html", "pdf"}
