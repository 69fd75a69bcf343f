"""The embedded stack as `lodestone dev`, `lodestone demo` and the tests start it."""

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.keys import load_or_create_key
from devstack.local_model import LocalModel, LocalModelMissing, find_gguf, start_local_model
from devstack.postgres import OWNER_ROLE, bootstrap, start_postgres
from devstack.processes import ProcessGroup, port_is_free, wait_for_port
from devstack.temporal import start_temporal
from lodestone.llm import LOCAL_MODEL
from lodestone.local_tokens import DRAIN, METRICS, load_or_create_token
from lodestone.settings import Settings
from schema.migrate import upgrade

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class Stack:
    settings: Settings
    group: ProcessGroup = field(default_factory=ProcessGroup)
    web_ui: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    # The loopback ports of the demo's receivers (its webhook receiver, the Graph API
    # stand-in): unless OUTBOUND_ALLOW_CIDRS is set, outbound calls may reach these and no
    # other loopback port, so no tenant's webhook or input URL reaches the stack's own
    # listeners (the API's and worker's /metrics, the worker's /drain, PostgreSQL, Temporal).
    receiver_ports: list[int] = field(default_factory=list)
    # Serve the `local` model (devstack.local_model) and point the worker at it: `lodestone
    # dev` and `lodestone demo` do when LOCAL_LLM is on; the tests' stack runs without.
    local_llm: bool = False
    local_model: LocalModel | None = field(default=None, init=False)
    _gguf: Path | None = field(default=None, init=False)

    @property
    def logs(self) -> Path:
        return self.settings.data_path / "logs"

    def env(self) -> dict[str, str]:
        """What the API and worker children need to find this stack."""
        s = self.settings
        return {
            "DATA_DIR": str(s.data_path),
            "TEMPORAL_PORT": str(s.temporal_port),
            "POSTGRES_PORT": str(s.postgres_port),
            "API_PORT": str(s.api_port),
            "API_HOST": s.api_host,
            "TEMPORAL_UI_PORT": str(s.temporal_ui_port),
            "WORKER_METRICS_PORT": str(s.worker_metrics_port),
            "OUTBOUND_ALLOW_CIDRS": json.dumps(
                s.outbound_allow_cidrs or [f"127.0.0.1:{port}" for port in self.receiver_ports]
            ),
            # Made once per DATA_DIR; `lodestone ops drain` finds the drain token there too.
            "WORKER_DRAIN_TOKEN": s.worker_drain_token or load_or_create_token(s.data_path, DRAIN),
            "METRICS_TOKEN": s.metrics_token or load_or_create_token(s.data_path, METRICS),
            **self._local_model_env(),
            **self.extra_env,
        }

    def ports(self) -> list[tuple[str, str, int]]:
        """The (setting, host, port) of each listener this stack starts itself."""
        s = self.settings
        ports = [("POSTGRES_PORT", "127.0.0.1", s.postgres_port)] if s.embedded_postgres else []
        if s.temporal_address is None:
            ports += [
                ("TEMPORAL_PORT", "127.0.0.1", s.temporal_port),
                ("TEMPORAL_HTTP_PORT", "127.0.0.1", s.temporal_http_port),
                ("TEMPORAL_METRICS_PORT", "127.0.0.1", s.temporal_metrics_port),
            ]
            if self.web_ui:
                ports.append(("TEMPORAL_UI_PORT", "127.0.0.1", s.temporal_ui_port))
        if self.local_llm:
            ports.append(("LOCAL_LLM_PORT", "127.0.0.1", s.local_llm_port))
        return [*ports, ("API_PORT", s.api_host, s.api_port)]

    def check_ports(self) -> None:
        """Stop before starting anything when a port is taken, naming its setting, rather
        than leave a client talking to whatever already listens there."""
        taken = [f"{name} {port}" for name, host, port in self.ports() if not port_is_free(port, host)]
        if taken:
            raise RuntimeError(
                f"{', '.join(taken)} {'is' if len(taken) == 1 else 'are'} in use by another process: "
                "stop it or choose another port (environment or .env)"
            )

    def check_local_model(self, progress: Progress | None = None) -> None:
        """Find the local model's file before anything starts. Missing, it stops the stack,
        unless LOCAL_LLM_OFFLINE_FALLBACK asks for the offline model instead (said aloud)."""
        if not self.local_llm:
            return
        try:
            self._gguf = find_gguf(self.settings)
        except LocalModelMissing as e:
            if not self.settings.local_llm_offline_fallback:
                raise RuntimeError(
                    f"{e}; or set LOCAL_LLM_OFFLINE_FALLBACK=true to run on the offline model (fixed text)"
                ) from e
            (progress or log.warning)(f"{e}; LOCAL_LLM_OFFLINE_FALLBACK is on: the demo uses the offline model")

    @property
    def demo_model(self) -> str:
        """The model the sample jobs name: `local` when this stack serves it, else LLM_MODEL."""
        return LOCAL_MODEL if self.local_model else self.settings.llm_model

    def _local_model_env(self) -> dict[str, str]:
        if self.local_model is None:
            return {}
        env = {"LOCAL_LLM_URL": self.local_model.url}
        if "llm_model" not in self.settings.model_fields_set:  # LLM_MODEL left at its default
            env["LLM_MODEL"] = LOCAL_MODEL
        return env

    def start_infra(self, progress: Progress | None = None) -> None:
        s = self.settings
        self.check_ports()
        self.check_local_model(progress)
        s.data_path.mkdir(parents=True, exist_ok=True)
        say = progress or (lambda _msg: None)
        if s.embedded_postgres:
            say(f"PostgreSQL on 127.0.0.1:{s.postgres_port}")
            handle = start_postgres(self.group, s.data_path, s.postgres_port)
            asyncio.run(bootstrap(handle))
            admin_url = handle.url(OWNER_ROLE)
        else:
            admin_url = s.admin_database_url
        say("migrations")
        upgrade(admin_url)
        if s.temporal_address is None:
            say(f"Temporal dev server on 127.0.0.1:{s.temporal_port}, Web UI on {s.temporal_ui}")
            start_temporal(
                self.group,
                s.data_path / "temporal",
                s.temporal_port,
                s.temporal_ui_port if self.web_ui else None,
                s.temporal_http_port,
                s.temporal_metrics_port,
                log_dir=self.logs,
                fairness=s.temporal_fairness,
            )
        load_or_create_key(s.data_path)

    def start_app(self, progress: Progress | None = None) -> None:
        say = progress or (lambda _msg: None)
        if self._gguf is not None:
            say(f"local language model {self._gguf.name} on 127.0.0.1:{self.settings.local_llm_port}")
            self.local_model = start_local_model(self.group, self.settings, self._gguf, self.logs)
        exe = [sys.executable, "-m", "cli.main"]
        say(f"API on {self.settings.api_url}")
        api = self.group.start("api", [*exe, "api"], log_path=self.logs / "api.log", env=self.env())
        say("worker")
        self.group.start("worker", [*exe, "worker"], log_path=self.logs / "worker.log", env=self.env())
        wait_for_port(self.settings.api_host, self.settings.api_port, 60, api)

    def stop(self) -> None:
        self.group.stop()
