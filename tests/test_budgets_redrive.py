"""LLM budgets across redrives and API restarts (issue 21, docs/budgets.md), on the session
stack: a job whose second step failed after its first step's call was settled is redriven
into a spent budget, pauses, and is delivered once the budget is raised; the ledger then
holds one settled entry per call, the completed step's call is not made (nor counted) again,
and its total is the usage rows'. A paused job cannot be redriven (its run is open) and,
cancelled, leaves no reservation; nor does a job cancelled while its call is in flight.
Budgets set through one API process are there for the next one, whose raise resumes a job
paused under the first."""

import uuid
from typing import Any

import pytest
from sqlmodel import select

from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from schema.budgets import LlmLedgerEntry
from schema.tables import UsageRecord
from tests.conftest import _tenant
from tests.helpers import create_workflow, in_process_api, submit, wait_job, worker_api
from tests.test_budgets import ledger_and_usage, one_step, until
from tests.test_budgets_resume import status_becomes

pytestmark = pytest.mark.timeout(120)


def two_steps(key: str, webhook_url: str, research: str, write: str) -> dict[str, Any]:
    """research -> write, each on its own model."""
    body = one_step(key, webhook_url)
    body["steps"][0]["model"] = research
    body["steps"].append(
        {"id": "write", "model": write, "inputs": {"r": "steps.research"}, "instructions": "Write from: {{ r }}"}
    )
    body["template"] = "<p>{{ steps.write }}</p>"
    return body


async def ledger(engine: Any, tenant_id: uuid.UUID, job_id: str) -> dict[str, tuple[str, int]]:
    """The job's ledger entries: call key -> (state, tokens)."""
    async with tenant_session(engine, tenant_id) as s:
        rows = (await s.exec(select(LlmLedgerEntry).where(LlmLedgerEntry.job_id == uuid.UUID(job_id)))).all()
    return {r.call_key: (r.state, r.tokens) for r in rows}


async def usage(engine: Any, tenant_id: uuid.UUID, job_id: str) -> dict[str, int]:
    async with tenant_session(engine, tenant_id) as s:
        rows = (await s.exec(select(UsageRecord).where(UsageRecord.job_id == uuid.UUID(job_id)))).all()
    return {r.step_id: r.tokens_in + r.tokens_out for r in rows}


async def test_a_redriven_job_is_charged_once_per_call_and_not_again_for_its_completed_step(
    settings, engine, temporal, llm_standin
):
    tenant = await _tenant(settings, engine, f"Redrive budget {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(update={"temporal_task_queue": f"budget-redrive-{uuid.uuid4()}"})
    tag = uuid.uuid4().hex[:8]
    research, write = f"ok-bredrive-{tag}-research", f"ok-bredrive-{tag}-write"
    llm_standin.broken.add(write)  # it answers with nothing: the step fails for good after its call
    try:
        with WebhookReceiver(tenant.webhook_secret) as hook:
            async with worker_api(s, temporal, engine, tenant) as api:
                key = (await create_workflow(api, two_steps(f"redrive-{tag}", hook.url, research, write)))["key"]
                put = await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 1_000_000}]})
                assert put.status_code == 200, put.text
                job_id = (await submit(api, key)).json()["job_id"]
                failed = await wait_job(api, job_id)
                assert failed["status"] == "failed" and failed["error"]["failed_step"] == "step:write", failed
                first = await ledger(engine, tenant.id, job_id)
                # The empty answer is a failed call: released, it counts nothing (docs/budgets.md).
                done_research = first[f"research#1:default/{research}"][1]
                assert first == {
                    f"research#1:default/{research}": ("settled", done_research),
                    f"write#1:default/{write}": ("released", 0),
                }, first

                # The budget now has room for the completed step's call only: the redriven run
                # does not ask research again, and write's reservation does not fit: it pauses.
                put = await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": done_research}]})
                assert put.status_code == 200, put.text
                llm_standin.broken.discard(write)  # the operator fixes the cause
                resp = await api.post(f"/v1/jobs/{job_id}/redrive")
                assert resp.status_code == 202, resp.text
                await status_becomes(api, job_id, "paused_budget")
                assert llm_standin.count(write) == 1  # the paused call was not sent
                assert await ledger(engine, tenant.id, job_id) == first  # nothing reserved
                got = (await api.get("/v1/budgets")).json()["budgets"][0]
                assert got["reserved"] == 0, got

                raised = await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 1_000_000}]})
                assert raised.json()["signalled"] == 1, raised.text
                done = await wait_job(api, job_id)
                assert done["status"] == "delivered", done
                assert hook.wait_for_success(timeout=10) is not None
                got = (await api.get("/v1/budgets")).json()["budgets"][0]
    finally:
        llm_standin.broken.discard(write)
        await tenant.api.aclose()

    # research was asked once in all; write once per run, its second answer replacing the first.
    assert (llm_standin.count(research), llm_standin.count(write)) == (1, 2)
    after = await ledger(engine, tenant.id, job_id)
    used = await usage(engine, tenant.id, job_id)
    assert after == {
        f"research#1:default/{research}": ("settled", used["research"]),
        f"write#1:default/{write}": ("settled", used["write"]),
    }, (after, used)
    assert after[f"research#1:default/{research}"][1] == done_research
    total, rows = await ledger_and_usage(engine, tenant.id)
    assert total == rows == sum(used.values()) and got["spent"] == total and got["reserved"] == 0, (total, rows, got)


async def test_a_paused_or_in_flight_job_that_is_cancelled_leaves_no_reservation(settings, engine, temporal):
    tenant = await _tenant(settings, engine, f"Cancel budget {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(
        update={"temporal_task_queue": f"budget-cancel-{uuid.uuid4()}", "llm_timeout_seconds": 30.0}
    )
    async with worker_api(s, temporal, engine, tenant) as api:
        paused_key = (await create_workflow(api, one_step(f"paused-{uuid.uuid4().hex[:8]}", "http://127.0.0.1:9/")))[
            "key"
        ]
        held = one_step(f"held-{uuid.uuid4().hex[:8]}", "http://127.0.0.1:9/")
        held["steps"][0]["model"] = "hold-20000"  # the stand-in answers after 20 s
        held_key = (await create_workflow(api, held))["key"]
        assert (await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 0}]})).status_code == 200
        paused = (await submit(api, paused_key)).json()["job_id"]
        await status_becomes(api, paused, "paused_budget")
        refused = await api.post(f"/v1/jobs/{paused}/redrive")  # its run is open: nothing to redrive
        assert refused.status_code == 409 and "still running" in refused.text, refused.text
        assert await ledger(engine, tenant.id, paused) == {}  # a refused call reserves nothing

        assert (await api.post(f"/v1/jobs/{paused}/cancel")).status_code == 202
        assert (await wait_job(api, paused, timeout=60))["status"] == "cancelled"
        assert await ledger(engine, tenant.id, paused) == {}

        put = await api.put("/v1/budgets", json={"budgets": [{"unit": "tokens", "amount": 1_000_000}]})
        assert put.status_code == 200 and put.json()["signalled"] == 0, put.text
        in_flight = (await submit(api, held_key)).json()["job_id"]

        async def reserved() -> bool:
            return [st for st, _ in (await ledger(engine, tenant.id, in_flight)).values()] == ["reserved"]

        await until(reserved, 30, "the held call's reservation")
        assert (await api.get("/v1/budgets")).json()["budgets"][0]["reserved"] > 0
        assert (await api.post(f"/v1/jobs/{in_flight}/cancel")).status_code == 202
        assert (await wait_job(api, in_flight, timeout=60))["status"] == "cancelled"

        async def released() -> bool:
            return [st for st, _ in (await ledger(engine, tenant.id, in_flight)).values()] == ["released"]

        await until(released, 30, "the cancelled call's reservation released")
        got = (await api.get("/v1/budgets")).json()["budgets"][0]
        assert got["reserved"] == 0 and got["spent"] == 0, got
    await tenant.api.aclose()


async def test_budgets_survive_an_api_restart_and_the_new_api_resumes_a_paused_job(settings, engine, temporal):
    tenant = await _tenant(settings, engine, f"Restart budget {uuid.uuid4().hex[:6]}")
    s = settings.model_copy(update={"temporal_task_queue": f"budget-restart-{uuid.uuid4()}"})
    token = tenant.api.headers["authorization"].removeprefix("Bearer ")
    budget = {"unit": "tokens", "amount": 0, "period": "fixed", "workflow_key": None, "notify_url": None}
    with WebhookReceiver(tenant.webhook_secret) as hook:
        async with worker_api(s, temporal, engine, tenant):  # the worker (its own API is not used)
            async with in_process_api(s, token) as first:
                key = (await create_workflow(first, one_step(f"restart-{uuid.uuid4().hex[:8]}", hook.url)))["key"]
                put = await first.put("/v1/budgets", json={"budgets": [budget]})
                assert put.status_code == 200, put.text
                before = put.json()["budgets"]
                job_id = (await submit(first, key)).json()["job_id"]
                await status_becomes(first, job_id, "paused_budget")
            async with in_process_api(s, token) as second:  # a new API process: nothing carried in memory
                assert (await second.get("/v1/budgets")).json()["budgets"] == before
                assert (await second.get(f"/v1/jobs/{job_id}")).json()["status"] == "paused_budget"
                raised = await second.put("/v1/budgets", json={"budgets": [{**budget, "amount": 100_000}]})
                assert raised.status_code == 200 and raised.json()["signalled"] == 1, raised.text
                assert raised.json()["budgets"][0]["period_start"] == before[0]["period_start"]  # kept its start
                assert (await wait_job(second, job_id))["status"] == "delivered"
                assert hook.wait_for_success(timeout=10) is not None
                got = (await second.get("/v1/budgets")).json()["budgets"][0]
    total, rows = await ledger_and_usage(engine, tenant.id)
    assert total == rows == got["spent"] > 0 and got["reserved"] == 0, (total, rows, got)
    await tenant.api.aclose()
