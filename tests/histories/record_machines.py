"""Re-record the state-machine histories: `python -m tests.histories.record_machines`.

Runs StateMachineWorkflow on a throwaway embedded stack (as `record` does for the other
workflows), so that between them the histories hold every state type: the demo's competitor
brief (Choice, Map, Parallel, Wait, Pass, Tasks with a Retry and a Catch), a machine that ends
in a Fail state, a JSONata machine with variables that ends in a Succeed state, and a
distributed Map over an upload (its parent and one of its MapBatchWorkflow children).
"""

import json

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from devstack.demo_machine import KEY, SUBMISSION, machine_definition, service
from devstack.graph_standin import GraphAPIStandIn
from lodestone.settings import Settings
from tests.helpers import create_workflow, wait_job
from tests.histories.record import on_stack, save, tenant_api

JSONATA = {
    "key": "recorded-jsonata",
    "kind": "state_machine",
    "state_machine": {
        "QueryLanguage": "JSONata",
        "StartAt": "Count",
        "States": {
            "Count": {"Type": "Pass", "Assign": {"n": "{% $count($states.input.items) %}"}, "Next": "Many?"},
            "Many?": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $n > 2 %}", "Next": "Done", "Output": {"many": "{% $n %}"}}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    },
}


DISTRIBUTED = {
    "key": "recorded-distributed-map",
    "kind": "state_machine",
    "state_machine": {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": "lodestone", "Key.$": "$.items"},
                },
                "ItemBatcher": {"MaxItemsPerBatch": 2},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Count",
                    "States": {
                        "Count": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.Items)"}, "End": True}
                    },
                },
                "End": True,
            }
        },
    },
}


async def record_distributed_map(api: httpx.AsyncClient, client: Client) -> None:
    await create_workflow(api, DISTRIBUTED)
    upload = await api.post("/v1/uploads", content=json.dumps([{"n": i} for i in range(5)]).encode())
    body = {"workflow_key": DISTRIBUTED["key"], "input": {"items": upload.json()["upload_id"]}}
    job_id = (await api.post("/v1/submissions", json=body)).json()["job_id"]
    job = await wait_job(api, job_id, timeout=120)
    assert upload.status_code == 201 and job["status"] == "succeeded", (upload.text, job)
    parent = client.get_workflow_handle(job_id)
    await save("machine_distributed_map", parent)
    history = await parent.fetch_history()
    child = next(
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    )
    await save("map_batch", client.get_workflow_handle(child))


async def record(settings: Settings, graph: GraphAPIStandIn) -> None:
    async with tenant_api(settings, "machine-histories") as (client, api, tenant):
        with service(tenant.webhook_secret) as svc:
            await create_workflow(api, machine_definition(svc.url))
            await create_workflow(api, JSONATA)
            await record_distributed_map(api, client)
            for name, body in (
                ("machine_competitor_brief", SUBMISSION),
                ("machine_fail_state", {"workflow_key": KEY, "input": {"company": "Acme", "competitors": []}}),
                ("machine_jsonata_succeed", {"workflow_key": "recorded-jsonata", "input": {"items": [1, 2, 3]}}),
            ):
                job_id = (await api.post("/v1/submissions", json=body)).json()["job_id"]
                await wait_job(api, job_id, timeout=120)
                await save(name, client.get_workflow_handle(job_id))


if __name__ == "__main__":
    on_stack(record)
