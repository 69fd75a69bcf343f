"""Email delivery targets: the real workflow and activities on an in-process worker whose
SMTP_HOST is an aiosmtpd sink on loopback (tests/standins/smtp_sink.py); the session stack's
own worker has no SMTP_HOST, which is the not-configured case."""

import copy
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.delivery import DeliveryActivities
from activities.delivery_log import DeliveryInput
from devstack.processes import free_port
from devstack.receiver import WebhookReceiver
from lodestone import mail
from lodestone.db import tenant_session
from lodestone.llm import RoutingLLM
from lodestone.netguard import guarded_client
from lodestone.secrets import make_secrets
from lodestone.settings import Settings, secret_env
from lodestone.storage import make_store
from lodestone.webhooks import webhook_id
from schema.definitions import DefinitionInvalid, validate_definition
from schema.tables import Delivery, DeliveryAttempt, JobFailure
from tests.helpers import create_workflow, definition, in_process_api, submit, wait_job
from tests.standins.smtp_sink import SMTPSink
from worker import WorkerDeps, build_worker


@pytest.fixture(scope="module")
def sink() -> Iterator[SMTPSink]:
    with SMTPSink() as server:
        yield server


@pytest.fixture(scope="module")
def mail_settings(settings: Settings, sink: SMTPSink) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_from": "reports@lodestone.example",
            "smtp_timeout_seconds": 5.0,
            "temporal_task_queue": f"mail-{uuid.uuid4()}",
            "outbound_allow_cidrs": ["127.0.0.1/32"],
        }
    )


@pytest.fixture(scope="module")
async def mail_worker(mail_settings: Settings, temporal, engine) -> AsyncIterator[DeliveryActivities]:
    s = mail_settings
    deps = WorkerDeps(
        s, make_store(s), RoutingLLM(s), guarded_client(s.outbound_allow_cidrs), make_secrets(s, secret_env())
    )
    async with build_worker(temporal, engine, deps, s.temporal_task_queue):
        yield DeliveryActivities(engine, deps.http, s, deps.secrets)
    await deps.http.aclose()


@pytest.fixture
async def mail_api(mail_settings: Settings, mail_worker, tenant_a) -> AsyncIterator[httpx.AsyncClient]:
    """The API, starting workflows on the in-process worker's task queue."""
    token = tenant_a.api.headers["authorization"].removeprefix("Bearer ")
    async with in_process_api(mail_settings, token) as api:
        yield api


def emailing(to: str, *, webhook: str | None = None, outputs: list[str] | None = None) -> dict[str, Any]:
    body = definition(webhook or "http://127.0.0.1:9/unused", outputs=outputs)
    body["delivery"] = ([{"type": "webhook", "url": webhook}] if webhook else []) + [{"type": "email", "to": to}]
    return body


async def run_job(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    wf = await create_workflow(api, body)
    resp = await submit(api, wf["key"])
    assert resp.status_code == 202, resp.text
    return await wait_job(api, resp.json()["job_id"], timeout=90)


async def attempts(engine, tenant_id, job_id: str) -> tuple[Delivery, list[int | None]]:  # type: ignore[no-untyped-def]
    async with tenant_session(engine, tenant_id) as s:
        row = (
            await s.exec(select(Delivery).where(Delivery.job_id == uuid.UUID(job_id), Delivery.kind == "email"))
        ).one()
        tries = (
            await s.exec(
                select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == row.id).order_by(DeliveryAttempt.attempt)
            )
        ).all()
    return row, [t.status_code for t in tries]


async def test_email_and_webhook_targets_both_deliver(mail_api, sink, tenant_a, engine, settings):
    to = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        job = await run_job(mail_api, emailing(to, webhook=hook.url, outputs=["html", "pdf"]))
    assert job["status"] == "delivered", job
    assert len(hook.successes()) == 1
    [got] = sink.to(to)
    assert got.message_id == f"<{webhook_id(job['id'], 1)}@lodestone.example>"
    assert got.message["From"] == "reports@lodestone.example" and got.message["To"] == to
    # The links are signed downloads: no token needed, and they serve the job's artifacts.
    urls = re.findall(r"(https?://\S+/download\?\S+)", got.message.get_content())
    assert len(urls) == 2
    sizes = {a["size"] for a in job["artifacts"]}
    async with httpx.AsyncClient() as anonymous:
        for url in urls:
            resp = await anonymous.get(url)
            assert resp.status_code == 200 and len(resp.content) in sizes
    row, codes = await attempts(engine, tenant_a.id, job["id"])
    assert (row.status, row.target, row.webhook_id, codes) == ("delivered", to, webhook_id(job["id"], 1), [250])
    assert {d["kind"] for d in job["deliveries"]} == {"webhook", "email"}


async def test_permanent_rejection_fails_the_job_at_once(mail_api, sink, tenant_a, engine):
    to = f"reject-{uuid.uuid4().hex[:8]}@example.com"
    job = await run_job(mail_api, emailing(to))
    assert job["status"] == "failed"
    assert job["error"]["code"] == "EmailRejected" and job["error"]["failed_step"] == "deliver:0"
    row, codes = await attempts(engine, tenant_a.id, job["id"])
    assert (row.status, codes) == ("failed", [550])
    assert sink.to(to) == []


async def test_temporary_failures_are_retried_until_accepted(mail_api, sink, tenant_a, engine):
    to = f"tempfail-2-{uuid.uuid4().hex[:8]}@example.com"
    job = await run_job(mail_api, emailing(to))
    assert job["status"] == "delivered", job
    row, codes = await attempts(engine, tenant_a.id, job["id"])
    assert (row.status, codes) == ("delivered", [451, 451, 250])
    assert len(sink.to(to)) == 1


async def test_a_retry_after_success_sends_nothing(mail_api, mail_worker, sink, tenant_a, engine):
    to = f"once-{uuid.uuid4().hex[:8]}@example.com"
    job = await run_job(mail_api, emailing(to))
    assert job["status"] == "delivered"
    # The activity again, as a retry after a lost completion would run it.
    result = await ActivityEnvironment().run(
        mail_worker.deliver_email, DeliveryInput(str(tenant_a.id), job["id"], 0, "2030-01-01T00:00:00+00:00")
    )
    assert result.webhook_id == webhook_id(job["id"], 0)
    assert len(sink.to(to)) == 1
    _, codes = await attempts(engine, tenant_a.id, job["id"])
    assert codes == [250]


async def test_without_smtp_host_the_job_fails_not_configured(tenant_a, engine):
    # The session stack's worker (worker.py) has no SMTP_HOST.
    job = await run_job(tenant_a.api, emailing("nobody@example.com"))
    assert job["status"] == "failed"
    assert job["error"]["code"] == "EmailNotConfigured"
    async with tenant_session(engine, tenant_a.id) as s:
        failure = (await s.exec(select(JobFailure).where(JobFailure.job_id == uuid.UUID(job["id"])))).one()
    assert failure.failed_step == "deliver:0"
    row, codes = await attempts(engine, tenant_a.id, job["id"])
    assert (row.status, codes) == ("failed", [None])


async def test_send_sorts_smtp_failures(mail_settings, sink):
    def msg(to: str) -> EmailMessage:
        now = datetime.now(UTC)
        return mail.delivery_message(
            sender="a@lodestone.example",
            to=to,
            delivery_id="msg_x",
            job_id="j",
            workflow_key="k",
            when=now,
            links=[],
            expires=now,
        )

    assert await mail.send(mail_settings, msg("fine@example.com")) == 250
    with pytest.raises(mail.MailRejected) as rejected:
        await mail.send(mail_settings, msg("reject-1@example.com"))
    assert rejected.value.code == 550
    sink.unavailable = True
    try:
        with pytest.raises(mail.MailUnavailable) as later:
            await mail.send(mail_settings, msg("fine@example.com"))
    finally:
        sink.unavailable = False
    assert later.value.code == 451
    with pytest.raises(mail.MailUnavailable):  # nothing listens there
        await mail.send(mail_settings.model_copy(update={"smtp_port": free_port()}), msg("fine@example.com"))
    with pytest.raises(mail.MailNotConfigured):
        await mail.send(mail_settings.model_copy(update={"smtp_host": None}), msg("fine@example.com"))


GOOD = emailing("sales@example.com", webhook="https://example.com/hook")


@pytest.mark.parametrize(
    "target",
    [
        {"type": "email", "to": "not-an-address"},
        {"type": "email", "to": "a@localhost"},
        {"type": "email", "to": "a@example.com\r\nBcc: everyone@example.com"},
        {"type": "email", "to": "Sales <sales@example.com>"},
        {"type": "email", "to": ("x" * 65) + "@example.com"},
        {"type": "email"},
        {"type": "email", "to": "a@example.com", "url": "https://example.com/hook"},
        {"type": "webhook", "to": "a@example.com"},
        {"to": "a@example.com"},
    ],
)
def test_bad_email_targets_are_schema_violations(target):
    body = copy.deepcopy(GOOD)
    body["delivery"] = [target]
    with pytest.raises(DefinitionInvalid) as err:
        validate_definition(body)
    assert err.value.code == "schema_violation" and err.value.path.startswith("/delivery/0")


def test_email_targets_are_valid():
    assert validate_definition(copy.deepcopy(GOOD))["delivery"][1]["to"] == "sales@example.com"


def test_message_id_takes_the_domain_of_a_sender_with_a_display_name():
    from lodestone.mail import message_id

    assert message_id("msg_1", "Lodestone <noreply@example.com>") == "<msg_1@example.com>"
    assert message_id("msg_1", "noreply@example.com") == "<msg_1@example.com>"
