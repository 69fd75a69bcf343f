"""Child executions (states:startExecution) and redrive from the failed state, on the session
stack: a parent gets its .sync:2 child's output; fire-and-forget answers at once while the
child's own job runs on; another tenant's key is refused; a failed chain and a failed Map item
are redriven (API and CLI) without running again what succeeded."""

import threading
import time
import uuid
from typing import Any

from devstack.task_service import TaskService
from tests.helpers import create_workflow, wait_job
from tests.test_ops import ops


def machine(key: str, states: dict[str, Any], start: str, resources: list[dict[str, Any]] | None = None) -> dict:
    return {
        "key": key,
        "kind": "state_machine",
        "state_machine": {"StartAt": start, "States": states},
        "resources": resources or [],
    }


def _key(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def _submit(tenant, key: str, body: Any) -> dict:  # type: ignore[no-untyped-def]
    resp = await tenant.api.post("/v1/submissions", json={"workflow_key": key, "input": body})
    assert resp.status_code == 202, resp.text
    return await wait_job(tenant.api, resp.json()["job_id"], timeout=60)


def _doubler(key: str, wait: int = 0) -> dict:
    states: dict[str, Any] = {
        "Double": {"Type": "Pass", "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "End": True}
    }
    if wait:
        states["Pause"] = {"Type": "Wait", "Seconds": wait, "Next": "Double"}
    return machine(key, states, "Pause" if wait else "Double")


def _parent(key: str, child_key: str, suffix: str, arn: bool = True) -> dict:
    target = f"arn:aws:states:us-east-1:123456789012:stateMachine:{child_key}" if arn else child_key
    task = {
        "Type": "Task",
        "Resource": f"arn:aws:states:::states:startExecution{suffix}",
        "Parameters": {"StateMachineArn": target, "Input": {"n.$": "$.n"}},
        "End": True,
    }
    return machine(key, {"Start": task}, "Start")


async def test_a_parent_gets_its_sync2_childs_output_and_the_child_is_a_job(tenant_a):
    child, parent = _key("child"), _key("parent")
    await create_workflow(tenant_a.api, _doubler(child))
    await create_workflow(tenant_a.api, _parent(parent, child, ".sync:2"))
    job = await _submit(tenant_a, parent, {"n": 3})
    assert job["status"] == "succeeded", job
    out = job["output"]
    assert out["Status"] == "SUCCEEDED" and out["Output"] == {"doubled": 6}  # JSON, not a string (.sync:2)
    assert out["Input"] == '{"n":3}'
    child_id = out["ExecutionArn"].rsplit(":", 1)[1]
    assert out["ExecutionArn"] == f"lodestone:{tenant_a.id}:{child}:{child_id}"
    child_job = (await tenant_a.api.get(f"/v1/jobs/{child_id}")).json()
    assert child_job["status"] == "succeeded" and child_job["output"] == {"doubled": 6}
    assert child_job["parent_job_id"] == job["id"] and child_job["workflow_key"] == child
    listed = (await tenant_a.api.get("/v1/jobs", params={"workflow_key": child})).json()["items"]
    assert [j["id"] for j in listed] == [child_id]


async def test_sync_answers_output_as_a_string_and_a_failed_child_fails_the_task(tenant_a):
    child, parent, failing, failing_parent = _key("child"), _key("parent"), _key("failing"), _key("fparent")
    await create_workflow(tenant_a.api, _doubler(child))
    await create_workflow(tenant_a.api, _parent(parent, child, ".sync", arn=False))
    job = await _submit(tenant_a, parent, {"n": 4})
    assert job["status"] == "succeeded", job
    assert job["output"]["Output"] == '{"doubled":8}'
    await create_workflow(
        tenant_a.api, machine(failing, {"No": {"Type": "Fail", "Error": "Child.Broke", "Cause": "on purpose"}}, "No")
    )
    await create_workflow(tenant_a.api, _parent(failing_parent, failing, ".sync"))
    job = await _submit(tenant_a, failing_parent, {"n": 1})
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "States.TaskFailed"
    assert '"Status":"FAILED"' in job["error"]["message"] and "Child.Broke" in job["error"]["message"]


async def test_fire_and_forget_returns_at_once_and_the_child_runs_on(tenant_a):
    child, parent = _key("slow"), _key("launcher")
    await create_workflow(tenant_a.api, _doubler(child, wait=3))
    await create_workflow(tenant_a.api, _parent(parent, child, ""))
    job = await _submit(tenant_a, parent, {"n": 5})
    assert job["status"] == "succeeded", job
    assert set(job["output"]) == {"ExecutionArn", "StartDate"} and isinstance(job["output"]["StartDate"], int)
    child_id = job["output"]["ExecutionArn"].rsplit(":", 1)[1]
    running = (await tenant_a.api.get(f"/v1/jobs/{child_id}")).json()
    assert running["status"] != "succeeded"  # the parent did not wait for its 3 s Wait
    done = await wait_job(tenant_a.api, child_id, timeout=30)
    assert done["status"] == "succeeded" and done["output"] == {"doubled": 10}


async def test_another_tenants_state_machine_is_refused(tenant_a, tenant_b):
    theirs = _key("theirs")
    await create_workflow(tenant_b.api, _doubler(theirs))
    parent = _key("intruder")
    await create_workflow(tenant_a.api, _parent(parent, theirs, ".sync:2"))
    job = await _submit(tenant_a, parent, {"n": 1})
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "StepFunctions.StateMachineDoesNotExistException"
    assert (await tenant_b.api.get("/v1/jobs", params={"workflow_key": theirs})).json()["items"] == []


def _fn(name: str, url: str) -> dict:
    return {"function": name, "http": {"url": f"{url}/{name.lower()}"}}


def _lambda(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"


async def test_a_job_failed_at_its_third_state_is_redriven_from_that_state(tenant_a):
    fixed = threading.Event()

    def three(body: Any) -> Any:
        return {"total": body["one"]["v"] + body["two"]["v"]} if fixed.is_set() else (500, {"error": "Down"})

    key = _key("chain")
    with TaskService(
        tenant_a.webhook_secret, {"one": lambda b: {"v": 1}, "two": lambda b: {"v": 2}, "three": three}
    ) as svc:
        states = {
            "One": {"Type": "Task", "Resource": _lambda("One"), "ResultPath": "$.one", "Next": "Two"},
            "Two": {"Type": "Task", "Resource": _lambda("Two"), "ResultPath": "$.two", "Next": "Three"},
            "Three": {"Type": "Task", "Resource": _lambda("Three"), "End": True},
        }
        resources = [_fn("One", svc.url), _fn("Two", svc.url), _fn("Three", svc.url)]
        await create_workflow(tenant_a.api, machine(key, states, "One", resources))
        job = await _submit(tenant_a, key, {"n": 1})
        assert job["status"] == "failed" and job["error"]["failed_step"] == "Three", job
        assert job["redrive_count"] == 0

        fixed.set()  # the cause is fixed: the service answers now
        resp = await tenant_a.api.post(f"/v1/jobs/{job['id']}/redrive")
        assert resp.status_code == 202, resp.text
        assert resp.json()["redrive_count"] == 1
        verbs = {(a["verb"], a["kind"], a["name"]) for a in resp.json()["actions"]}
        assert verbs == {("skip", "task", "One"), ("skip", "task", "Two"), ("run", "state_machine", "from Three")}
        job = await wait_job(tenant_a.api, job["id"], timeout=60)
        assert job["status"] == "succeeded", job
        assert job["output"] == {"total": 3} and job["redrive_count"] == 1
        assert [len(svc.calls_to(r)) for r in ("one", "two", "three")] == [1, 1, 2]

        refused = await tenant_a.api.post(f"/v1/jobs/{job['id']}/redrive")
        assert refused.status_code == 409 and refused.json()["code"] == "job_not_failed"


async def test_a_map_whose_third_item_failed_reruns_only_that_item(settings, tenant_a):
    fixed = threading.Event()

    def work(body: Any) -> Any:
        if body["i"] == 3 and not fixed.is_set():
            time.sleep(1)  # the other items finish first
            return 500, {"error": "ItemBroke"}
        return {"done": body["i"]}

    key = _key("each")
    with TaskService(tenant_a.webhook_secret, {"work": work}) as svc:
        processor = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": _lambda("Work"), "End": True}}}
        states = {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"i.$": "$$.Map.Item.Value"},
                "ItemProcessor": processor,
                "End": True,
            }
        }
        await create_workflow(tenant_a.api, machine(key, states, "Each", [_fn("Work", svc.url)]))
        job = await _submit(tenant_a, key, {"items": [1, 2, 3, 4, 5]})
        assert job["status"] == "failed", job

        fixed.set()
        code, out, err = await ops(settings, "redrive", job["id"])
        assert code == 0, err
        job = await wait_job(tenant_a.api, job["id"], timeout=60)
        assert job["status"] == "succeeded", job
        assert job["output"] == [{"done": i} for i in range(1, 6)]
        assert sorted(c.body["i"] for c in svc.calls_to("work")) == [1, 2, 3, 3, 4, 5]
        assert job["redrive_count"] == 1
