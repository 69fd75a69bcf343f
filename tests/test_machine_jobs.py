"""A state machine's job: started as StateMachineWorkflow (by the API, the outbox and a
redrive), its plan loaded with the "$$" context, its path recorded once per seq and truncated,
its end recorded both ways, shown by GET /v1/jobs/{id}, and hidden from other tenants."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.jobs import JobRef
from activities.machine_jobs import MachineEventsInput, MachineFinishInput, MachineJobActivities
from lodestone.db import tenant_session
from schema.tables import Job, JobFailure, JobStateEvent, Submission
from services.outbox import start_one
from services.redrive import redrive
from tests.helpers import create_workflow, definition, in_process_api, submit
from tests.test_fuzz import CHECKS
from tests.test_machine_definitions import bad_machine, good_machine

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def machine_wf(tenant_a) -> dict:
    return await create_workflow(tenant_a.api, good_machine(f"sm-job-{uuid.uuid4().hex[:8]}"))


async def new_job(engine, tenant_id, wf: dict, inp: dict | None = None) -> Job:  # type: ignore[no-untyped-def]
    """A committed job row, as the API commits one, not started."""
    submission = Submission(
        tenant_id=tenant_id, workflow_definition_id=uuid.UUID(wf["id"]), input=inp or {"sku": "A-1"}
    )
    job = Job(
        tenant_id=tenant_id,
        submission_id=submission.id,
        workflow_definition_id=submission.workflow_definition_id,
        workflow_key=wf["key"],
    )
    async with tenant_session(engine, tenant_id) as s:
        s.add(submission)
        await s.flush()
        s.add(job)
    return job


def event(kind: str, state: str, seq: int, **fields) -> dict:  # type: ignore[no-untyped-def]
    base = {
        "kind": kind,
        "state": state,
        "path": state,
        "type": "Task",
        "input": None,
        "output": None,
        "error": None,
        "cause": None,
        "attempt": None,
        "delay_seconds": None,
        "next": None,
    }
    return {**base, "at": (T0 + timedelta(seconds=seq)).isoformat(), **fields}


async def rows(engine, tenant_id, job_id) -> list[JobStateEvent]:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, tenant_id) as s:
        query = select(JobStateEvent).where(JobStateEvent.job_id == job_id).order_by(col(JobStateEvent.seq))
        return list((await s.exec(query)).all())


async def test_load_machine_gives_the_machine_its_bindings_input_and_context(engine, settings, tenant_a, machine_wf):
    job = await new_job(engine, tenant_a.id, machine_wf, {"sku": "B-7"})
    acts = MachineJobActivities(engine, settings)
    plan = await ActivityEnvironment().run(acts.load_machine, JobRef(str(tenant_a.id), str(job.id)))
    posted = good_machine(machine_wf["key"])
    assert plan.state_machine == posted["state_machine"]
    assert plan.bindings == posted["resources"]
    assert plan.input == {"sku": "B-7"}
    assert plan.path_value_max_bytes == 4096  # MACHINE_PATH_VALUE_MAX_BYTES' default
    start = job.created_at.astimezone(UTC)
    assert plan.context == {
        "Execution": {
            "Id": f"lodestone:{tenant_a.id}:{machine_wf['key']}:{job.id}",
            "Name": str(job.id),
            "StartTime": start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}Z",
            "Input": {"sku": "B-7"},
        },
        "StateMachine": {"Id": f"lodestone:{tenant_a.id}:{machine_wf['key']}:1", "Name": machine_wf["key"]},
    }


async def test_load_machine_refuses_a_pipeline_job(engine, settings, tenant_a):
    pipeline = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    job = await new_job(engine, tenant_a.id, pipeline, {"company": "Acme"})
    acts = MachineJobActivities(engine, settings)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(acts.load_machine, JobRef(str(tenant_a.id), str(job.id)))
    assert err.value.type == "JobNotFound" and err.value.non_retryable


async def test_events_are_recorded_once_per_seq_and_truncated(engine, settings, tenant_a, machine_wf):
    job = await new_job(engine, tenant_a.id, machine_wf)
    acts = MachineJobActivities(engine, settings.model_copy(update={"machine_path_value_max_bytes": 64}))
    big = {"text": "é" * 100}  # 9 + 200 + 2 bytes of compact UTF-8 JSON
    first = [
        event("entered", "Check", 0, input=big),
        event("retry", "Check", 1, error="States.TaskFailed", cause="x" * 70, attempt=1, delay_seconds=2.0),
        event("exited", "Check", 2, output={"stock": 3}, next="Done"),
    ]
    ref = (str(tenant_a.id), str(job.id))
    await ActivityEnvironment().run(acts.record_machine_events, MachineEventsInput(*ref, 0, first))
    # A retried flush (and one overlapping it) writes nothing twice and changes nothing written.
    await ActivityEnvironment().run(acts.record_machine_events, MachineEventsInput(*ref, 0, first))
    overlap = [event("exited", "Check", 2, output={"stock": 999}), event("entered", "Done", 3, type="Succeed")]
    await ActivityEnvironment().run(acts.record_machine_events, MachineEventsInput(*ref, 2, overlap))
    got = await rows(engine, tenant_a.id, job.id)
    assert [(r.seq, r.kind, r.state) for r in got] == [
        (0, "entered", "Check"),
        (1, "retry", "Check"),
        (2, "exited", "Check"),
        (3, "entered", "Done"),
    ]
    whole = json.dumps(big, ensure_ascii=False, separators=(",", ":")).encode()
    assert got[0].input == {"truncated": True, "preview": whole[:64].decode(errors="ignore")}
    assert len(got[0].input["preview"].encode()) == 63  # cut before a two-byte character, not inside it
    assert (got[1].error, got[1].cause, got[1].attempt, got[1].delay_seconds) == (
        "States.TaskFailed",
        "x" * 64 + "…",
        1,
        2.0,
    )
    assert (got[2].output, got[2].next, got[2].at) == ({"stock": 3}, "Done", T0 + timedelta(seconds=2))


async def test_finish_succeeded_keeps_the_output_once(engine, settings, tenant_a, machine_wf):
    job = await new_job(engine, tenant_a.id, machine_wf)
    acts = MachineJobActivities(engine, settings)
    ref = (str(tenant_a.id), str(job.id))
    await ActivityEnvironment().run(acts.finish_machine, MachineFinishInput(*ref, "succeeded", output={"stock": 3}))
    await ActivityEnvironment().run(acts.finish_machine, MachineFinishInput(*ref, "succeeded", output={"stock": 0}))
    async with tenant_session(engine, tenant_a.id) as s:
        row = await s.get(Job, job.id)
    assert (row.status, row.output, row.error) == ("succeeded", {"stock": 3}, None)


async def test_finish_failed_leaves_a_dead_letter_naming_the_error(engine, settings, tenant_a, machine_wf):
    job = await new_job(engine, tenant_a.id, machine_wf)
    acts = MachineJobActivities(engine, settings)
    ref = (str(tenant_a.id), str(job.id))
    failed = [event("failed", "Check", 0, error="Lambda.ServiceException", cause="503 from CheckStock")]
    await ActivityEnvironment().run(acts.record_machine_events, MachineEventsInput(*ref, 0, failed))
    finish = MachineFinishInput(*ref, "failed", error="Lambda.ServiceException", cause="503 from CheckStock")
    await ActivityEnvironment().run(acts.finish_machine, finish)
    async with tenant_session(engine, tenant_a.id) as s:
        row = await s.get(Job, job.id)
        letter = (await s.exec(select(JobFailure).where(JobFailure.job_id == job.id))).one()
    assert (row.status, row.error, row.output) == ("failed", "Lambda.ServiceException: 503 from CheckStock", None)
    assert (letter.error_code, letter.message, letter.failed_step) == (
        "Lambda.ServiceException",
        "503 from CheckStock",
        "Check",
    )
    job_view = (await tenant_a.api.get(f"/v1/jobs/{job.id}")).json()
    assert job_view["error"]["code"] == "Lambda.ServiceException" and job_view["error"]["failed_step"] == "Check"


async def test_get_job_shows_the_output_and_the_path_in_order(engine, settings, tenant_a, tenant_b, machine_wf):
    job = await new_job(engine, tenant_a.id, machine_wf)
    acts = MachineJobActivities(engine, settings)
    ref = (str(tenant_a.id), str(job.id))
    events = [
        event("entered", "Check", 0, input={"sku": "A-1"}),
        event("caught", "Check", 1, error="States.Timeout", cause="slow", next="Done"),
        event("entered", "Done", 2, type="Succeed", input={"stock": 3}),
        event("exited", "Done", 3, type="Succeed", output={"stock": 3}),
    ]
    await ActivityEnvironment().run(acts.record_machine_events, MachineEventsInput(*ref, 0, events))
    await ActivityEnvironment().run(acts.finish_machine, MachineFinishInput(*ref, "succeeded", output={"stock": 3}))
    view = (await tenant_a.api.get(f"/v1/jobs/{job.id}")).json()
    assert (view["kind"], view["status"], view["output"], view["error"]) == (
        "state_machine",
        "succeeded",
        {"stock": 3},
        None,
    )
    expected = [{k: v for k, v in e.items() if k != "at"} | {"seq": i} for i, e in enumerate(events)]
    assert [{k: v for k, v in e.items() if k != "at"} for e in view["path"]] == expected
    assert [datetime.fromisoformat(e["at"]) for e in view["path"]] == [T0 + timedelta(seconds=i) for i in range(4)]
    assert (await tenant_b.api.get(f"/v1/jobs/{job.id}")).status_code == 404
    done = (await tenant_a.api.get("/v1/jobs?status=succeeded&limit=200")).json()["items"]
    assert str(job.id) in {j["id"] for j in done}


async def test_another_tenant_can_neither_read_nor_write_a_jobs_path(engine, settings, tenant_a, tenant_b, machine_wf):
    job = await new_job(engine, tenant_a.id, machine_wf)
    acts = MachineJobActivities(engine, settings)
    await ActivityEnvironment().run(
        acts.record_machine_events,
        MachineEventsInput(str(tenant_a.id), str(job.id), 0, [event("entered", "Check", 0, input={"secret": 1})]),
    )
    async with tenant_session(engine, tenant_b.id) as s:
        assert (await s.exec(select(JobStateEvent).where(JobStateEvent.job_id == job.id))).all() == []
        changed = await s.execute(text("UPDATE job_state_events SET state = 'x' WHERE job_id = :j"), {"j": job.id})
        assert changed.rowcount == 0
    async with AsyncSession(engine) as s:  # no tenant set at all
        assert (await s.execute(text("SELECT count(*) FROM job_state_events"))).scalar_one() == 0
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(engine, tenant_b.id) as s:
            s.add(
                JobStateEvent(
                    tenant_id=tenant_a.id,
                    job_id=job.id,
                    seq=1,
                    at=T0,
                    kind="exited",
                    state="Check",
                    path="Check",
                    type="Task",
                )
            )
    assert len(await rows(engine, tenant_a.id, job.id)) == 1


async def _started(temporal, job_id: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    desc = await temporal.get_workflow_handle(job_id).describe()
    return desc.workflow_type, desc.task_queue


async def test_submissions_and_the_outbox_start_a_state_machine_as_StateMachineWorkflow(
    settings, engine, temporal, tenant_a, machine_wf
):
    queue = f"sm-start-{uuid.uuid4()}"  # no worker polls it: the runs only wait, and are terminated
    s = settings.model_copy(update={"temporal_task_queue": queue})
    token = tenant_a.api.headers["authorization"].removeprefix("Bearer ")
    pipeline = await create_workflow(tenant_a.api, definition("http://127.0.0.1:9/hook"))
    started = []
    try:
        async with in_process_api(s, token) as api:
            machine_job = (await submit(api, machine_wf["key"], {"sku": "A-1"})).json()["job_id"]
            pipeline_job = (await submit(api, pipeline["key"])).json()["job_id"]
        started += [machine_job, pipeline_job]
        assert await _started(temporal, machine_job) == ("StateMachineWorkflow", queue)
        assert await _started(temporal, pipeline_job) == ("SubmissionWorkflow", queue)
        desc = await temporal.get_workflow_handle(machine_job).describe()
        attrs = {k.name: v for k, v in ((p.key, p.value) for p in desc.typed_search_attributes)}
        assert (attrs["JobId"], attrs["WorkflowKey"], attrs["JobStatus"]) == (machine_job, machine_wf["key"], "pending")
        orphan = await new_job(engine, tenant_a.id, machine_wf)  # committed, its start lost
        assert await start_one(temporal, engine, s, orphan.id, tenant_a.id)
        started.append(str(orphan.id))
        assert await _started(temporal, str(orphan.id)) == ("StateMachineWorkflow", queue)
    finally:
        for job_id in started:
            await temporal.get_workflow_handle(job_id).terminate("test over")


async def test_a_failed_state_machine_is_redriven_from_the_start(
    settings, engine, owner_engine, temporal, tenant_a, machine_wf
):
    s = settings.model_copy(update={"temporal_task_queue": f"sm-redrive-{uuid.uuid4()}"})
    job = await new_job(engine, tenant_a.id, machine_wf)
    assert await start_one(temporal, engine, s, job.id, tenant_a.id)
    handle = temporal.get_workflow_handle(str(job.id))
    acts = MachineJobActivities(engine, s)
    ref = (str(tenant_a.id), str(job.id))
    failed = [event("entered", "Check", 0), event("failed", "Check", 1, error="States.TaskFailed", cause="no")]
    await ActivityEnvironment().run(acts.record_machine_events, MachineEventsInput(*ref, 0, failed))
    await ActivityEnvironment().run(acts.finish_machine, MachineFinishInput(*ref, "failed", "States.TaskFailed"))
    await handle.terminate("the run failed")
    try:
        plan = await redrive(s, temporal, owner_engine, engine, job.id, dry_run=True)
        assert [(a.verb, a.kind) for a in plan.actions] == [("run", "state_machine")]
        done = await redrive(s, temporal, owner_engine, engine, job.id)
        assert done.new_run_id
        desc = await handle.describe()
        assert (desc.workflow_type, desc.status, desc.run_id) == (
            "StateMachineWorkflow",
            WorkflowExecutionStatus.RUNNING,
            done.new_run_id,
        )
        async with tenant_session(engine, tenant_a.id) as session:
            row = await session.get(Job, job.id)
            letter = (await session.exec(select(JobFailure).where(JobFailure.job_id == job.id))).one()
        assert (row.status, row.error, row.output) == ("pending", None, None)
        assert letter.redriven_at is not None
        assert await rows(engine, tenant_a.id, job.id) == []  # the new run records its path from seq 0
    finally:
        await handle.terminate("test over")


async def test_the_openapi_document_describes_a_path_and_a_422_with_every_problem(
    settings, engine, tenant_a, machine_wf
):
    api_schema = schemathesis.openapi.from_url(f"{settings.api_url}/openapi.json")
    job = await new_job(engine, tenant_a.id, machine_wf)
    acts = MachineJobActivities(engine, settings)
    ref = (str(tenant_a.id), str(job.id))
    retry = event("retry", "Check", 0, input={"a": [1]}, error="E", cause="c", attempt=1, delay_seconds=1.5)
    await ActivityEnvironment().run(acts.record_machine_events, MachineEventsInput(*ref, 0, [retry]))
    await ActivityEnvironment().run(acts.finish_machine, MachineFinishInput(*ref, "succeeded", output=[1, "x"]))
    auth = {"Authorization": tenant_a.api.headers["authorization"]}
    get = api_schema["/v1/jobs/{job_id}"]["GET"].Case(path_parameters={"job_id": str(job.id)})
    assert get.call_and_validate(headers=auth, checks=CHECKS).json()["path"][0]["delay_seconds"] == 1.5
    post = api_schema["/v1/workflows"]["POST"].Case(body=bad_machine(f"sm-doc-{uuid.uuid4().hex[:8]}"))
    assert len(post.call_and_validate(headers=auth, checks=CHECKS).json()["errors"]) == 9
