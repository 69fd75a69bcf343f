"""Draining a worker: POST /drain stops its polling, and it exits cleanly once idle."""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest
import typer

from cli.ops.drain import drain
from devstack.processes import free_port, wait_for_port
from lodestone.worker_http import worker_app


async def test_drain_stops_a_worker_only_with_its_token(stack, tmp_path):
    port = free_port()
    env = {**stack.env(), "WORKER_METRICS_PORT": str(port), "TEMPORAL_TASK_QUEUE": f"drain-{uuid.uuid4().hex}"}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60, proc)
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/health")).json()["status"] == "polling"
        # A webhook or any other caller without the token cannot stop it.
        async with httpx.AsyncClient() as http:
            assert (await http.post(f"http://127.0.0.1:{port}/drain")).status_code == 401
            wrong = await http.post(f"http://127.0.0.1:{port}/drain", headers={"Authorization": "Bearer wrong"})
            assert wrong.status_code == 401
            assert (await http.get(f"http://127.0.0.1:{port}/health")).json()["status"] == "polling"
        # `lodestone ops drain` run on the stack's DATA_DIR finds the token the stack made there.
        drained = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cli.main", "ops", "drain", "--url", f"http://127.0.0.1:{port}", "--timeout", "60"],
            env={**os.environ, "DATA_DIR": env["DATA_DIR"]},
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert drained.returncode == 0, drained.stdout + drained.stderr
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = drained.stdout
    assert "draining http://127.0.0.1" in out and "drained and exited" in out
    messages = [json.loads(line)["msg"] for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert "drain requested: no new tasks will be polled" in messages and "worker drained" in messages


def test_drain_without_a_worker_is_a_clear_error(capsys):
    with pytest.raises(typer.Exit) as exc:
        drain(f"http://127.0.0.1:{free_port()}", 1.0)
    assert exc.value.exit_code == 1
    assert "no worker answers" in capsys.readouterr().err


async def test_drain_is_off_while_no_token_is_set(settings):
    """Without WORKER_DRAIN_TOKEN, POST /drain stops nothing, whatever bearer it is sent."""
    draining = asyncio.Event()
    app = worker_app(None, settings.model_copy(update={"worker_drain_token": None}), None, None, draining)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://worker") as http:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            resp = await http.post("/drain", headers=headers)
            assert resp.status_code == 403, resp.text
            assert "WORKER_DRAIN_TOKEN" in resp.json()["error"]
    assert not draining.is_set()


async def test_a_worker_that_fails_while_starting_ends_its_tasks_and_closes_everything(settings, stack, monkeypatch):
    """ensure_purge_schedule raises after the worker made its pool, its clients and its
    background tasks: each is still ended or closed, even past a close that raises."""
    import worker as worker_module

    closed: list[str] = []

    class Pool:
        async def start(self) -> None:
            pass

        async def close(self) -> None:
            closed.append("templates")

    class LLM:
        async def close(self) -> None:
            closed.append("llm")
            raise RuntimeError("close failed")

    class Secrets:
        async def aclose(self) -> None:
            closed.append("secrets")

    async def refused(*_: object) -> str:
        raise RuntimeError("schedule refused")

    monkeypatch.setattr(worker_module.TemplatePool, "from_settings", staticmethod(lambda _: Pool()))
    monkeypatch.setattr(worker_module, "RoutingLLM", lambda _: LLM())
    monkeypatch.setattr(worker_module, "make_secrets", lambda *_: Secrets())
    monkeypatch.setattr(worker_module, "ensure_purge_schedule", refused)
    monkeypatch.setattr(worker_module, "setup_tracing", lambda *_: None)
    monkeypatch.setattr(worker_module, "shutdown_tracing", lambda: None)
    monkeypatch.setattr(asyncio.get_running_loop(), "add_signal_handler", lambda *_: None)
    background = {"sweep_forever", "run_outbox"}
    before = {t for t in asyncio.all_tasks() if t.get_coro().__qualname__ in background}
    with pytest.raises(RuntimeError, match="schedule refused"):
        await worker_module.run_worker(settings.model_copy(update={"worker_metrics_port": None}))
    left = [
        t.get_coro().__qualname__
        for t in asyncio.all_tasks() - before
        if t.get_coro().__qualname__ in background and not t.done()
    ]
    assert left == []
    assert sorted(closed) == ["llm", "secrets", "templates"]
