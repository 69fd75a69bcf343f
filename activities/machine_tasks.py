"""A state machine's Task, one activity per attempt: its Resource resolved through the
definition's bindings (lodestone/asl/bindings.py) to a handler (http, llm, render, deliver),
its answer returned in the shape the Resource's own service returns. Every failure is an
ApplicationError whose type is the ASL error name, never retried by Temporal: the machine's
Retry and Catch decide. Timeouts are Temporal's (the workflow names them States.Timeout and
States.HeartbeatTimeout); long calls heartbeat."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.machine_tasks_base import MachineTaskInput, TaskDeps
from activities.machine_tasks_deliver import run_deliver
from activities.machine_tasks_http import run_http
from activities.machine_tasks_llm import run_llm
from activities.machine_tasks_render import run_render
from activities.machine_tasks_shapes import Answer, request_id, shaped, task_failed
from lodestone.asl.bindings import Resolved, resolve
from lodestone.llm import LLMClient
from lodestone.secrets import SecretsProvider
from lodestone.settings import Settings
from lodestone.storage import ObjectStore
from lodestone.template_pool import TemplatePool

__all__ = ["MachineTaskActivities", "MachineTaskInput"]

Handler = Callable[[TaskDeps, MachineTaskInput, Resolved], Awaitable[Answer]]
HANDLERS: dict[str, Handler] = {"http": run_http, "llm": run_llm, "render": run_render, "deliver": run_deliver}
# What a Task's failure says when the worker failed it (a bug, a lost database): the worker's
# log has the text, which can name the server's files.
UNEXPLAINED = "the Task failed on the worker; its log has the details"


class MachineTaskActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        store: ObjectStore,
        llm: LLMClient,
        http: httpx.AsyncClient,
        settings: Settings,
        secrets: SecretsProvider,
        templates: TemplatePool,
    ) -> None:
        self.deps = TaskDeps(engine, store, llm, http, settings, secrets, templates)

    @activity.defn(name="run_machine_task")
    async def run_task(self, inp: MachineTaskInput) -> Any:
        resolved = resolve(inp.resource, inp.payload, inp.bindings)
        if resolved is None:
            raise task_failed(f"Lodestone.UnboundResource: {_unbound(inp)}")
        try:
            answer = await HANDLERS[resolved.handler](self.deps, inp, resolved)
        except ApplicationError:
            raise
        except Exception as e:
            activity.logger.exception("Task %s of job %s failed on the worker", inp.path, inp.job_id)
            raise task_failed(f"{type(e).__name__}: {UNEXPLAINED}") from e
        return shaped(resolved.shape, answer, request_id(inp.job_id, inp.path, inp.attempt))


def _unbound(inp: MachineTaskInput) -> str:
    name = inp.payload.get("FunctionName") if isinstance(inp.payload, dict) else None
    if isinstance(name, str):
        return f"no binding in the definition's resources takes function {name!r} ({inp.resource})"
    return f"no binding in the definition's resources takes {inp.resource!r}"
