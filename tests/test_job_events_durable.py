"""Job events beyond the pipeline: a state machine's states and its llm Task's tokens, a
gap-free append under concurrent writers, and streams that outlive an API process and a
PostgreSQL restart."""

import asyncio
import sys
import uuid

import httpx
from sqlalchemy import text
from sqlmodel import col, select

from activities import events
from devstack.processes import ProcessGroup, free_port, wait_for_port
from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from lodestone.pg_listen import APPLICATION
from schema.tables import JobEvent
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.job_events_support import Frame, frames, read_events
from tests.test_job_events import run_job


def llm_machine(key: str, model: str) -> dict:
    return {
        "key": key,
        "kind": "state_machine",
        "input_schema": {"type": "object", "properties": {"company": {"type": "string"}}},
        "state_machine": {
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    "Type": "Task",
                    "Resource": "lodestone:llm",
                    "Parameters": {"prompt.$": "States.Format('Tell me about {}', $.company)", "model": model},
                    "ResultSelector": {"text.$": "$.text"},
                    "Next": "Done",
                },
                "Done": {"Type": "Succeed"},
            },
        },
    }


async def test_a_state_machine_streams_its_states_and_its_llm_tokens(tenant_a):
    wf = await create_workflow(tenant_a.api, llm_machine(f"sm-events-{uuid.uuid4().hex[:8]}", "trickle-machine"))
    job_id = (await submit(tenant_a.api, wf["key"], {"company": "Acme"})).json()["job_id"]
    live = await read_events(tenant_a.api, job_id)
    job = await wait_job(tenant_a.api, job_id)
    assert job["status"] == "succeeded"
    assert [f.id for f in live] == list(range(1, len(live) + 1))
    states = [(f.data["state"], f.data["status"]) for f in live if f.event == "state"]
    assert states == [("Ask", "entered"), ("Ask", "succeeded"), ("Done", "entered"), ("Done", "succeeded")]
    tokens = [f for f in live if f.event == "token"]
    assert {(f.data["step"], f.data["attempt"]) for f in tokens} == {("Ask", 1)} and len(tokens) > 1
    assert "".join(f.data["text"] for f in tokens) == job["output"]["text"]
    assert live[-1].event == "end" and live[-1].data == {"status": "succeeded", "error": None}


async def test_appends_from_concurrent_writers_get_every_seq_once(engine, tenant_a):
    job_id, before = await run_job(tenant_a, "offline")
    tenant, writers, each = str(tenant_a.id), 8, 25

    async def writer(n: int) -> list[int]:
        return [await events.emit(engine, tenant, job_id, "probe", {"writer": n, "i": i}) for i in range(each)]

    seqs = await asyncio.gather(*(writer(n) for n in range(writers)))
    got = sorted(s for batch in seqs for s in batch)
    assert got == list(range(len(before) + 1, len(before) + writers * each + 1))
    async with tenant_session(engine, tenant_a.id) as s:
        rows = (
            await s.exec(select(JobEvent).where(JobEvent.job_id == uuid.UUID(job_id)).order_by(col(JobEvent.seq)))
        ).all()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    for n in range(writers):  # each writer's events in the order it wrote them
        assert [r.data["i"] for r in rows if r.type == "probe" and r.data["writer"] == n] == list(range(each))


def start_api(stack, group: ProcessGroup, port: int) -> None:  # type: ignore[no-untyped-def]
    """An API process of the session stack's, on another port."""
    env = {**stack.env(), "API_PORT": str(port), "AUTH_ISSUER": stack.settings.issuer}
    argv = [sys.executable, "-m", "cli.main", "api"]
    proc = group.start("api", argv, log_path=stack.logs / f"api-{port}.log", env=env)
    wait_for_port("127.0.0.1", port, 60, proc)


async def test_events_survive_an_api_restart(stack, settings, tenant_a):
    job_id, live = await run_job(tenant_a, "offline")
    port = free_port()
    headers = tenant_a.api.headers
    for _ in range(2):  # an API process, then another in its place
        with ProcessGroup() as group:
            start_api(stack, group, port)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as api:
                assert await read_events(api, job_id) == live


async def test_open_streams_share_one_listening_connection(engine, tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, model="trickle-shared"))
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        first = [asyncio.Event() for _ in range(5)]

        async def stream(opened: asyncio.Event) -> list[Frame]:
            got = []
            async with tenant_a.api.stream("GET", f"/v1/jobs/{job_id}/events", timeout=90) as resp:
                async for frame in frames(resp.aiter_lines()):
                    got.append(frame)
                    opened.set()
            return got

        streams = [asyncio.create_task(stream(e)) for e in first]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first)), 60)  # all five open
        async with tenant_session(engine, tenant_a.id) as s:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a")
            listening = (await s.execute(query, {"a": APPLICATION})).scalar_one()
        got = await asyncio.gather(*streams)
    assert listening == 1  # the session API's one connection, for all the streams it serves
    assert all(g == got[0] for g in got) and got[0][-1].event == "end"
