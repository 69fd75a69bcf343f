"""If the workflow cannot be started, the API answers 503 and leaves no job row behind."""

from sqlmodel import func, select

from lodestone.db import tenant_session
from lodestone.devstack.processes import free_port
from schema.tables import IdempotencyKey, Job, Submission
from tests.helpers import create_workflow, definition, in_process_api


async def test_failed_start_rolls_the_job_back(settings, tenant_a, engine):
    wf = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    # The same database and issuer, but a Temporal frontend that is not there.
    async with in_process_api(settings, tenant_a.api.headers["authorization"].removeprefix("Bearer "),
                              temporal_address=f"127.0.0.1:{free_port()}") as api:
        resp = await api.post("/v1/submissions", json={"workflow_key": wf["key"], "input": {"company": "A"}},
                              headers={"Idempotency-Key": "start-fails"})
    assert resp.status_code == 503, resp.text
    assert resp.json()["code"] == "temporal_unavailable"
    async with tenant_session(engine, tenant_a.id) as s:
        assert (await s.exec(select(func.count()).select_from(Job).where(Job.workflow_key == wf["key"]))).one() == 0
        assert (await s.exec(select(func.count()).select_from(Submission).where(
            Submission.workflow_definition_id == wf["id"]))).one() == 0
        assert await s.get(IdempotencyKey, (tenant_a.id, "start-fails")) is None
    # The same key works once Temporal is back: nothing was left half-done.
    ok = await tenant_a.api.post("/v1/submissions", json={"workflow_key": wf["key"], "input": {"company": "A"}},
                                 headers={"Idempotency-Key": "start-fails"})
    assert ok.status_code == 202
