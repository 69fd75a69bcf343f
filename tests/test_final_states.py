"""Deliveries and steps end in a true state, on an in-process worker (the real workflow and
activities, the session's PostgreSQL and Temporal) with short budgets: STEP_MAX_ATTEMPTS and
DELIVERY_MAX_ATTEMPTS 3, WEBHOOK_TIMEOUT_SECONDS 1. A target whose attempts ran out says
failed with its last error, as does a step; a retrying step says so; a 3xx fails a target at
once; a webhook target's own timeout_seconds is used, bounded by WEBHOOK_TIMEOUT_MAX_SECONDS."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlmodel import select

from activities.delivery import DeliveryActivities
from activities.delivery_log import AttemptInput
from devstack.receiver import WebhookReceiver
from lodestone.db import tenant_session
from lodestone.secrets import make_secrets
from lodestone.settings import Settings, secret_env
from schema.tables import Delivery, DeliveryAttempt, JobStep
from tests.helpers import TERMINAL, create_workflow, definition, submit, wait_job, worker_api
from tests.standins.trickle_receiver import TrickleReceiver

ATTEMPTS = 3


@pytest.fixture(scope="module")
def worker_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "temporal_task_queue": f"final-{uuid.uuid4()}",
            "outbound_allow_cidrs": ["127.0.0.1/32"],
            "step_max_attempts": ATTEMPTS,
            "delivery_max_attempts": ATTEMPTS,
            "webhook_timeout_seconds": 1.0,
            "webhook_timeout_max_seconds": 30.0,
        }
    )


@pytest.fixture(scope="module")
async def api(worker_settings: Settings, temporal, engine, tenant_a) -> AsyncIterator[httpx.AsyncClient]:
    s = worker_settings
    async with worker_api(s, temporal, engine, tenant_a) as client:
        yield client


async def start(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    wf = await create_workflow(api, body)
    resp = await submit(api, wf["key"])
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


async def delivery_rows(engine, tenant_id, job_id: str) -> tuple[Delivery, list[DeliveryAttempt]]:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, tenant_id) as s:
        row = (await s.exec(select(Delivery).where(Delivery.job_id == uuid.UUID(job_id)))).one()
        tries = (
            await s.exec(
                select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == row.id).order_by(DeliveryAttempt.attempt)
            )
        ).all()
    return row, list(tries)


async def test_a_target_whose_attempts_ran_out_says_failed_with_its_last_error(api, tenant_a, engine):
    with WebhookReceiver(tenant_a.webhook_secret, fail_first=1000, fail_status=503) as hook:
        job = await wait_job(api, await start(api, definition(hook.url)), timeout=120)
        sent = len(hook.received)
    assert job["status"] == "failed" and job["error"]["code"] == "WebhookUnavailable", job
    assert job["error"]["failed_step"] == "deliver:0"
    [shown] = job["deliveries"]
    assert (shown["status"], shown["attempts"], shown["error"]) == ("failed", ATTEMPTS, "answered 503"), shown
    row, tries = await delivery_rows(engine, tenant_a.id, job["id"])
    assert (row.status, row.error, row.delivered_at) == ("failed", "answered 503", None)
    assert [(t.attempt, t.status_code) for t in tries] == [(n, 503) for n in range(1, ATTEMPTS + 1)]
    assert sent == ATTEMPTS


async def test_a_step_retrying_then_out_of_attempts_says_so(api, tenant_a, engine):
    body = definition("http://127.0.0.1:9/never", model="error500")
    job_id = await start(api, body)
    seen: list[tuple[str, int, str | None]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = (await api.get(f"/v1/jobs/{job_id}")).json()
        seen += [(s["status"], s["attempts"], s["error"]) for s in job["steps"] if s["id"] == "research"]
        if job["status"] in TERMINAL:
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "failed" and job["error"]["failed_step"] == "step:research", job
    retrying = [s for s in seen if s[0] == "retrying"]
    # While retrying (between attempts and during the next): the attempt number and the last
    # attempt's error. The last attempt's retrying state lasts too short a time to be polled.
    assert {n for _, n, _ in retrying} >= {1, 2}, seen
    assert all(err and "LLM endpoint answered 500" in err for _, _, err in retrying), retrying
    [step] = [s for s in job["steps"] if s["id"] == "research"]
    assert (step["status"], step["attempts"]) == ("failed", ATTEMPTS), step
    assert step["error"] and "LLMTransient" in step["error"] and "answered 500" in step["error"], step
    async with tenant_session(engine, tenant_a.id) as s:
        row = (
            await s.exec(select(JobStep).where(JobStep.job_id == uuid.UUID(job_id), JobStep.step_id == "research"))
        ).one()
    assert row.status == "failed" and row.finished_at is not None and "answered 500" in (row.error or "")


async def test_a_redirect_fails_the_target_at_once(api, tenant_a, engine):
    with WebhookReceiver(tenant_a.webhook_secret, fail_first=1000, fail_status=302) as hook:
        job = await wait_job(api, await start(api, definition(hook.url)), timeout=60)
        sent = len(hook.received)
    assert job["status"] == "failed" and job["error"]["code"] == "WebhookRedirected", job
    assert "redirects are not followed" in job["error"]["message"]
    assert sent == 1
    [shown] = job["deliveries"]
    assert (shown["status"], shown["attempts"]) == ("failed", 1)
    assert "answered 302" in shown["error"] and "redirects are not followed" in shown["error"]
    row, tries = await delivery_rows(engine, tenant_a.id, job["id"])
    assert row.status == "failed" and [t.status_code for t in tries] == [302]


async def test_a_slow_receiver_is_given_its_targets_own_timeout(api, tenant_a, engine):
    # 2.5 s to answer: past WEBHOOK_TIMEOUT_SECONDS (1 s here), inside the target's 15 s.
    with WebhookReceiver(tenant_a.webhook_secret, before_answer=lambda _status: time.sleep(2.5)) as hook:
        body = definition(hook.url)
        body["delivery"][0]["timeout_seconds"] = 15
        job = await wait_job(api, await start(api, body), timeout=120)
        receipts = [r.webhook_id for r in hook.received]
    assert job["status"] == "delivered", job
    assert len(receipts) == 1, receipts
    row, tries = await delivery_rows(engine, tenant_a.id, job["id"])
    assert row.status == "delivered" and [t.status_code for t in tries] == [204]


async def test_without_its_own_timeout_a_slow_receiver_times_out(api, tenant_a, engine):
    with WebhookReceiver(tenant_a.webhook_secret, before_answer=lambda _status: time.sleep(2.5)) as hook:
        job = await wait_job(api, await start(api, definition(hook.url)), timeout=120)
    assert job["status"] == "failed" and job["error"]["code"] == "WebhookUnavailable", job
    row, tries = await delivery_rows(engine, tenant_a.id, job["id"])
    assert row.status == "failed" and "Timeout" in (row.error or "") and len(tries) == ATTEMPTS


@pytest.mark.parametrize(
    "asked, pointer",
    [(31, "/delivery/0/timeout_seconds"), (0, "/delivery/0/timeout_seconds"), ("10", "/delivery/0/timeout_seconds")],
)
async def test_a_target_timeout_out_of_bounds_is_refused(api, asked, pointer):
    body = definition("https://example.com/hook")
    body["delivery"][0]["timeout_seconds"] = asked
    resp = await api.post("/v1/workflows", json=body)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["code"] == "schema_violation" and problem["pointer"] == pointer, problem


async def test_a_trickling_receiver_gets_each_attempt_once_each_bounded_by_the_timeout(api, tenant_a, engine):
    # 200 at once, then a byte every 0.1 s for 40 s: each read is inside the 1 s timeout, the
    # whole answer is past the send activity's own timeout (the POST's limit plus 20 s).
    with TrickleReceiver(body_bytes=400, every=0.1) as hook:
        job_id = await start(api, definition(hook.url))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = (await api.get(f"/v1/jobs/{job_id}")).json()
            if job["status"] in TERMINAL or hook.max_in_flight > 1:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # a send that outlived its attempt would show up here
        spans, ids, most = [list(s) for s in hook.spans], list(hook.webhook_ids), hook.max_in_flight
    assert most == 1, f"{most} POSTs of one target in flight at once: {spans}"
    assert job["status"] == "failed" and job["error"]["code"] == "WebhookUnavailable", job
    assert len(ids) == ATTEMPTS and len(set(ids)) == 1, ids
    assert all(end and end - begin < 10 for begin, end in spans), spans
    row, tries = await delivery_rows(engine, tenant_a.id, job_id)
    assert row.status == "failed" and [t.attempt for t in tries] == list(range(1, ATTEMPTS + 1))
    assert all(t.error and "no complete answer within 1 s" in t.error for t in tries), [t.error for t in tries]


async def test_a_repeated_final_record_counts_one_delivery_failure(api, tenant_a, engine, worker_settings):
    """record_delivery_attempt retried (its first call committed, its completion lost) counts
    the target's failure once: only the call that marks the row failed counts it."""
    with WebhookReceiver(tenant_a.webhook_secret, fail_first=1000, fail_status=302) as hook:
        job = await wait_job(api, await start(api, definition(hook.url)), timeout=60)
    assert job["status"] == "failed", job
    row, _ = await delivery_rows(engine, tenant_a.id, job["id"])
    async with tenant_session(engine, tenant_a.id) as s:  # as if the target were still being tried
        live = (await s.exec(select(Delivery).where(Delivery.id == row.id))).one()
        live.status = "pending"
        s.add(live)
    acts = DeliveryActivities(engine, httpx.AsyncClient(), worker_settings, make_secrets(worker_settings, secret_env()))

    def failures() -> float:
        return (
            REGISTRY.get_sample_value(
                "lodestone_delivery_failures_total", {"kind": "webhook", "reason": "ProbeFailure"}
            )
            or 0.0
        )

    before = failures()
    record = AttemptInput(
        str(tenant_a.id), job["id"], 0, "webhook", 0, None, "ProbeFailure: spent", "ProbeFailure", final=True
    )
    for _ in range(3):  # the first call and two retries of it
        await acts.record_delivery_attempt(record)
    await acts.http.aclose()
    row, _ = await delivery_rows(engine, tenant_a.id, job["id"])
    assert row.status == "failed"
    assert failures() - before == 1
