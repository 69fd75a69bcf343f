"""Re-record the checked-in workflow histories: `python -m tests.histories.record`.

Runs a delivered and a failed SubmissionWorkflow on a throwaway embedded stack and
writes their histories next to this file. Re-record only on purpose: a changed history
is what the replay test compares the current code against.
"""

import asyncio
import tempfile
from pathlib import Path

import httpx
from temporalio.client import Client

from lodestone.db import make_engine
from lodestone.devstack.keys import mint_token
from lodestone.devstack.processes import free_port
from lodestone.devstack.stack import Stack
from lodestone.receiver import WebhookReceiver
from lodestone.settings import Settings
from lodestone.tenants import create_tenant
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.standins.openai_server import OpenAIStandIn

HERE = Path(__file__).parent


async def record(settings: Settings) -> None:
    engine = make_engine(settings.app_database_url, 2)
    tenant = await create_tenant(engine, "histories")
    await engine.dispose()
    token = mint_token(settings.data_path, issuer=settings.issuer, audience=settings.auth_audience,
                       tenant_id=str(tenant.id), roles=["admin"])
    client = await Client.connect(settings.temporal_target)
    async with httpx.AsyncClient(base_url=settings.api_url, headers={"Authorization": f"Bearer {token}"}) as api:
        with WebhookReceiver(tenant.webhook_secret, fail_first=1) as hook:
            ok = await create_workflow(api, definition(hook.url, key="recorded", outputs=["html", "pdf"]))
            bad = definition(hook.url, key="recorded-failing")
            bad["steps"][2]["model"] = "empty"
            await create_workflow(api, bad)
            for name, key in (("submission_delivered", ok["key"]), ("submission_failed", bad["key"])):
                job_id = (await submit(api, key)).json()["job_id"]
                job = await wait_job(api, job_id, timeout=120)
                history = await client.get_workflow_handle(job_id).fetch_history()
                (HERE / f"{name}.json").write_text(history.to_json())
                print(f"{name}: job {job_id} {job['status']}, {len(history.events)} events")  # noqa: T201


def main() -> None:
    with OpenAIStandIn() as llm, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), postgres_port=free_port(),
                            temporal_port=free_port(), temporal_http_port=free_port(),
                            temporal_metrics_port=free_port(), api_port=free_port(),
                            llm_base_url=llm.base_url, llm_api_key="stand-in")
        stack = Stack(settings, web_ui=False, extra_env={
            "LLM_BASE_URL": llm.base_url, "LLM_API_KEY": "stand-in",
            "TEMPORAL_HTTP_PORT": str(settings.temporal_http_port),
            "TEMPORAL_METRICS_PORT": str(settings.temporal_metrics_port)})
        try:
            stack.start_infra()
            stack.start_app()
            asyncio.run(record(settings))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
