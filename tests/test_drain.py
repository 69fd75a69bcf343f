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

from lodestone.devstack.processes import free_port, wait_for_port
from lodestone.ops.drain import drain


async def test_drain_stops_a_worker(stack, tmp_path, capsys):
    port = free_port()
    env = {**stack.env(), "WORKER_METRICS_PORT": str(port), "TEMPORAL_TASK_QUEUE": f"drain-{uuid.uuid4().hex}"}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lodestone.cli", "worker"], env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60, proc)
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/health")).json()["status"] == "polling"
        await asyncio.to_thread(drain, f"http://127.0.0.1:{port}", 60.0)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = capsys.readouterr().out
    assert "draining http://127.0.0.1" in out and "drained and exited" in out
    messages = [json.loads(line)["msg"] for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert "drain requested: no new tasks will be polled" in messages and "worker drained" in messages


def test_drain_without_a_worker_is_a_clear_error(capsys):
    with pytest.raises(typer.Exit) as exc:
        drain(f"http://127.0.0.1:{free_port()}", 1.0)
    assert exc.value.exit_code == 1
    assert "no worker answers" in capsys.readouterr().err
