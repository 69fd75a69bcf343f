"""Redrive with a choice of definition version, from the API and the CLI alike (one
implementation: services/redrive.py): `original` runs the version the job was submitted
with, `latest` its workflow's current one, which the job then records."""

import copy
import uuid

from sqlmodel import select

from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.tables import Job, WorkflowDefinition
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.test_ops import ops


def cli_plan(out: str) -> dict[str, object]:
    """The CLI's plan as the API's fields: version, start, actions."""
    rows = [line.split("\t") for line in out.splitlines()]
    head = next(r for r in rows if r[0].startswith("version "))
    return {
        "version": int(head[0].split()[1]),
        "previous_version": int(head[0].rstrip(")").split()[-1]),
        "start": head[1].removeprefix("starts at: "),
        "actions": [r for r in rows if r[0] in ("skip", "run")],
    }


def api_plan(body: dict[str, object]) -> dict[str, object]:
    actions = body["actions"]
    assert isinstance(actions, list)
    return {
        "version": body["version"],
        "previous_version": body["previous_version"],
        "start": body["start"],
        "actions": [[a["verb"], a["kind"], a["name"], a["state"]] for a in actions],
    }


async def version_of(engine, tenant, job_id: str) -> int:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, tenant.id) as s:
        job = await s.get(Job, uuid.UUID(job_id))
        assert job is not None
        row = (
            await s.exec(select(WorkflowDefinition).where(WorkflowDefinition.id == job.workflow_definition_id))
        ).one()
    return row.version


async def test_redrive_original_fails_again_and_latest_runs_the_fixed_version(
    settings, tenant_a, tenant_b, engine, llm_standin
):
    tag = uuid.uuid4().hex[:8]
    broken, fixed, steady = f"ok-rv-{tag}-broken", f"ok-rv-{tag}-fixed", f"ok-rv-{tag}-research"
    llm_standin.broken.add(broken)  # version 1's angles step asks a model that answers nothing
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        v1 = definition(hook.url)
        v1["steps"][0]["model"], v1["steps"][1]["model"] = steady, broken
        wf = await create_workflow(tenant_a.api, v1)
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        first = await wait_job(tenant_a.api, job_id)
        assert first["status"] == "failed" and first["error"]["failed_step"] == "step:angles", first

        # Versions the job's input or kind no longer fits are refused, changing nothing.
        strict = copy.deepcopy(v1)
        strict["input_schema"]["required"] = ["company", "country"]
        await create_workflow(tenant_a.api, strict)
        resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive", params={"version": "latest"})
        assert resp.status_code == 422 and resp.json()["code"] == "input_no_longer_valid", resp.text
        assert "country" in resp.json()["detail"]
        pass_only = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
        await create_workflow(tenant_a.api, {"key": wf["key"], "kind": "state_machine", "state_machine": pass_only})
        resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive", params={"version": "latest"})
        assert resp.status_code == 409 and resp.json()["code"] == "definition_kind_changed", resp.text
        code, _, err = await ops(settings, "redrive", job_id, "--version", "latest")
        assert code == 1 and "state_machine" in err

        v4 = copy.deepcopy(v1)
        v4["steps"][1]["model"] = fixed  # the fix: angles asks a model that answers
        assert (await create_workflow(tenant_a.api, v4))["version"] == 4

        # Dry runs: the same plan from the API and the CLI, naming the version; nothing changes.
        resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive", params={"version": "latest", "dry_run": "true"})
        assert resp.status_code == 200, resp.text
        planned = resp.json()
        assert planned["dry_run"] and planned["run_id"] is None
        assert (planned["version"], planned["previous_version"], planned["start"]) == (4, 1, "step angles")
        verbs = {(a["kind"], a["name"]): a["verb"] for a in planned["actions"]}
        assert verbs[("step", "research")] == "skip" and verbs[("step", "angles")] == "run"
        code, out, err = await ops(settings, "redrive", job_id, "--dry-run", "--version", "latest")
        assert code == 0, err
        assert cli_plan(out) == api_plan(planned)
        resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive", params={"dry_run": "true"})
        original = resp.json()
        assert (original["version"], original["start"]) == (1, "step angles")
        code, out, err = await ops(settings, "redrive", job_id, "--dry-run")
        assert code == 0 and cli_plan(out) == api_plan(original), err
        after = (await tenant_a.api.get(f"/v1/jobs/{job_id}")).json()
        assert (after["status"], after["redrive_count"], after["updated_at"]) == ("failed", 0, first["updated_at"])
        assert await version_of(engine, tenant_a, job_id) == 1
        assert llm_standin.count(fixed) == 0

        # Another tenant's job is not found, whatever the version.
        resp = await tenant_b.api.post(f"/v1/jobs/{job_id}/redrive", params={"version": "latest", "dry_run": "true"})
        assert resp.status_code == 404, resp.text

        # original: version 1 again, failing the same way.
        resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive")
        assert resp.status_code == 202 and resp.json()["version"] == 1, resp.text
        again = await wait_job(tenant_a.api, job_id)
        assert again["status"] == "failed" and again["error"] == first["error"], again
        assert again["redrive_count"] == 1 and llm_standin.count(fixed) == 0

        # latest: version 4 runs, from the step that changed, and the job records it.
        research = llm_standin.count(steady)
        assert research == 1
        resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive", params={"version": "latest"})
        assert resp.status_code == 202, resp.text
        assert (resp.json()["version"], resp.json()["redrive_count"]) == (4, 2)
        done = await wait_job(tenant_a.api, job_id)
        assert done["status"] == "delivered", done
        assert hook.wait_for_success(timeout=10) is not None
    assert llm_standin.count(fixed) == 1  # angles ran on version 4's model
    assert llm_standin.count(steady) == research  # research (unchanged) was not asked again
    assert await version_of(engine, tenant_a, job_id) == 4
    resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive", params={"version": "latest"})
    assert resp.status_code == 409 and resp.json()["code"] == "job_not_failed"


async def test_a_state_machine_redriven_on_latest_runs_the_new_version_from_start_at(tenant_a):
    key = f"rv-machine-{uuid.uuid4().hex[:8]}"
    broken = {"StartAt": "Check", "States": {"Check": {"Type": "Fail", "Error": "Broken", "Cause": "version 1"}}}
    fixed = {"StartAt": "Check", "States": {"Check": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}
    await create_workflow(tenant_a.api, {"key": key, "kind": "state_machine", "state_machine": broken})
    job_id = (await submit(tenant_a.api, key, {})).json()["job_id"]
    first = await wait_job(tenant_a.api, job_id)
    assert first["status"] == "failed" and first["error"]["code"] == "Broken", first
    await create_workflow(tenant_a.api, {"key": key, "kind": "state_machine", "state_machine": fixed})

    plan = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive", params={"version": "latest", "dry_run": "true"})
    assert plan.status_code == 200, plan.text
    assert (plan.json()["version"], plan.json()["start"]) == (2, "from StartAt Check")

    resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive")  # original: version 1 fails again
    assert resp.status_code == 202 and resp.json()["version"] == 1, resp.text
    again = await wait_job(tenant_a.api, job_id)
    assert again["status"] == "failed" and again["error"] == first["error"], again

    resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive", params={"version": "latest"})
    assert resp.status_code == 202, resp.text
    done = await wait_job(tenant_a.api, job_id)
    assert done["status"] == "succeeded" and done["output"] == {"ok": True}, done
