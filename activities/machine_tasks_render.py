"""The render handler: a Jinja2 template in the template pool's sandbox, to HTML or a PDF,
stored as one artifact of the job per Task path (kind `<path>.<format>`). Parameters:
`template`, `data` (the template's variables, and `data` itself), `format` html|pdf; the
binding's settings give defaults (a stored template). A rendered path is never rendered again:
its artifact id may already have been delivered."""

import hashlib
from typing import Any

from activities import errors
from activities.common import heartbeating, until_free
from activities.machine_tasks_base import MachineTaskInput, TaskDeps, handler_params, heartbeat_every, task_data
from activities.machine_tasks_shapes import Answer, task_failed
from activities.render import FILES, record_artifact, stored_artifact
from lodestone.asl.bindings import Resolved
from lodestone.pdf import PdfRenderFailed, render_pdf
from lodestone.storage import job_key
from lodestone.templating import TemplateLimitExceeded, TemplateRenderError, TemplateSecurityViolation
from lodestone.tenant_slots import tenant_slot

RENDER_KEYS = ("template", "data", "format")


def render_params(resolved: Resolved, resource: str, payload: Any) -> dict[str, Any]:
    params = handler_params(resolved, resource, payload, RENDER_KEYS)
    return params if params is not None else {**resolved.settings, "data": task_data(resolved, payload)}


def artifact_result(artifact_id: object, kind: str, size: int, content_type: str) -> Answer:
    return Answer({"artifact_id": str(artifact_id), "kind": kind, "bytes": size, "content_type": content_type})


async def run_render(deps: TaskDeps, inp: MachineTaskInput, resolved: Resolved) -> Answer:
    params = render_params(resolved, inp.resource, inp.payload)
    template, fmt, data = params.get("template"), params.get("format", "html"), params.get("data")
    if not isinstance(template, str) or not template:
        raise task_failed("render: the Task or its binding gives a template (a Jinja2 string)")
    if fmt not in FILES:
        raise task_failed("render: format is html or pdf")
    kind = f"{inp.path}.{fmt}"
    content_type = FILES[fmt][1]
    if row := await stored_artifact(deps.engine, deps.store, inp.tenant_id, inp.job_id, kind):
        return artifact_result(row.id, kind, row.size, row.content_type)
    context = {**(data if isinstance(data, dict) else {}), "data": data}
    try:
        async with heartbeating(heartbeat_every()):
            html = (
                await until_free(lambda: deps.templates.render(template, context, html=True, tenant=inp.tenant_id))
            ).encode()
            blob = html if fmt == "html" else await until_free(lambda: _pdf(deps, inp.tenant_id, html))
    except (TemplateRenderError, TemplateSecurityViolation, TemplateLimitExceeded, PdfRenderFailed) as e:
        raise task_failed(f"{errors.code_of(e)}: {e}") from e
    digest = hashlib.sha256(inp.path.encode()).hexdigest()[:32]
    stored = await deps.store.put_bytes(job_key(inp.tenant_id, inp.job_id, f"tasks/{digest}.{fmt}"), blob, content_type)
    artifact_id = await record_artifact(deps.engine, inp.tenant_id, inp.job_id, kind, stored, content_type)
    return artifact_result(artifact_id, kind, stored.size, content_type)


async def _pdf(deps: TaskDeps, tenant_id: str, html: bytes) -> bytes:
    """One of the tenant's render slots held for the PDF (SlotsBusy when none is free)."""
    async with tenant_slot(deps.engine, deps.settings, tenant_id, "render"):
        return await render_pdf(html, timeout=deps.settings.pdf_timeout_seconds, memory_mb=deps.settings.pdf_memory_mb)
