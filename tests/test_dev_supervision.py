"""`lodestone dev` keeps its processes up: a worker killed outright or drained is started
again while the rest keep running, and a process that keeps dying ends the stack, named."""

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from devstack.keys import mint_token
from tests.helpers import definition
from tests.test_devstack import lodestone, stack_env


class Output:
    """The lines a child prints, read as they come, with a wait for the one that matters."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for line in self.lines if (m := re.search(pattern, line))]
            return bool(found) or (bool(self.lines) and self.lines[-1] == "")

        with self._changed:
            self._changed.wait_for(seen, timeout)
        if not found:
            pytest.fail(f"no line matching {pattern!r} in:\n{self.text()}")
        return found[-1]


def children_by_role(proc: subprocess.Popen) -> dict[str, psutil.Process]:
    roles = {}
    for child in psutil.Process(proc.pid).children():
        cmd = child.cmdline()
        role = cmd[-1] if "cli.main" in cmd else Path(cmd[0]).name
        roles[role] = child
    return roles


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.timeout(400)
def test_dev_restarts_a_killed_and_a_drained_worker_and_runs_a_job(tmp_path):
    env = {**stack_env(tmp_path), "COLUMNS": "1000"}  # one message, one line
    proc = lodestone("dev", "--no-demo", env=env, start_new_session=True)
    out = Output(proc)
    try:
        out.wait_for("Ctrl-C to stop", 180)
        before = children_by_role(proc)
        assert {"api", "worker", "postgres", "temporal"} <= before.keys(), before
        worker_log = tmp_path / "logs" / "worker.log"

        before["worker"].send_signal(signal.SIGKILL)
        out.wait_for(
            rf"worker exited \(killed by SIGKILL\) .*restarting in 1s; its log: {re.escape(str(worker_log))}", 30
        )
        restarted = int(out.wait_for(r"restarted worker \(pid (\d+)\)", 30).group(1))
        assert restarted != before["worker"].pid

        # Drained, a worker exits on purpose (exit code 0): it is started again too.
        worker_url = f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}"
        deadline = time.monotonic() + 60
        while True:  # the restarted worker listens once it has connected to Temporal
            try:
                if httpx.get(f"{worker_url}/health", timeout=5).json()["status"] == "polling":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, out.text()
            time.sleep(0.2)
        cli("ops", "drain", "--timeout", "60", env=env)
        out.wait_for(r"worker exited \(exit code 0\) .*restarting in 2s", 30)
        again = int(out.wait_for(rf"restarted worker \(pid (?!{restarted}\))(\d+)\)", 30).group(1))

        after = children_by_role(proc)
        assert after["worker"].pid == again
        for role in ("api", "postgres", "temporal"):  # never restarted
            assert after[role].pid == before[role].pid and after[role].is_running(), role

        tenant = dict(line.split("=", 1) for line in cli("tenant", "create", "Supervised", env=env).split())
        api = f"http://127.0.0.1:{env['API_PORT']}"
        token = mint_token(
            tmp_path,
            issuer=f"{api}/realms/lodestone",
            audience="lodestone-api",
            tenant_id=tenant["tenant_id"],
            roles=["admin"],
        )
        body = definition("http://unused.invalid/")
        del body["delivery"]
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            assert http.post("/v1/workflows", json=body).status_code == 201
            sub = http.post("/v1/submissions", json={"workflow_key": body["key"], "input": {"company": "Acme"}})
            assert sub.status_code == 202, sub.text
            deadline = time.monotonic() + 120
            while (job := http.get(f"/v1/jobs/{sub.json()['job_id']}").json())["status"] not in ("delivered", "failed"):
                assert time.monotonic() < deadline, job
                time.sleep(0.3)
        assert job["status"] == "delivered", job
        assert proc.poll() is None, out.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.timeout(400)
def test_dev_gives_up_on_a_worker_that_keeps_crashing(tmp_path):
    """The worker's port is taken, so every start fails at once: after five exits in a row
    `lodestone dev` stops, naming the worker and its log, and leaves no process behind."""
    env = {**stack_env(tmp_path), "COLUMNS": "1000"}
    with socket.create_server(("127.0.0.1", int(env["WORKER_METRICS_PORT"]))):
        proc = lodestone("dev", "--no-demo", env=env, start_new_session=True)
        out, _ = proc.communicate(timeout=360)
    assert proc.returncode == 1, out
    assert re.findall(r"worker exited \(exit code 1\) .*restarting in (\d+)s", out) == ["1", "2", "4", "8"], out
    assert re.search(
        rf"error: worker exited 5 times in a row, each within 60s of starting \(last: exit code 1\); "
        rf"its log: {re.escape(str(tmp_path / 'logs' / 'worker.log'))}",
        " ".join(out.split()),
    ), out
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []
