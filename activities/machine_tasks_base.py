"""What every state machine Task handler shares: its input, the clients it runs with, the
tenant's row and secrets, and how often a long call heartbeats."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import secret_of
from activities.machine_tasks_shapes import task_failed
from lodestone.asl.bindings import BUILT_INS, Resolved
from lodestone.asl.bindings_check import header_secret_name
from lodestone.db import tenant_session
from lodestone.llm import LLMClient
from lodestone.secrets import SecretsError, SecretsProvider
from lodestone.settings import Settings
from lodestone.storage import ObjectStore
from lodestone.template_pool import TemplatePool
from lodestone.tenant_secrets import resolve_tenant_secret
from schema.tables import Tenant


@dataclass
class MachineTaskInput:
    tenant_id: str
    job_id: str
    path: str  # the Task's path in the execution: usage rows, logs, one delivery per path
    resource: str
    payload: Any
    bindings: list[dict[str, Any]]  # the definition's "resources"
    attempt: int = 1
    timeout_seconds: float | None = None
    token: str | None = None  # a callback Task's task token (its Resource ends in .waitForTaskToken)


@dataclass
class TaskDeps:
    engine: AsyncEngine
    store: ObjectStore
    llm: LLMClient
    http: httpx.AsyncClient  # the guarded client (lodestone.netguard)
    settings: Settings
    secrets: SecretsProvider
    templates: TemplatePool


def handler_params(resolved: Resolved, resource: str, payload: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """A handler's parameters: the binding's settings as defaults, under the Task's own when its
    payload speaks the handler's language (a lodestone:* built-in, or any payload holding one
    of `keys`). None: the payload is data for the handler, not parameters (a bound Lambda's)."""
    data = task_data(resolved, payload)
    if resource in BUILT_INS or (isinstance(data, dict) and any(k in data for k in keys)):
        given = data if isinstance(data, dict) else {}
        return {**resolved.settings, **{k: given[k] for k in keys if k in given}}
    return None


def task_data(resolved: Resolved, payload: Any) -> Any:
    """What the Task hands its handler: an optimized lambda:invoke's `Payload`, else the payload."""
    if resolved.shape == "lambda_invoke" and isinstance(payload, dict) and "Payload" in payload:
        return payload["Payload"]
    return payload


async def load_tenant(deps: TaskDeps, tenant_id: str) -> Tenant:
    async with tenant_session(deps.engine, tenant_id) as session:
        tenant = await session.get(Tenant, uuid.UUID(tenant_id))
    if tenant is None:
        raise task_failed(f"tenant {tenant_id} does not exist")
    return tenant


async def own_secret(deps: TaskDeps, tenant: Tenant, name: str, fallback: str | None = None) -> str | None:
    """One of Lodestone's own secrets of the tenant (signing secret, LLM key), as other
    activities resolve them; a failure is the Task's."""
    try:
        return await secret_of(tenant, deps.secrets, str(tenant.id), name, fallback)
    except ApplicationError as e:
        raise task_failed(f"{e.type}: {e.message}") from e


async def header_secret(deps: TaskDeps, tenant: Tenant, name: Any) -> str:
    """A header's {"secret": name}: the tenant's own secret of that name, by its reference."""
    if (why := header_secret_name(name)) is not None:
        raise task_failed(f"header secret: {why}")
    try:
        value = await resolve_tenant_secret(deps.secrets, tenant.id, tenant.secret_refs or {}, name)
    except SecretsError as e:
        raise task_failed(f"the tenant's secret {name!r} cannot be read: {e}") from e
    if value is None:
        raise task_failed(f"the tenant has no secret {name!r} (set its reference with PUT /v1/tenant/secrets)")
    return value


def heartbeat_every() -> float:
    """A third of the heartbeat timeout the workflow gave (HeartbeatSeconds), else 5 s."""
    timeout = activity.info().heartbeat_timeout
    return max(timeout.total_seconds() / 3, 0.1) if timeout else 5.0
