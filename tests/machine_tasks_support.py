"""What the state machine Task tests share: the activity built as the worker builds it (on the
session's PostgreSQL, store, LLM stand-in and secrets), a job row to hang usage, artifacts
and deliveries on, and a scripted HTTP endpoint on loopback that records every request."""

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.machine_tasks import MachineTaskActivities, MachineTaskInput
from lodestone.db import tenant_session
from lodestone.llm import RoutingLLM
from lodestone.netguard import guarded_client
from lodestone.secrets import make_secrets
from lodestone.settings import Settings
from lodestone.storage import make_store
from lodestone.template_pool import TemplatePool
from schema.tables import Job, Submission, WorkflowDefinition


def build(settings: Settings, engine: AsyncEngine, http: httpx.AsyncClient | None = None) -> MachineTaskActivities:
    """As worker.py builds activities: the guarded client allows only what the settings allow."""
    return MachineTaskActivities(
        engine,
        make_store(settings),
        RoutingLLM(settings),
        http or guarded_client(settings.outbound_allow_cidrs),
        settings,
        make_secrets(settings, {}),
        TemplatePool.from_settings(settings),
    )


async def close(acts: MachineTaskActivities) -> None:
    await acts.deps.http.aclose()
    await acts.deps.templates.close()
    await acts.deps.llm.close()


async def make_job(engine: AsyncEngine, tenant_id: uuid.UUID, key: str = "machine") -> str:
    async with tenant_session(engine, tenant_id) as s:
        definition = WorkflowDefinition(tenant_id=tenant_id, key=f"{key}-{uuid.uuid4().hex[:8]}", version=1)
        definition.definition = {"kind": "state_machine"}
        submission = Submission(tenant_id=tenant_id, workflow_definition_id=definition.id, input={})
        job = Job(
            tenant_id=tenant_id,
            submission_id=submission.id,
            workflow_definition_id=definition.id,
            workflow_key=definition.key,
        )
        s.add(definition)
        await s.flush()
        s.add(submission)
        await s.flush()
        s.add(job)
    return str(job.id)


def task(tenant_id: uuid.UUID, job_id: str, path: str, resource: str, payload: Any, bindings: list[Any], **kw: Any):  # type: ignore[no-untyped-def]
    return MachineTaskInput(str(tenant_id), job_id, path, resource, payload, bindings, **kw)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]


class ScriptedEndpoint:
    """Answers each path as scripted (status, headers, body), or echoes the JSON it was sent as
    {"echo": ...} with 200; records every request."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: dict[str, Reply | Callable[[Request], Reply]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda *_a: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def answer(self, path: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.script[path] = (status, {"content-type": "application/json", **(headers or {})}, raw)

    def to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                req = Request(
                    self.command, url.path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()}, body
                )
                with endpoint._lock:
                    endpoint.requests.append(req)
                scripted = endpoint.script.get(url.path)
                if callable(scripted):
                    status, headers, raw = scripted(req)
                elif scripted is not None:
                    status, headers, raw = scripted
                else:
                    echoed = json.loads(body) if body else None
                    status, headers, raw = (
                        200,
                        {"content-type": "application/json"},
                        json.dumps({"echo": echoed}).encode(),
                    )
                self.send_response(status)
                for k, v in {**headers, "content-length": str(len(raw))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any  # noqa: N815

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> "ScriptedEndpoint":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
