"""Re-record the state-machine histories: `python -m tests.histories.record_machines`.

Runs StateMachineWorkflow on a throwaway embedded stack (as `record` does for the other
workflows), so that between them the histories hold every state type: the demo's competitor
brief (Choice, Map, Parallel, Wait, Pass, Tasks with a Retry and a Catch), a machine that ends
in a Fail state, and a JSONata machine with variables that ends in a Succeed state.
"""

import httpx
from temporalio.client import Client

from devstack.demo_machine import KEY, SUBMISSION, machine_definition, service
from devstack.graph_standin import GraphAPIStandIn
from devstack.keys import mint_token
from lodestone.db import make_engine
from lodestone.settings import Settings
from services.tenants import create_tenant
from tests.helpers import create_workflow, wait_job
from tests.histories.record import on_stack, save

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


async def record(settings: Settings, graph: GraphAPIStandIn) -> None:
    engine = make_engine(settings.app_database_url, 2)
    tenant = await create_tenant(engine, "machine-histories")
    await engine.dispose()
    client = await Client.connect(settings.temporal_target)
    token = mint_token(
        settings.data_path,
        issuer=settings.issuer,
        audience=settings.auth_audience,
        tenant_id=str(tenant.id),
        roles=["admin"],
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=30) as api:
        with service(tenant.webhook_secret) as svc:
            await create_workflow(api, machine_definition(svc.url))
            await create_workflow(api, JSONATA)
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
