"""Approval links on the session stack, with examples/state-machines/lead-magnet-approval.json
(its two webhook targets pointed at this test's receivers): the reviewer's webhook carries a
signed link; GET shows the question and changes nothing; approve delivers the report, reject
fails the job with `Rejected`; a link works once, and a forged, altered, expired or foreign
one is refused, as is a link to a token that was not issued with one."""

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from devstack.receiver import WebhookReceiver
from devstack.task_service import TaskService
from lodestone import approval_links
from tests.callback_support import start_approval
from tests.helpers import create_workflow, submit, wait_job

EXAMPLE = Path(__file__).parent.parent / "examples" / "state-machines" / "lead-magnet-approval.json"
SUBMISSION = json.loads(EXAMPLE.with_name("lead-magnet-approval.submission.json").read_text())
WEEK = 604800  # the example's Approve TimeoutSeconds


def example_for(review: str, leads: str) -> dict[str, Any]:
    text = EXAMPLE.read_text().replace("http://127.0.0.1:8791/review", review)
    body = json.loads(text.replace("http://127.0.0.1:8791/leads", leads))
    body["key"] = f"lead-magnet-approval-{uuid.uuid4().hex[:6]}"
    return body


async def ask(tenant, review: WebhookReceiver, leads: WebhookReceiver) -> tuple[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Submits the example; (job id, the approval request the reviewer received)."""
    body = example_for(review.url, leads.url)
    await create_workflow(tenant.api, body)
    resp = await submit(tenant.api, body["key"], SUBMISSION["input"])
    assert resp.status_code == 202, resp.text
    got = await asyncio.to_thread(review.wait_for_success, 90)
    assert got is not None and got.verified, "no signed approval request reached the reviewer"
    return resp.json()["job_id"], json.loads(got.body)


async def test_approve_by_link_delivers_and_the_link_works_once(settings, tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as review, WebhookReceiver(tenant_a.webhook_secret) as leads:
        job_id, request = await ask(tenant_a, review, leads)
        data = request["data"]
        assert request["type"] == "approval.requested"
        assert data["question"] == "Send the report for Acme Anvils to buyer@example.com?"
        assert (data["job_id"], data["state"]) == (job_id, "Approve")
        expires = parse_qs(urlsplit(data["url"]).query)["expires"][0]
        assert abs(int(expires) - (time.time() + WEEK)) < 120  # the Task's TimeoutSeconds from its start
        assert data["approve_url"] == data["url"].replace("?", "/approve?", 1)

        async with httpx.AsyncClient(timeout=30) as person:  # no bearer token
            page = await person.get(data["url"])
            assert page.status_code == 200, page.text
            assert "Send the report for Acme Anvils to buyer@example.com?" in page.text
            assert page.text.count("<button formaction=") == 2
            shown = await person.get(data["url"], headers={"Accept": "application/json"})
            assert shown.json() == {"question": data["question"], "state": "Approve", "status": "waiting"}
            assert leads.received == []

            forged = await person.post(data["approve_url"].replace("sig=", "sig=x"))
            assert forged.status_code == 403 and "not valid" in forged.text
            altered = data["url"].replace("Acme", "Evil")
            assert (await person.get(altered)).status_code == 403

            ok = await person.post(data["approve_url"])
            assert ok.status_code == 200 and "You approved this request." in ok.text
            job = await wait_job(tenant_a.api, job_id, timeout=60)
            assert job["status"] == "succeeded", job
            assert job["output"]["approval"] == {"approved": True, "by": "link"}
            delivered = await asyncio.to_thread(leads.wait_for_success, 30)
            assert delivered is not None and json.loads(delivered.body)["type"] == "job.delivered"

            again = await person.post(data["reject_url"], headers={"Accept": "application/json"})
            assert again.status_code == 409 and again.json()["code"] == "task_token_used"
            replay = await person.post(data["approve_url"])
            assert replay.status_code == 409 and "already answered" in replay.text
            assert (await person.get(data["url"])).status_code == 409


async def test_reject_by_link_fails_the_job_with_rejected_and_delivers_nothing(tenant_a):
    with WebhookReceiver(tenant_a.webhook_secret) as review, WebhookReceiver(tenant_a.webhook_secret) as leads:
        job_id, request = await ask(tenant_a, review, leads)
        async with httpx.AsyncClient(timeout=30) as person:
            resp = await person.post(request["data"]["reject_url"], headers={"Accept": "application/json"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "failed"
        job = await wait_job(tenant_a.api, job_id, timeout=60)
        assert job["status"] == "failed", job
        assert "Rejected" in json.dumps(job.get("error") or job.get("failure"))
        assert leads.received == []


async def test_a_link_is_refused_for_another_tenant_a_plain_token_or_after_it_expired(settings, tenant_a, tenant_b):
    key = approval_links.approval_key(settings)  # the stack's own key: these links are well signed
    with TaskService(tenant_a.webhook_secret, {"approve": [{"queued": True}]}) as svc:
        _, plain = await start_approval(tenant_a.api, svc, order=901)  # a callback Task with no link
        async with httpx.AsyncClient(timeout=30) as person:

            async def status(tenant_id: uuid.UUID, expires: int) -> int:
                link = approval_links.mint(key, plain, tenant_id, expires, "Approve?")
                return (await person.post(link.url(settings.api_url, approval_links.APPROVE))).status_code

            assert await status(tenant_a.id, int(time.time()) + 600) == 404  # not issued with a link
            assert await status(tenant_b.id, int(time.time()) + 600) == 404  # another tenant's token
            assert await status(tenant_a.id, int(time.time()) - 1) == 403  # expired
        # the bearer route still answers for it: nothing above used the token
        beat = await tenant_a.api.post(f"/v1/task-tokens/{plain}/heartbeat")
        assert beat.status_code == 200 and beat.json()["status"] == "waiting"
