"""Re-record the checked-in workflow histories: `python -m tests.histories.record`
(`python -m tests.histories.record submissions`: the submission histories only).

Runs each workflow type on a throwaway embedded stack (with the LLM and Graph API
stand-ins) and writes the histories next to this file. Re-record only on purpose: a
changed history is what the replay test compares the current code against.
"""

import asyncio
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.conversation import PurgeInput
from devstack.graph_standin import GraphAPIStandIn
from devstack.keys import mint_token
from devstack.processes import free_port
from devstack.receiver import WebhookReceiver
from devstack.stack import Stack
from lodestone.db import make_engine, tenant_session
from lodestone.settings import Settings
from schema.tables import Message, Tenant
from services.tenants import create_tenant
from tests.conversation_helpers import seed_contact
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.standins.openai_server import OpenAIStandIn
from workflows.conversation import ConversationWorkflow
from workflows.names import conversation_id
from workflows.retention import PurgeMessagesWorkflow
from workflows.summary import SummaryWorkflow
from workflows.types import TENANT_ID, ConversationInput, NewMessage, SummaryInput

HERE = Path(__file__).parent


async def save(name: str, handle: WorkflowHandle) -> None:
    history = await handle.fetch_history()
    (HERE / f"{name}.json").write_text(history.to_json())
    print(f"{name}: {handle.id}, {len(history.events)} events")  # noqa: T201


@asynccontextmanager
async def tenant_api(settings: Settings, name: str) -> AsyncIterator[tuple[Client, httpx.AsyncClient, Any]]:
    """(Temporal client, API client as the new tenant's admin, the tenant) on the stack."""
    tenant, client, headers = await admin_tenant(settings, name)
    async with httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=30) as api:
        yield client, api, tenant


def sibling_fails(url: str) -> dict:
    """angles is refused at once while outline waits on a slow model: outline is cancelled."""
    body = definition(url, key="recorded-sibling-fails")
    body["steps"][1]["model"], body["steps"][2]["model"] = "refuse", "slow"
    return body


async def admin_tenant(settings: Settings, name: str) -> tuple[Tenant, Client, dict[str, str]]:
    """A new tenant, a Temporal client, and the headers of an admin token for the tenant."""
    engine = make_engine(settings.app_database_url, 2)
    tenant = await create_tenant(engine, name)
    await engine.dispose()
    token = mint_token(
        settings.data_path,
        issuer=settings.issuer,
        audience=settings.auth_audience,
        tenant_id=str(tenant.id),
        roles=["admin"],
    )
    return tenant, await Client.connect(settings.temporal_target), {"Authorization": f"Bearer {token}"}


async def record_submissions(settings: Settings, client: Client, tenant) -> None:  # type: ignore[no-untyped-def]
    token = mint_token(
        settings.data_path,
        issuer=settings.issuer,
        audience=settings.auth_audience,
        tenant_id=str(tenant.id),
        roles=["admin"],
    )
    async with httpx.AsyncClient(base_url=settings.api_url, headers={"Authorization": f"Bearer {token}"}) as api:
        with (
            WebhookReceiver(tenant.webhook_secret, fail_first=1) as hook,
            WebhookReceiver(tenant.webhook_secret, fail_first=100, fail_status=302) as moved,
        ):
            ok = await create_workflow(api, definition(hook.url, key="recorded", outputs=["html", "pdf"]))
            bad = definition(hook.url, key="recorded-failing")
            bad["steps"][2]["model"] = "empty"
            await create_workflow(api, bad)
            await create_workflow(api, definition(moved.url, key="recorded-redirected"))
            await create_workflow(api, sibling_fails(hook.url))
            for name, key in (
                ("submission_delivered", ok["key"]),
                ("submission_failed", bad["key"]),
                ("submission_delivery_failed", "recorded-redirected"),
                ("submission_step_cancelled", "recorded-sibling-fails"),
            ):
                job_id = (await submit(api, key)).json()["job_id"]
                await wait_job(api, job_id, timeout=120)
                await save(name, client.get_workflow_handle(job_id))


async def record_conversations(settings: Settings, client: Client, tenant, graph: GraphAPIStandIn) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.app_database_url, 2)
    contact = await seed_contact(engine, tenant.id, messages=12, days=30)
    ids = [f"wamid.rec{uuid.uuid4().hex}" for _ in range(3)]
    async with tenant_session(engine, tenant.id) as s:
        for i, mid in enumerate(ids):
            s.add(
                Message(
                    tenant_id=tenant.id,
                    contact_id=contact.id,
                    message_id=mid,
                    direction="in",
                    body=f"Recorded message {i}",
                )
            )
    handle = None
    for mid in ids:
        handle = await client.start_workflow(
            ConversationWorkflow.run,
            ConversationInput(str(tenant.id), str(contact.id), 1.0, 4.0, True),
            id=conversation_id(str(tenant.id), contact.wa_id),
            task_queue=settings.temporal_task_queue,
            start_signal="new_message",
            start_signal_args=[NewMessage(mid)],
            search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, str(tenant.id))]),
        )
        await asyncio.sleep(0.3)
    while not [c for c in graph.texts() if c.body["to"] == contact.wa_id]:
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)
    assert handle is not None
    await save("conversation_replied", handle)
    await handle.terminate("recorded")
    summary = await client.start_workflow(
        SummaryWorkflow.run,
        SummaryInput(str(tenant.id), str(contact.id), 15),
        id=f"summary-recorded-{uuid.uuid4()}",
        task_queue=settings.temporal_task_queue,
    )
    await summary.result()
    await save("summary_sent", summary)
    purge = await client.start_workflow(
        PurgeMessagesWorkflow.run,
        PurgeInput(settings.message_retention_days),
        id=f"purge-recorded-{uuid.uuid4()}",
        task_queue=settings.temporal_task_queue,
    )
    await purge.result()
    await save("purge_messages", purge)
    await engine.dispose()


async def record(settings: Settings, graph: GraphAPIStandIn) -> None:
    engine = make_engine(settings.app_database_url, 2)
    tenant = await create_tenant(engine, "histories")
    await engine.dispose()
    client = await Client.connect(settings.temporal_target)
    await record_submissions(settings, client, tenant)
    await record_conversations(settings, client, tenant, graph)


def on_stack(work: Callable[[Settings, GraphAPIStandIn], Awaitable[None]]) -> None:
    """Runs work(settings, graph) on a throwaway embedded stack with the stand-ins."""
    with OpenAIStandIn() as llm, GraphAPIStandIn("graph-token") as graph, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            postgres_port=free_port(),
            temporal_port=free_port(),
            temporal_http_port=free_port(),
            temporal_metrics_port=free_port(),
            api_port=free_port(),
            llm_base_url=llm.base_url,
            llm_api_key="stand-in",
            outbound_allow_cidrs=["127.0.0.1/32"],
        )  # receivers on random loopback ports
        stack = Stack(
            settings,
            web_ui=False,
            extra_env={
                "LLM_BASE_URL": llm.base_url,
                "LLM_API_KEY": "stand-in",
                "TEMPORAL_HTTP_PORT": str(settings.temporal_http_port),
                "TEMPORAL_METRICS_PORT": str(settings.temporal_metrics_port),
                "WHATSAPP_ACCESS_TOKEN": "graph-token",
                "WHATSAPP_GRAPH_URL": graph.base_url,
            },
        )
        try:
            stack.start_infra()
            stack.start_app()
            asyncio.run(work(settings, graph))
        finally:
            stack.stop()


async def record_submissions_only(settings: Settings, _graph: GraphAPIStandIn) -> None:
    async with tenant_api(settings, "submission-histories") as (client, _api, tenant):
        await record_submissions(settings, client, tenant)


def main() -> None:
    on_stack(record_submissions_only if sys.argv[1:] == ["submissions"] else record)


if __name__ == "__main__":
    main()
