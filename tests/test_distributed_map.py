"""The distributed Map on the session stack: 10,000 items of a JSON upload through a Pass
processor in child workflows, their results written to the store (a manifest and a results
file, as Step Functions writes them); a CSV upload in batches through an http Task; and a
failed-items threshold that trips. The parent's and each child's history are measured."""

import json
import uuid
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from devstack.task_service import TaskService
from tests.helpers import create_workflow, wait_job

ITEMS = 10_000
PROCESSOR = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}


def reader(kind: str, key_path: str, **config: Any) -> dict[str, Any]:
    return {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": kind, **config},
        "Parameters": {"Bucket": "lodestone", "Key.$": key_path},
    }


def machine(url: str) -> dict[str, Any]:
    double = {"Type": "Pass", "Parameters": {"n.$": "$.n", "double.$": "States.MathAdd($.n, $.n)"}, "End": True}
    price = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True, "OutputPath": "$.Payload",
             "Parameters": {"FunctionName": "Price", "Payload.$": "$"}}  # fmt: skip
    return {
        "key": f"dmap-{uuid.uuid4().hex[:8]}",
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Double",
            "States": {
                "Double": {
                    "Type": "Map",
                    "ItemReader": reader("JSON", "$.numbers"),
                    "ItemSelector": {"n.$": "$$.Map.Item.Value.n", "index.$": "$$.Map.Item.Index"},
                    "ItemProcessor": {**PROCESSOR, "StartAt": "Add", "States": {"Add": double}},
                    "MaxConcurrency": 40,
                    "ResultWriter": {
                        "Resource": "arn:aws:states:::s3:putObject",
                        "Parameters": {"Bucket": "lodestone", "Prefix": "doubles"},
                    },
                    "ResultPath": "$.doubles",
                    "Next": "Price",
                },
                "Price": {
                    "Type": "Map",
                    "ItemReader": reader("CSV", "$.skus"),
                    "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"currency.$": "$.currency"}},
                    "ItemProcessor": {**PROCESSOR, "StartAt": "Quote", "States": {"Quote": price}},
                    "ResultPath": "$.prices",
                    "End": True,
                },
            },
        },
        "resources": [{"function": "Price", "http": {"url": f"{url}/price"}}],
    }


def quote(body: Any) -> Any:
    return {"currency": body["BatchInput"]["currency"], "skus": [row["sku"] for row in body["Items"]]}


async def upload(tenant, content: bytes) -> str:  # type: ignore[no-untyped-def]
    resp = await tenant.api.post("/v1/uploads", content=content)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["upload_id"])


async def history_sizes(temporal: Client, workflow_id: str, run_id: str | None = None) -> list[tuple[int, int]]:
    """(events, bytes) of each run of a workflow, following continue-as-new."""
    runs = []
    while True:
        history = await temporal.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append((len(history.events), sum(e.ByteSize() for e in history.events)))
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return runs
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


async def test_ten_thousand_items_run_in_child_workflows_to_their_results(tenant_a, temporal):
    numbers = await upload(tenant_a, json.dumps([{"n": i} for i in range(ITEMS)]).encode())
    skus = await upload(tenant_a, b"sku,size\nA-1,S\nA-2,M\nA-3,L\nA-4,XL\nA-5,S\n")
    with TaskService(tenant_a.webhook_secret, {"price": quote}) as svc:
        await create_workflow(tenant_a.api, body := machine(svc.url))
        inp = {"numbers": numbers, "skus": skus, "currency": "EUR"}
        resp = await tenant_a.api.post("/v1/submissions", json={"workflow_key": body["key"], "input": inp})
        assert resp.status_code == 202, resp.text
        job = await wait_job(tenant_a.api, resp.json()["job_id"], timeout=240)
        calls = [c.body for c in svc.calls]
    assert job["status"] == "succeeded", (job.get("error") or {}).get("message")
    out = job["output"]
    # The ResultWriter's answer, as Step Functions returns it
    details = out["doubles"]["ResultWriterDetails"]
    assert details["Bucket"] == "lodestone" and details["Key"].startswith("doubles/")
    assert details["Key"].endswith("/manifest.json")
    assert out["doubles"]["MapRunArn"].endswith(f"/Double:{details['Key'].split('/')[1]}")
    # Three batches of at most two CSV rows, each one call with its BatchInput, results in order
    assert out["prices"] == [
        {"currency": "EUR", "skus": ["A-1", "A-2"]},
        {"currency": "EUR", "skus": ["A-3", "A-4"]},
        {"currency": "EUR", "skus": ["A-5"]},
    ]
    # The batches run at once, in any order: sorted by their first SKU
    assert sorted((c["Items"] for c in calls), key=lambda items: items[0]["sku"]) == [
        [{"sku": "A-1", "size": "S"}, {"sku": "A-2", "size": "M"}],
        [{"sku": "A-3", "size": "L"}, {"sku": "A-4", "size": "XL"}],
        [{"sku": "A-5", "size": "S"}],
    ]

    artifacts = {a["kind"]: a for a in job["artifacts"]}
    manifest = (await tenant_a.api.get(artifacts[f"map-results/{details['Key']}"]["url"])).json()
    assert manifest["MapRunArn"] == out["doubles"]["MapRunArn"]
    assert manifest["ResultFiles"]["FAILED"] == [] and len(manifest["ResultFiles"]["SUCCEEDED"]) == 1
    succeeded = manifest["ResultFiles"]["SUCCEEDED"][0]
    rows = (await tenant_a.api.get(artifacts[f"map-results/{succeeded['Key']}"]["url"])).json()
    assert len(rows) == ITEMS and all(r["Status"] == "SUCCEEDED" for r in rows)
    assert [json.loads(r["Output"]) for r in rows] == [{"n": i, "double": 2 * i} for i in range(ITEMS)]
    assert json.loads(rows[7]["Input"]) == {"n": 7, "index": 7}

    parent = await temporal.get_workflow_handle(job["id"]).fetch_history()
    children = [
        (e.child_workflow_execution_started_event_attributes.workflow_execution)
        for e in parent.events
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    ]
    sizes = {"parent": await history_sizes(temporal, job["id"])}
    for child in children:
        sizes[child.workflow_id] = await history_sizes(temporal, child.workflow_id, child.run_id)
    for name, runs in sizes.items():
        print(f"history {name}: " + ", ".join(f"{n} events {b} bytes" for n, b in runs))  # noqa: T201
    assert len(children) == 10 + 1  # 100 pages of 100 items, ten to a child; one page of 3 batches
    assert all(n < 2_000 for runs in sizes.values() for n, _ in runs)


async def test_more_failed_items_than_tolerated_fail_the_map(tenant_a):
    lines = "\n".join(json.dumps({"n": i, "bad": i % 4 == 0}) for i in range(20))  # 5 bad items
    items = await upload(tenant_a, lines.encode())
    rule = {"Variable": "$.bad", "BooleanEquals": True, "Next": "Bad"}
    states = {
        "Check": {"Type": "Choice", "Choices": [rule], "Default": "Ok"},
        "Bad": {"Type": "Fail", "Error": "BadItem"},
        "Ok": {"Type": "Succeed"},
    }
    processor = {**PROCESSOR, "StartAt": "Check", "States": states}

    async def run(tolerated: int) -> dict[str, Any]:
        body = {
            "key": f"dmap-fail-{uuid.uuid4().hex[:8]}",
            "kind": "state_machine",
            "state_machine": {
                "StartAt": "Each",
                "States": {
                    "Each": {
                        "Type": "Map",
                        "ItemReader": reader("JSONL", "$.items"),
                        "ItemProcessor": processor,
                        "ToleratedFailureCount": tolerated,
                        "End": True,
                    }
                },
            },
        }
        await create_workflow(tenant_a.api, body)
        resp = await tenant_a.api.post("/v1/submissions", json={"workflow_key": body["key"], "input": {"items": items}})
        assert resp.status_code == 202, resp.text
        return await wait_job(tenant_a.api, resp.json()["job_id"], timeout=60)

    tripped = await run(4)
    assert tripped["status"] == "failed", tripped
    assert "States.ExceedToleratedFailureThreshold" in json.dumps(tripped.get("error") or tripped.get("failure"))
    tolerated = await run(5)
    assert tolerated["status"] == "succeeded", tolerated
    output = tolerated["output"]
    assert [o.get("Error") for o in output] == ["BadItem" if i % 4 == 0 else None for i in range(20)]
