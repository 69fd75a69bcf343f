"""A send's outcome is in Temporal's history before any database write: the database failing
right after a receiver's 2xx (an SMTP server's acceptance) sends nothing twice, and the job
ends delivered once the database takes the record. The faults are real PostgreSQL ones, set
between the receiver getting the request and answering it, for longer than the first
retries would wait: the app role loses INSERT on delivery_attempts, or the database cuts
the app role off (its connections terminated, no new login), as a restart would."""

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from devstack.receiver import WebhookReceiver
from lodestone.db import make_engine
from lodestone.mail import message_id
from lodestone.settings import Settings
from lodestone.webhooks import webhook_id
from tests.helpers import create_workflow, definition, delivery_attempts, submit, wait_job, worker_api
from tests.standins.smtp_sink import SMTPSink

FAULT_SECONDS = 8.0  # the old single activity would have sent again after 1, 2 and 4 s
APP = "lodestone_app"
FAULTS = {  # name: (break, mend), run as PostgreSQL's superuser
    "insert-revoked": (
        [f"REVOKE INSERT ON delivery_attempts FROM {APP}"],
        [f"GRANT INSERT ON delivery_attempts TO {APP}"],
    ),
    "app-cut-off": (
        [
            f"ALTER ROLE {APP} NOLOGIN",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{APP}'",
        ],
        [f"ALTER ROLE {APP} LOGIN"],
    ),
}


class StallingSink(SMTPSink):
    """The SMTP sink, calling `before_answer` once it has the message, before it says 250."""

    def __init__(self) -> None:
        super().__init__()
        self.before_answer = lambda: None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        answer = await super().handle_DATA(server, session, envelope)
        await asyncio.to_thread(self.before_answer)
        return answer


@pytest.fixture(scope="module")
def sink() -> Iterator[StallingSink]:
    with StallingSink() as server:
        yield server


@pytest.fixture(scope="module")
def worker_settings(settings: Settings, sink: StallingSink) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_from": "reports@lodestone.example",
            "smtp_timeout_seconds": 10.0,
            "temporal_task_queue": f"outcome-{uuid.uuid4()}",
            "outbound_allow_cidrs": ["127.0.0.1/32"],
        }
    )


@pytest.fixture(scope="module")
async def api(worker_settings: Settings, temporal, engine, tenant_a) -> AsyncIterator[httpx.AsyncClient]:
    """The API, starting workflows on an in-process worker (the real activities and workflow)."""
    s = worker_settings
    async with worker_api(s, temporal, engine, tenant_a) as client:
        yield client


async def attempts(engine, tenant_id, job_id: str) -> dict[str, tuple[str, list[int | None]]]:  # type: ignore[no-untyped-def]
    return {row.kind: (row.status, codes) for row, codes in await delivery_attempts(engine, tenant_id, job_id)}


@pytest.fixture(scope="module")
async def superuser(settings: Settings) -> AsyncIterator[Any]:
    eng = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{settings.postgres_port}/lodestone", 1)
    yield eng
    await eng.dispose()


async def run_sql(eng: Any, statements: list[str]) -> None:
    async with eng.begin() as conn:
        for sql in statements:
            await conn.execute(text(sql))


@pytest.mark.parametrize("fault", FAULTS)
async def test_database_failing_after_the_receivers_accept_sends_nothing_twice(
    api, sink, tenant_a, engine, superuser, fault
):
    breaking, mending = FAULTS[fault]
    # Both receivers hold their first request until the fault is set: each send has read its
    # row and sent, and only the answer (and the bookkeeping after it) meets the fault.
    webhook_held, mail_held, broken = threading.Event(), threading.Event(), threading.Event()

    def holding(held: threading.Event):  # type: ignore[no-untyped-def]
        def before_answer(*_: object) -> None:
            held.set()
            assert broken.wait(120), "the fault was never set up"

        return before_answer

    sink.before_answer = holding(mail_held)
    to = f"once-{uuid.uuid4().hex[:8]}@example.com"
    with WebhookReceiver(tenant_a.webhook_secret, before_answer=holding(webhook_held)) as hook:
        body = definition(hook.url)
        body["delivery"].append({"type": "email", "to": to})
        wf = await create_workflow(api, body)
        resp = await submit(api, wf["key"])
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        for held, name in ((webhook_held, "webhook"), (mail_held, "email")):
            assert await asyncio.to_thread(held.wait, 120), f"no {name} delivery reached its receiver"
        await run_sql(superuser, breaking)
        try:
            broken.set()  # both receivers now answer 2xx, and no attempt can be stored
            await asyncio.sleep(FAULT_SECONDS)
            assert len(hook.successes()) >= 1 and len(sink.to(to)) >= 1
        finally:
            await run_sql(superuser, mending)
        job = await wait_job(api, job_id, timeout=120)
        receipts = [r.webhook_id for r in hook.received]
    assert job["status"] == "delivered", job
    assert receipts == [webhook_id(job_id, 0)], receipts
    mail_id = message_id(webhook_id(job_id, 1), "reports@lodestone.example")
    assert sink.by_message_id()[mail_id] == 1, sink.by_message_id()
    assert await attempts(engine, tenant_a.id, job_id) == {
        "webhook": ("delivered", [204]),
        "email": ("delivered", [250]),
    }
    assert {d["kind"]: (d["status"], d["attempts"], d["error"]) for d in job["deliveries"]} == {
        "webhook": ("delivered", 1, None),
        "email": ("delivered", 1, None),
    }
