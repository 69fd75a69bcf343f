"""A job's event stream (GET /v1/jobs/{id}/events) against the real stack: the full sequence
of a pipeline with its LLM tokens, resuming with Last-Event-ID mid-job, a finished job's
replay, tenants and roles."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from devstack.receiver import WebhookReceiver
from lodestone.storage import job_key, make_store
from schema.statuses import TERMINAL
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.job_events_support import Frame, read_events

STEPS = ["research", "angles", "outline", "write"]


def of(frames: list[Frame], event: str, **match: object) -> list[Frame]:
    return [f for f in frames if f.event == event and all(f.data.get(k) == v for k, v in match.items())]


async def run_job(tenant, model: str, ends: str = "delivered", fail_first: int = 0) -> tuple[str, list[Frame]]:  # type: ignore[no-untyped-def]
    """A pipeline job of `model` that ends `ends`, and its stream as read live from its start."""
    with WebhookReceiver(tenant.webhook_secret, fail_first=fail_first) as hook:
        wf = await create_workflow(tenant.api, definition(hook.url, model=model))
        job_id = (await submit(tenant.api, wf["key"])).json()["job_id"]
        live = await read_events(tenant.api, job_id)  # opened while the job runs: follows it to its end
        assert (await wait_job(tenant.api, job_id))["status"] == ends
    return job_id, live


async def test_a_pipeline_streams_every_event_in_order_with_its_tokens(settings, tenant_a):
    job_id, live = await run_job(tenant_a, "trickle-events")

    assert [f.id for f in live] == list(range(1, len(live) + 1))
    assert [f.data["status"] for f in of(live, "status")] == ["queued", "processing", "delivered"]
    assert live[:2] == of(live, "status")[:2]
    assert [f.event for f in live[-4:]] == ["artifact", "delivery", "status", "end"]
    assert live[-1].data == {"status": "delivered", "error": None}
    artifact, delivery = live[-4].data, live[-3].data
    assert artifact["kind"] == "html" and artifact["url"] == f"/v1/artifacts/{artifact['artifact_id']}"
    assert delivery | {"delivery_id": None} == {
        "delivery_id": None,
        "target": delivery["target"],
        "attempt": 1,
        "status": "delivered",
        "http_status": 204,
        "error": None,
    }

    store = make_store(settings)
    for step in STEPS:
        mine = [f for f in live if f.data.get("step") == step]
        assert [f.event for f in (mine[0], mine[-1])] == ["step", "step"]
        assert [f.data["status"] for f in (mine[0], mine[-1])] == ["started", "completed"]
        tokens = [f for f in mine if f.event == "token"]
        assert {f.event for f in mine[1:-1]} == {"token"} and all(f.data["attempt"] == 1 for f in tokens)
        output = await store.get_bytes(job_key(str(tenant_a.id), job_id, f"steps/{step}.txt"))
        assert "".join(f.data["text"] for f in tokens) == output.decode()
        assert len(tokens) > 1  # the model trickles its answer: its text arrives in pieces
    # write waits on angles and outline, which wait on research.
    done = {s: next(f.id for f in of(live, "step", step=s, status="completed")) for s in STEPS}
    started = {s: next(f.id for f in of(live, "step", step=s, status="started")) for s in STEPS}
    assert done["research"] < min(started["angles"], started["outline"])
    assert max(done["angles"], done["outline"]) < started["write"]
    assert done["write"] < live[-4].id

    replay = await asyncio.wait_for(read_events(tenant_a.api, job_id), 30)  # finished: replays and closes
    assert replay == live


async def test_tokens_arriving_at_once_are_written_as_one_event(settings, tenant_a):
    # The offline model hands its answer over word by word, all at once.
    job_id, live = await run_job(tenant_a, "offline")
    store = make_store(settings)
    for step in STEPS:
        tokens = of(live, "token", step=step)
        output = (await store.get_bytes(job_key(str(tenant_a.id), job_id, f"steps/{step}.txt"))).decode()
        assert "".join(f.data["text"] for f in tokens) == output
        assert len(tokens) <= 2 < len(output.split())  # one write per flush interval, not per word


async def test_a_reconnect_with_last_event_id_mid_job_loses_and_repeats_nothing(tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, model="trickle-resume"))
        job_id = (await submit(tenant_a.api, wf["key"])).json()["job_id"]
        first = await read_events(tenant_a.api, job_id, stop=6)  # then hangs up
        assert (await tenant_a.api.get(f"/v1/jobs/{job_id}")).json()["status"] not in TERMINAL
        rest = await read_events(tenant_a.api, job_id, last_event_id=first[-1].id)
        await wait_job(tenant_a.api, job_id)
    full = await read_events(tenant_a.api, job_id)
    assert first + rest == full and full[-1].event == "end"
    assert await read_events(tenant_a.api, job_id, after=first[-1].id) == rest
    assert await read_events(tenant_a.api, job_id, last_event_id=full[-1].id) == []  # after the end: closes


async def test_another_tenant_gets_404_and_a_viewer_may_read(settings, tenant_a, tenant_b):
    job_id, live = await run_job(tenant_a, "offline")
    theirs = await tenant_b.api.get(f"/v1/jobs/{job_id}/events")
    assert theirs.status_code == 404 and theirs.headers["content-type"].startswith("application/problem+json")
    token = tenant_a.token_for(settings, "viewer")
    async with httpx.AsyncClient(base_url=settings.api_url, headers={"Authorization": f"Bearer {token}"}) as viewer:
        assert await read_events(viewer, job_id) == live
    assert (await tenant_a.api.get("/v1/jobs/not-a-uuid/events")).status_code == 422
    bad = await tenant_a.api.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422


async def test_a_retried_step_says_when_it_retries_and_marks_each_attempts_tokens(settings, tenant_a):
    # The first answer breaks off after three pieces; Temporal retries the step.
    job_id, live = await run_job(tenant_a, f"cutoff-1-{uuid.uuid4().hex[:8]}")
    research = [f for f in live if f.data.get("step") == "research"]
    steps = [(f.data["status"], f.data["attempt"]) for f in research if f.event == "step"]
    assert steps == [("started", 1), ("retrying", 1), ("started", 2), ("completed", 2)]
    retrying = next(f for f in research if f.data.get("status") == "retrying")
    assert retrying.data["error"].startswith("LLMTransient") and retrying.data["next_attempt_at"]
    job = (await tenant_a.api.get(f"/v1/jobs/{job_id}")).json()
    # STEP_RETRY's first backoff is 2 s, counted from the failure, which came after the job began.
    at = datetime.fromisoformat(retrying.data["next_attempt_at"])
    assert datetime.fromisoformat(job["created_at"]) + timedelta(seconds=2) < at < datetime.now(UTC)
    first = "".join(f.data["text"] for f in research if f.event == "token" and f.data["attempt"] == 1)
    second = "".join(f.data["text"] for f in research if f.event == "token" and f.data["attempt"] == 2)
    output = await make_store(settings).get_bytes(job_key(str(tenant_a.id), job_id, "steps/research.txt"))
    assert second == output.decode() and output.decode().startswith(first) and first != second


async def test_a_failed_step_and_a_failed_job_end_the_stream_with_the_error(tenant_a):
    job_id, live = await run_job(tenant_a, "refuse", ends="failed")
    job = (await tenant_a.api.get(f"/v1/jobs/{job_id}")).json()
    steps = [(f.data["step"], f.data["status"], f.data["attempt"]) for f in of(live, "step")]
    assert steps == [("research", "started", 1), ("research", "failed", 1)]  # once, though the workflow says it too
    assert "refused" in of(live, "step", status="failed")[0].data["error"]
    assert [f.event for f in live[-2:]] == ["status", "end"]
    assert (
        live[-1].data
        == live[-2].data
        == {"status": "failed", "error": f"{job['error']['code']}: {job['error']['message']}"}
    )


async def test_each_delivery_attempt_is_an_event(tenant_a):
    _, live = await run_job(tenant_a, "offline", fail_first=1)
    attempts = [(f.data["attempt"], f.data["status"], f.data["http_status"]) for f in of(live, "delivery")]
    assert attempts == [(1, "retrying", 503), (2, "delivered", 204)]


async def test_a_redriven_jobs_stream_goes_on_past_the_failed_runs_end(tenant_a):
    job_id, first = await run_job(tenant_a, "refuse", ends="failed")
    resp = await tenant_a.api.post(f"/v1/jobs/{job_id}/redrive")
    assert resp.status_code == 202, resp.text
    # Opened at once: it replays the first run's `end`, then the redrive's `pending`, and follows
    # the new run to its own end instead of closing at the old one.
    frames = await read_events(tenant_a.api, job_id)
    assert [f.id for f in frames] == list(range(1, len(frames) + 1))
    assert frames[: len(first)] == first
    assert (frames[len(first)].event, frames[len(first)].data) == ("status", {"status": "pending", "error": None})
    assert [f.event for f in frames].count("end") == 2 and frames[-1].event == "end"
    assert frames[-1].data["status"] == "failed"
    assert (await wait_job(tenant_a.api, job_id))["status"] == "failed"
