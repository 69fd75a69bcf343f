"""Session fixtures: a real PostgreSQL and Temporal dev server, the API and worker as
real processes, an OpenAI-compatible stand-in, and two tenants with tokens; and per module,
a time-skipping test server for workflow logic with stand-in activities."""

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devstack.graph_standin import GraphAPIStandIn
from devstack.keys import mint_token
from devstack.processes import free_port, venv_bin, wait_for_port
from devstack.stack import Stack
from lodestone.db import make_engine
from lodestone.settings import Settings
from lodestone.temporal_converter import DATA_CONVERTER
from services.tenants import create_tenant
from tests.standins.openai_server import OpenAIStandIn
from tests.standins.otlp_collector import OTLPCollector
from workflows.types import STATUS


@pytest.fixture(scope="session")
def llm_standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture(scope="session")
def moto_port() -> Iterator[int]:
    """moto's S3 server: the stand-in for MinIO/S3. It keeps objects in memory: keep them small."""
    port = free_port()
    proc = subprocess.Popen(
        [venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30, proc=proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def graph_standin() -> Iterator[GraphAPIStandIn]:
    with GraphAPIStandIn(token="graph-test-token") as server:
        yield server


@pytest.fixture(scope="session")
def otlp_collector() -> Iterator[OTLPCollector]:
    with OTLPCollector() as collector:
        yield collector


@pytest.fixture(scope="session")
def settings(
    tmp_path_factory: pytest.TempPathFactory,
    llm_standin: OpenAIStandIn,
    graph_standin: GraphAPIStandIn,
    otlp_collector: OTLPCollector,
) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("lodestone"),
        postgres_port=free_port(),
        temporal_port=free_port(),
        temporal_http_port=free_port(),
        temporal_metrics_port=free_port(),
        temporal_ui_port=free_port(),
        api_port=free_port(),
        worker_metrics_port=free_port(),
        llm_base_url=llm_standin.base_url,
        llm_api_key="stand-in-key",
        llm_timeout_seconds=2.0,
        # Model `local` (tests/test_local_model.py serves it there while it runs).
        local_llm_url=f"http://127.0.0.1:{free_port()}/v1",
        database_url=None,
        s3_endpoint=None,
        temporal_address=None,
        whatsapp_app_secret="wa-app-secret",
        whatsapp_verify_token="wa-verify-token",
        whatsapp_access_token="graph-test-token",
        whatsapp_graph_url=graph_standin.base_url,
        reply_batch_debounce=1.0,
        reply_batch_max_wait=4.0,
        otel_exporter_otlp_endpoint=otlp_collector.url,
        # The tests' receivers listen on any loopback port; `lodestone dev` allows only its demo's.
        outbound_allow_cidrs=["127.0.0.1/32"],
    )


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    stack = Stack(
        settings,
        web_ui=False,
        extra_env={
            "LLM_BASE_URL": settings.llm_base_url or "",
            "LLM_API_KEY": settings.llm_api_key or "",
            "LLM_TIMEOUT_SECONDS": str(settings.llm_timeout_seconds),
            "LOCAL_LLM_URL": settings.local_llm_url or "",
            "TEMPORAL_HTTP_PORT": str(settings.temporal_http_port),
            "TEMPORAL_METRICS_PORT": str(settings.temporal_metrics_port),
            "WHATSAPP_APP_SECRET": settings.whatsapp_app_secret or "",
            "WHATSAPP_VERIFY_TOKEN": settings.whatsapp_verify_token or "",
            "WHATSAPP_ACCESS_TOKEN": settings.whatsapp_access_token or "",
            "WHATSAPP_GRAPH_URL": settings.whatsapp_graph_url,
            "REPLY_BATCH_DEBOUNCE": str(settings.reply_batch_debounce),
            "REPLY_BATCH_MAX_WAIT": str(settings.reply_batch_max_wait),
            "SECRETS_FILE_ROOT": str(settings.data_path / "secrets"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": settings.otel_exporter_otlp_endpoint or "",
            # The outbox starts a job whose start failed within seconds, not the default ten.
            "OUTBOX_START_AFTER_SECONDS": "4",
            "OUTBOX_INTERVAL_SECONDS": "1",
        },
    )
    try:
        stack.start_infra()
        stack.start_app()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(stack.settings.app_database_url, 5)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
async def owner_engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(stack.settings.admin_database_url, 2)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
async def temporal(stack: Stack) -> Client:
    return await Client.connect(stack.settings.temporal_target)


@dataclass
class TenantCtx:
    id: uuid.UUID
    webhook_secret: str
    api: httpx.AsyncClient

    def token_for(self, settings: Settings, *roles: str, **kw: object) -> str:
        return mint_token(
            settings.data_path,
            issuer=settings.issuer,
            audience=settings.auth_audience,
            tenant_id=str(self.id),
            roles=list(roles),
            **kw,
        )  # type: ignore[arg-type]


async def _tenant(settings: Settings, engine: AsyncEngine, name: str) -> TenantCtx:
    tenant = await create_tenant(engine, name)
    token = mint_token(
        settings.data_path,
        issuer=settings.issuer,
        audience=settings.auth_audience,
        tenant_id=str(tenant.id),
        roles=["admin"],
    )
    api = httpx.AsyncClient(base_url=settings.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return TenantCtx(tenant.id, tenant.webhook_secret, api)


@pytest.fixture(scope="session")
async def tenant_a(settings: Settings, engine: AsyncEngine) -> AsyncIterator[TenantCtx]:
    ctx = await _tenant(settings, engine, "Tenant A")
    yield ctx
    await ctx.api.aclose()


@pytest.fixture(scope="session")
async def tenant_b(settings: Settings, engine: AsyncEngine) -> AsyncIterator[TenantCtx]:
    ctx = await _tenant(settings, engine, "Tenant B")
    yield ctx
    await ctx.api.aclose()


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, one per test module."""
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_bin("temporal-test-server"), data_converter=DATA_CONVERTER
    ) as env:
        # The job workflows keep their JobStatus search attribute current; this server needs it registered.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={STATUS.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
            )
        )
        yield env
