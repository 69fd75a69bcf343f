"""A state machine from POST /v1/submissions to its output on the session stack: the demo's
competitor brief (Choice, Map with a Retry on each item, Parallel with an llm Task and a Catch,
Wait), its http Tasks calling a local service stand-in, signed; its path in GET /v1/jobs/{id};
its activities named by state in Temporal; and a machine that ends in a Fail state."""

import json
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from devstack.demo_machine import KEY, PROFILES, SUBMISSION, machine_definition, service
from tests.helpers import create_workflow, wait_job

EXAMPLE = Path(__file__).parent.parent / "examples" / "state-machines" / "competitor-brief.json"


async def run_brief(tenant, body: dict) -> tuple[dict, list]:  # type: ignore[no-untyped-def]
    with service(tenant.webhook_secret) as svc:
        await create_workflow(tenant.api, machine_definition(svc.url))
        resp = await tenant.api.post("/v1/submissions", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert resp.status_code == 202, resp.text
        job = await wait_job(tenant.api, resp.json()["job_id"], timeout=90)
        calls = list(svc.calls)
    return job, calls


async def test_the_demo_machine_runs_from_submission_to_its_output(tenant_a, temporal):
    job, calls = await run_brief(tenant_a, SUBMISSION)
    assert job["status"] == "succeeded", job
    out = job["output"]
    names = SUBMISSION["input"]["competitors"]
    assert out["company"] == "Acme Anvils"
    # The Map's results in item order, each the lookup's Payload as the ResultSelector picked it
    assert out["competitors"] == [{"name": n, **PROFILES[n]} for n in names]
    assert isinstance(out["summary"], str) and out["summary"].strip()
    # The scoring service failed; the Catch routed to Unscored with the error's name
    assert out["threat"] == {"score": None, "reason": "ModelUnavailable"}

    path = job["path"]
    top = [e["state"] for e in path if e["kind"] == "entered" and "/" not in e["path"]]
    assert top == ["CheckInput", "LookUpEach", "Analyse", "Settle", "Brief"]
    retries = [e for e in path if e["kind"] == "retry"]
    assert len(retries) == len(names) and {e["error"] for e in retries} == {"ServiceBusy"}
    assert all(e["delay_seconds"] == 1 for e in retries)
    caught = [(e["state"], e["error"], e["next"]) for e in path if e["kind"] == "caught"]
    assert caught == [("Score", "ModelUnavailable", "Unscored")]
    assert [e["seq"] for e in path] == list(range(len(path)))

    # Every call reached the service signed: each lookup twice (busy, then answered), one score
    assert calls and all(c.verified for c in calls)
    lookups = sorted(c.body["name"] for c in calls if c.route == "lookup")
    assert lookups == sorted(names * 2)
    assert [c.route for c in calls].count("score") == 1

    history = await temporal.get_workflow_handle(job["id"]).fetch_history()
    summaries = [
        e.user_metadata.summary.data.decode()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "run_machine_task"
    ]
    assert sorted(s.strip('"') for s in summaries) == sorted(
        ["Lookup"] * 3 + ["Lookup (attempt 2)"] * 3 + ["Summarise", "Score"]
    )
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == len(names) + 1  # a retry interval per competitor, and the Wait


async def test_a_machine_that_ends_in_a_fail_state_fails_the_job_with_its_error(tenant_a):
    job, calls = await run_brief(tenant_a, {"workflow_key": KEY, "input": {"company": "Acme", "competitors": []}})
    assert job["status"] == "failed", job
    assert calls == []
    entered = [e["state"] for e in job["path"] if e["kind"] == "entered"]
    assert entered == ["CheckInput", "NothingToDo"]
    assert "NoCompetitors" in json.dumps(job.get("error") or job.get("failure"))


def test_the_example_is_the_demo_definition():
    """examples/state-machines/competitor-brief.json is what `make run` stores, its service at
    the address the example names."""
    example = json.loads(EXAMPLE.read_text())
    service_url = example["resources"][0]["http"]["url"].rsplit("/", 1)[0]
    assert example == machine_definition(service_url)


async def test_keys_stay_in_the_order_they_were_written(tenant_a):
    """Input, definition and output keep an object's key order end to end, as Step Functions
    does: States.JsonToString shows it (jsonb would put shorter keys first; Temporal's own
    JSON converter sorts them)."""
    definition = {
        "key": f"order-{uuid.uuid4().hex[:8]}",
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Show",
            "States": {
                "Show": {
                    "Type": "Pass",
                    "Parameters": {"zulu": 1, "input.$": "States.JsonToString($)", "alpha": 2},
                    "ResultPath": "$.shown",
                    "Next": "Literal",
                },
                "Literal": {"Type": "Pass", "Result": {"yankee": 1, "bravo": {"z": 1, "a": 2}}, "End": True},
            },
        },
    }
    await create_workflow(tenant_a.api, definition)
    body = {"workflow_key": definition["key"], "input": {"zebra": 1, "apple": 2, "mango": {"b": 1, "a": 2}}}
    resp = await tenant_a.api.post("/v1/submissions", json=body)
    assert resp.status_code == 202, resp.text
    job = await wait_job(tenant_a.api, resp.json()["job_id"], timeout=60)
    assert job["status"] == "succeeded", job
    shown = next(e["output"]["shown"] for e in job["path"] if e["kind"] == "exited" and e["state"] == "Show")
    assert list(shown) == ["zulu", "input", "alpha"]
    assert shown["input"] == '{"zebra":1,"apple":2,"mango":{"b":1,"a":2}}'
    assert job["output"] == {"yankee": 1, "bravo": {"z": 1, "a": 2}}
    assert list(job["output"]) == ["yankee", "bravo"] and list(job["output"]["bravo"]) == ["z", "a"]
