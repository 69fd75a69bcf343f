"""Step rows end in a true state, on an in-process worker (the real workflow and activities,
the session's PostgreSQL and Temporal; the LLM stand-in behind LLM_TIMEOUT_SECONDS 2): a step
cancelled because a sibling failed says `cancelled` with the reason, and a step whose attempt
failed on the server shows its error's type, not the server's own text (paths)."""

import asyncio
import errno
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lodestone.llm import RoutingLLM
from lodestone.netguard import guarded_client
from lodestone.secrets import make_secrets
from lodestone.settings import Settings, secret_env
from lodestone.storage import make_store
from lodestone.storage.base import StorageFull
from tests.helpers import TERMINAL, create_workflow, definition, in_process_api, submit, wait_job
from worker import WorkerDeps, build_worker

LEAK = "/srv/lodestone/objects/private-volume"


class LeakyStore:
    """The real store, except that a step named `leaky` cannot be written: the store is full,
    in words that name the server's path."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def put_bytes(self, key: str, *args: Any, **kwargs: Any) -> Any:
        if key.endswith("steps/leaky.txt"):
            raise StorageFull(
                errno.ENOSPC, f"the object store is full: [Errno 28] No space left on device: '{LEAK}/{key}.part'"
            )
        return await self._store.put_bytes(key, *args, **kwargs)


@pytest.fixture(scope="module")
async def api(settings: Settings, temporal, engine, tenant_a) -> AsyncIterator[httpx.AsyncClient]:
    s = settings.model_copy(update={"temporal_task_queue": f"steps-{uuid.uuid4()}", "step_max_attempts": 3})
    deps = WorkerDeps(
        s,
        LeakyStore(make_store(s)),
        RoutingLLM(s),
        guarded_client(s.outbound_allow_cidrs),  # type: ignore[arg-type]
        make_secrets(s, secret_env()),
    )
    token = tenant_a.api.headers["authorization"].removeprefix("Bearer ")
    async with build_worker(temporal, engine, deps, s.temporal_task_queue), in_process_api(s, token) as client:
        yield client
    await deps.http.aclose()


async def start(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    wf = await create_workflow(api, body)
    resp = await submit(api, wf["key"])
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


def steps_of(job: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {s["id"]: (s["status"], s["error"]) for s in job["steps"]}


async def test_a_step_cancelled_because_a_sibling_failed_says_cancelled(api):
    body = definition("http://127.0.0.1:9/never")
    models = {"angles": "refuse", "outline": "slow"}  # angles fails at once; outline is still running
    for step in body["steps"]:
        step["model"] = models.get(step["id"], "offline")
    job = await wait_job(api, await start(api, body), timeout=120)
    assert job["status"] == "failed" and job["error"]["failed_step"] == "step:angles", job
    await asyncio.sleep(6)  # past the slow answer's client timeout: the cancelled attempt has ended
    job = (await api.get(f"/v1/jobs/{job['id']}")).json()
    steps = steps_of(job)
    assert steps["research"][0] == "completed" and steps["angles"][0] == "failed", steps
    assert steps["outline"] == ("cancelled", "cancelled: step 'angles' failed"), steps
    assert "write" not in steps, steps


async def test_a_step_failing_on_the_server_shows_its_type_not_the_servers_text(api):
    body = definition("http://127.0.0.1:9/never")
    body["steps"] = [
        {
            "id": "leaky",
            "model": "offline",
            "inputs": {"company": "input.company"},
            "instructions": "About {{ company }}.",
        }
    ]
    body["template"] = "<html><body>{{ steps.leaky }}</body></html>"
    job_id = await start(api, body)
    seen: list[tuple[str, str | None]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = (await api.get(f"/v1/jobs/{job_id}")).json()
        seen += [(s["status"], s["error"]) for s in job["steps"]]
        if job["status"] in TERMINAL:
            break
        await asyncio.sleep(0.1)
    retrying = [err for status, err in seen if status == "retrying" and err]
    assert retrying, seen
    assert all(err.startswith("StorageFull: ") and LEAK not in err for err in retrying), retrying
    # The attempts spent, the step and the job say failed, with the type and without the text.
    assert job["status"] == "failed" and job["error"]["code"] == "StorageFull", job
    assert LEAK not in job["error"]["message"], job["error"]
    [step] = job["steps"]
    assert step["status"] == "failed" and step["error"].startswith("StorageFull: "), step
    assert LEAK not in step["error"], step
