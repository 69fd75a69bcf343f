"""`lodestone demo` and `lodestone dev` as a user runs them: real processes, own ports,
and no process left behind on exit, on SIGTERM, or when the parent is killed outright."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pypdf
import pytest

from devstack.demo import DEMO_TENANT
from devstack.keys import mint_token
from devstack.processes import free_port
from devstack.stack import Stack
from lodestone.settings import Settings
from tests.helpers import cmdline, definition


def stack_env(data_dir: Path, local_llm: bool = False) -> dict[str, str]:
    """Own ports and data dir; the local model only when asked (short answers then)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "S3_", "LLM_", "LOCAL_LLM_", "TEMPORAL_"))
    }
    env.update(
        LOCAL_LLM=str(local_llm).lower(),
        LOCAL_LLM_PORT=str(free_port()),
        LOCAL_LLM_MAX_TOKENS="48",
        DATA_DIR=str(data_dir),
        API_PORT=str(free_port()),
        POSTGRES_PORT=str(free_port()),
        TEMPORAL_PORT=str(free_port()),
        TEMPORAL_UI_PORT=str(free_port()),
        TEMPORAL_HTTP_PORT=str(free_port()),
        TEMPORAL_METRICS_PORT=str(free_port()),
        WORKER_METRICS_PORT=str(free_port()),
    )
    return env


def lodestone(*args: str, env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def wait_gone(procs: list[psutil.Process], timeout: float = 20) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


def names(procs: list[psutil.Process]) -> set[str]:
    out = set()
    for p in procs:
        try:
            out.add(p.name())
        except psutil.NoSuchProcess:
            pass
    return out


def pdf_server_started(proc: subprocess.Popen, timeout: float = 60) -> list[psutil.Process]:
    """Every descendant of `proc`, once one of them is the worker's PDF fork server."""
    deadline = time.monotonic() + timeout
    while True:
        children = psutil.Process(proc.pid).children(recursive=True)
        try:
            if any("lodestone.pdf_server" in cmdline(c) for c in children):
                return children
        except psutil.NoSuchProcess:
            pass
        assert time.monotonic() < deadline, "the worker never started its PDF fork server"
        time.sleep(0.2)


def descendants_when_serving(proc: subprocess.Popen, timeout: float = 120) -> tuple[list[psutil.Process], str]:
    out = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:  # type: ignore[union-attr]
        out.append(line)
        if "Ctrl-C to stop" in line:
            return psutil.Process(proc.pid).children(recursive=True), "".join(out)
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail("lodestone dev never reached serving:\n" + "".join(out))


SOURCE_LINE = re.compile(r"\b[\w/.-]+\.py:\d+\b")  # rich's console.log column, e.g. main.py:82


def test_free_ports_stay_out_of_the_ephemeral_range():
    """No outgoing connection can take a port between free_port's check and the bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < low for p in ports), [p for p in ports if p >= low]


def test_a_taken_port_stops_the_stack_before_it_starts_anything(tmp_path):
    """The API port already held by another process is named, and nothing is started
    (no PostgreSQL, no Temporal, not even the data dir), so no client meets the holder."""
    env = stack_env(tmp_path / "data")
    with socket.create_server(("127.0.0.1", int(env["API_PORT"]))):
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            **{k.lower(): int(v) for k, v in env.items() if k.endswith("_PORT")},
        )
        stack = Stack(settings)
        with pytest.raises(RuntimeError, match=f"^API_PORT {env['API_PORT']} is in use by another process"):
            stack.start_infra()
        with pytest.raises(StopIteration):
            stack.group.pid("postgres")
    assert not (tmp_path / "data").exists()


def test_dev_names_a_taken_port_and_exits(tmp_path):
    env = stack_env(tmp_path)
    with socket.create_server(("127.0.0.1", int(env["TEMPORAL_PORT"]))):
        proc = lodestone("dev", env=env)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert f"TEMPORAL_PORT {env['TEMPORAL_PORT']} is in use by another process" in out, out
    assert "starting PostgreSQL" not in out, out


def test_demo_exits_zero_and_leaves_nothing(tmp_path):
    """The demo runs on the local model: its report and the conversation summary hold text
    the model wrote, not the offline model's fixed text."""
    proc = lodestone("demo", env=stack_env(tmp_path, local_llm=True))
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "signature verified" in out and "(status: delivered)" in out
    assert "starting PostgreSQL" in out and SOURCE_LINE.findall(out) == [], out
    assert "on model 'local'" in out, out
    (pdf,) = tmp_path.glob("objects/*/jobs/*/report.pdf")
    (summary,) = re.findall(r"^summary:\s+(\S+\.pdf)$", out, re.M)
    for path in (pdf, Path(summary)):
        text = " ".join(page.extract_text() for page in pypdf.PdfReader(path).pages)
        assert "offline output" not in text and "no language model" not in text, text
    report = next(tmp_path.glob("objects/*/jobs/*/report.html")).read_text()
    assert "[offline output" not in report and len(re.sub(r"<[^>]+>", " ", report).split()) > 30, report
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def test_demo_stops_when_the_worker_dies(tmp_path):
    """A worker that cannot start (its metrics port is taken) ends the demo with an error
    naming it, instead of a job left pending until the demo's timeout."""
    env = stack_env(tmp_path)
    with socket.create_server(("127.0.0.1", int(env["WORKER_METRICS_PORT"]))):
        proc = lodestone("demo", env=env)
        out, _ = proc.communicate(timeout=150)
    assert proc.returncode == 1, out
    assert "worker exited unexpectedly" in out, out
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job


@pytest.mark.parametrize("how", ["sigterm", "sigint", "sigkill"])
def test_dev_stops_every_child(tmp_path, how):
    proc = lodestone(
        "dev",
        "--no-demo",
        env=stack_env(tmp_path, local_llm=True),
        start_new_session=True,
        preexec_fn=_ignore_sigint if how == "sigint" else None,
    )
    children: list[psutil.Process] = []
    try:
        children, out = descendants_when_serving(proc)
        assert {"postgres", "temporal"} <= names(children), names(children)
        assert len([c for c in children if "cli.main" in cmdline(c)]) == 2  # api and worker
        assert len([c for c in children if "devstack.local_model" in cmdline(c)]) == 1
        children = pdf_server_started(proc)  # the worker starts its PDF fork server once it runs
        sig = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT, "sigkill": signal.SIGKILL}[how]
        proc.send_signal(sig)
        proc.wait(timeout=60)
        assert wait_gone(children) == []
    finally:  # a failed assertion above leaves no stack behind
        for p in [*children, psutil.Process(proc.pid)] if proc.poll() is None else children:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def test_dev_lets_a_tenant_reach_the_demo_receivers_and_not_the_stack(tmp_path):
    """Under `lodestone dev` outbound calls reach the demo's receivers (the sample job is
    delivered) and no other loopback port: a tenant's webhook at the worker's /drain is refused
    when stored, an input URL at the API's /metrics when its job runs, and the worker keeps
    polling. The demo's receiver stays up after the demo: the sample, submitted again, is delivered."""
    env = stack_env(tmp_path)
    proc = lodestone("dev", env=env, start_new_session=True)
    try:
        _, out = descendants_when_serving(proc)
        assert "(status: delivered)" in out and "signature verified" in out, out
        api, worker = f"http://127.0.0.1:{env['API_PORT']}", f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}"
        token = mint_token(
            tmp_path,
            issuer=f"{api}/realms/lodestone",
            audience="lodestone-api",
            tenant_id=str(DEMO_TENANT),
            roles=["admin"],
        )
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            # A webhook at a stack port is refused when stored: the check reads the worker's allow list.
            refused = http.post("/v1/workflows", json=definition(f"{worker}/drain"))
            assert refused.status_code == 422, refused.text
            assert (refused.json()["code"], refused.json()["pointer"]) == ("url_refused", "/delivery/0/url")
            # An input URL is known only when a job runs: the guard refuses it then.
            body = definition(f"{worker}/drain")
            del body["delivery"]
            wf = http.post("/v1/workflows", json=body)
            assert wf.status_code == 201, wf.text
            sub = http.post(
                "/v1/submissions",
                json={"workflow_key": wf.json()["key"], "input": {"company": "Acme"}, "input_url": f"{api}/metrics"},
            )
            assert sub.status_code == 202, sub.text
            jobs = {sub.json()["job_id"]: "InputURLRefused"}
            sample = {"company": "Acme", "email": "buyer@example.com", "goal": "more leads"}
            again = http.post("/v1/submissions", json={"workflow_key": "lead-magnet", "input": sample})
            assert again.status_code == 202, again.text
            jobs[again.json()["job_id"]] = None  # delivered
            deadline = time.monotonic() + 90
            while jobs and time.monotonic() < deadline:
                for job_id, code in list(jobs.items()):
                    job = http.get(f"/v1/jobs/{job_id}").json()
                    if job["status"] in ("delivered", "failed"):
                        if code is None:
                            assert job["status"] == "delivered", job
                        else:
                            assert job["status"] == "failed" and job["error"]["code"] == code, job
                        del jobs[job_id]
                time.sleep(0.3)
            assert jobs == {}, f"still running: {jobs}"
            assert httpx.get(f"{worker}/health", timeout=10).json()["status"] == "polling"
            assert httpx.post(f"{worker}/drain", timeout=10).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


ROOT = Path(__file__).parent.parent


def make_dry_run(*args: str) -> str:
    return subprocess.run(["make", "-n", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def test_make_run_demo_0_serves_without_the_demo():
    assert "lodestone dev --no-demo" in make_dry_run("run", "DEMO=0")
    assert "--no-demo" not in make_dry_run("run")


def test_make_install_shows_pip_progress():
    """pip installs the project with its own progress output, not --quiet for minutes."""
    (project,) = [line for line in make_dry_run("-B", "install").splitlines() if "pip install -e" in line]
    assert "--quiet" not in project and "-q" not in project.split()


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_make_clean_honours_data_dir(tmp_path, how):
    data = tmp_path / "my data"
    (data / "logs").mkdir(parents=True)
    (data / "logs" / "api.log").write_text("x")
    env = {**os.environ, "DATA_DIR": str(data)} if how == "environment" else os.environ
    args = [f"DATA_DIR={data}"] if how == "argument" else []
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "clean", *args], env=env, capture_output=True, text=True)
    assert f'rm -rf "{data}"' in dry.stdout, dry.stdout
    subprocess.run(["make", "-s", "-C", str(ROOT), "clean", *args], env=env, check=True)
    assert not data.exists() and tmp_path.exists()


def test_dev_no_demo_serves_without_running_the_samples(tmp_path):
    env = stack_env(tmp_path)
    proc = lodestone("dev", "--no-demo", env=env, start_new_session=True)
    try:
        _, out = descendants_when_serving(proc)
        assert "sample submission" not in out and "(status:" not in out, out
        assert "starting PostgreSQL" in out and SOURCE_LINE.findall(out) == [], out
        assert httpx.get(f"http://127.0.0.1:{env['API_PORT']}/health", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_every_process_logs_in_the_data_dirs_logs(stack):
    """Where `lodestone dev` says the logs are: Temporal's too, not under DATA_DIR/temporal."""
    assert {p.name for p in stack.logs.glob("*.log")} >= {"api.log", "worker.log", "postgres.log", "temporal.log"}
