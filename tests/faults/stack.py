"""The fault suite's own embedded stack: its own DATA_DIR and free ports, and PostgreSQL,
the API and the worker each in a process group of their own, so any one of them can be
killed or restarted (on the same port and data) while the rest keep running."""

import logging
import subprocess
import sys
import time
from pathlib import Path

from devstack.postgres import APP_ROLE, OWNER_ROLE, bootstrap_sync, start_postgres
from devstack.processes import ProcessGroup, free_port, wait_for_port
from devstack.stack import Stack
from lodestone.settings import Settings

log = logging.getLogger(__name__)


def fault_settings(data_dir: Path, llm_url: str, smtp_port: int) -> Settings:
    pg = free_port()
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        postgres_port=pg,
        api_port=free_port(),
        temporal_port=free_port(),
        temporal_http_port=free_port(),
        temporal_metrics_port=free_port(),
        temporal_ui_port=free_port(),
        worker_metrics_port=free_port(),
        database_url=f"postgresql+asyncpg://{APP_ROLE}@127.0.0.1:{pg}/lodestone",
        database_admin_url=f"postgresql+asyncpg://{OWNER_ROLE}@127.0.0.1:{pg}/lodestone",
        llm_base_url=llm_url,
        llm_api_key="stand-in-key",
        llm_timeout_seconds=5.0,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="faults@lodestone.example",
        smtp_timeout_seconds=5.0,
        webhook_timeout_seconds=5.0,
        s3_endpoint=None,
        temporal_address=None,
        outbound_allow_cidrs=["127.0.0.1/32"],
    )


class FaultStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pg, self.app = ProcessGroup(), ProcessGroup()
        s = settings
        # Every setting the children need, given outright, so nothing leaks in from this shell.
        self.stack = Stack(
            settings,
            web_ui=False,
            extra_env={
                "DATABASE_URL": s.app_database_url,
                "DATABASE_ADMIN_URL": s.admin_database_url,
                "S3_ENDPOINT": "",
                "TEMPORAL_HTTP_PORT": str(s.temporal_http_port),
                "TEMPORAL_METRICS_PORT": str(s.temporal_metrics_port),
                "LLM_BASE_URL": s.llm_base_url or "",
                "LLM_API_KEY": s.llm_api_key or "",
                "LLM_TIMEOUT_SECONDS": str(s.llm_timeout_seconds),
                "SMTP_HOST": s.smtp_host or "",
                "SMTP_PORT": str(s.smtp_port),
                "SMTP_FROM": s.smtp_from,
                "SMTP_TIMEOUT_SECONDS": str(s.smtp_timeout_seconds),
                "WEBHOOK_TIMEOUT_SECONDS": str(s.webhook_timeout_seconds),
            },
        )
        self._procs: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        bootstrap_sync(start_postgres(self.pg, self.settings.data_path, self.settings.postgres_port))
        self.stack.start_infra()  # migrations and the Temporal dev server (PostgreSQL is ours)
        self.start_api()
        self.start_worker()

    def restart_postgres(self, down_seconds: float) -> None:
        """A fast shutdown (open transactions aborted, clients cut off), then the same data dir and port."""
        self.stop_postgres()
        time.sleep(down_seconds)
        self.start_postgres()

    def stop_postgres(self) -> None:
        self.pg.stop()

    def start_postgres(self) -> None:
        start_postgres(self.pg, self.settings.data_path, self.settings.postgres_port)

    def _start(self, name: str) -> subprocess.Popen:
        proc = self.app.start(
            name,
            [sys.executable, "-m", "cli.main", name],
            log_path=self.stack.logs / f"{name}.log",
            env=self.stack.env(),
        )
        self._procs[name] = proc
        return proc

    def start_api(self) -> None:
        wait_for_port(self.settings.api_host, self.settings.api_port, 60, self._start("api"))

    def start_worker(self) -> None:
        self._start("worker")

    def kill(self, name: str) -> int:
        """kill -9, as a crash or an OOM kill would; the pid it had."""
        proc = self._procs[name]
        proc.kill()
        proc.wait()
        return proc.pid

    def check(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited by itself with {proc.returncode}: see {self.stack.logs}")

    def stop(self) -> None:
        self.app.stop()
        self.stack.stop()
        self.pg.stop()
