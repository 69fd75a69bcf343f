"""The deliver handler: a webhook (signed per Standard Webhooks) or an email, as pipeline
deliveries send them, with one deliveries row and one webhook-id per (job, Task path): a Task
that ran again after delivering sends nothing, and a retry after a failed send is the same
message to the receiver. Parameters: `target` (as in pipeline definitions), and `body` (the
webhook's JSON) or `artifact_id` (one of the job's artifacts: its description, or for an email
its signed download link); the binding's settings give a default target, and a bound Lambda's
payload is the webhook's body."""

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import select

from activities import errors
from activities import machine_tasks_approval as approval
from activities.common import heartbeating
from activities.delivery import described, post_webhook, webhook_timeout
from activities.delivery_log import ensure_delivery, record_attempt
from activities.email_delivery import artifact_links
from activities.machine_tasks_base import (
    MachineTaskInput,
    TaskDeps,
    handler_params,
    heartbeat_every,
    own_secret,
    task_data,
)
from activities.machine_tasks_shapes import Answer, task_failed
from lodestone import mail
from lodestone.asl.bindings import Resolved
from lodestone.asl.bindings_check import check_target
from lodestone.asl.validate_expr import Sink
from lodestone.db import tenant_session
from lodestone.webhooks import signed_headers
from schema.tables import Artifact, Delivery, Job, Tenant

DELIVER_KEYS = ("target", "body", "artifact_id", approval.APPROVAL)
_NAMESPACE = uuid.UUID("5b0e6f3a-1c2d-4e8f-9a7b-3d4c5e6f7a81")


def delivery_webhook_id(job_id: str, path: str) -> str:
    """One per (job, Task path): every attempt of the Task sends the same message."""
    return "msg_" + uuid.uuid5(_NAMESPACE, f"{job_id}:{path}").hex


def target_index(path: str, probe: int = 0) -> int:
    """A deliveries row's index for a Task path: negative, so never a pipeline target's."""
    return -(int(hashlib.sha256(path.encode()).hexdigest()[:7], 16) + 1 + probe)


async def run_deliver(deps: TaskDeps, inp: MachineTaskInput, resolved: Resolved) -> Answer:
    params = handler_params(resolved, inp.resource, inp.payload, DELIVER_KEYS)
    if params is None:  # a bound Lambda's payload: the webhook's body
        params = {**resolved.settings, "body": task_data(resolved, inp.payload)}
    target = params.get("target")
    problems = Sink()
    check_target(target, "/target", problems)
    if problems:
        raise task_failed("deliver: " + "; ".join(f"{p.pointer}: {p.message}" for p in problems))
    assert isinstance(target, dict)
    question = approval.wanted(params)
    msg_id = delivery_webhook_id(inp.job_id, approval.delivery_path(inp, question))
    async with tenant_session(deps.engine, inp.tenant_id) as session:
        job = await session.get(Job, uuid.UUID(inp.job_id))
        tenant = await session.get(Tenant, uuid.UUID(inp.tenant_id))
        if job is None or tenant is None:
            raise task_failed(f"job {inp.job_id} does not exist for this tenant")
        artifact = await _artifact(session, inp.job_id, params.get("artifact_id"))
        delivery = await _row(session, inp, target, msg_id, approval.delivery_path(inp, question))
    asked = None if question is None else await approval.open_link(deps, inp, question, job.workflow_key)
    if delivery.status == "delivered":
        return Answer({"webhook_id": msg_id, "status": "delivered"})
    if target["type"] == "webhook":
        if asked is not None:
            body = approval.webhook_body(asked, inp, job.workflow_key, params.get("body"), artifact)
        else:
            body = _body(deps, params, artifact, inp.job_id, job.workflow_key)
        secret = await own_secret(deps, tenant, "webhook_secret", tenant.webhook_secret) or tenant.webhook_secret
        headers = signed_headers(secret, msg_id, body)
        sent = await post_webhook(deps.http, target["url"], body, headers, webhook_timeout(deps.settings, target))
        status, error = sent.status_code, sent.error
    else:
        status, error = await _email(deps, inp, target["to"], msg_id, job.workflow_key, artifact, asked)
    await record_attempt(deps.engine, inp.tenant_id, delivery, status, error, final=error is not None)
    if error is not None:
        raise task_failed(f"deliver to {delivery.target}: {error}")
    return Answer({"webhook_id": msg_id, "status": "delivered"})


async def _row(session: Any, inp: MachineTaskInput, target: dict[str, Any], msg_id: str, path: str) -> Delivery:
    """The path's deliveries row; a path whose index another path of the job took probes on."""
    for probe in range(8):
        row = await ensure_delivery(session, inp.tenant_id, inp.job_id, target_index(path, probe), target, msg_id)
        if row.webhook_id == msg_id:
            return row
    raise task_failed("deliver: no free delivery slot for this Task path")


async def _artifact(session: Any, job_id: str, artifact_id: Any) -> Artifact | None:
    if artifact_id is None:
        return None
    try:
        wanted = uuid.UUID(str(artifact_id))
    except ValueError as e:
        raise task_failed(f"deliver: artifact_id {artifact_id!r} is not an artifact's id") from e
    row = (
        await session.exec(select(Artifact).where(Artifact.id == wanted, Artifact.job_id == uuid.UUID(job_id)))
    ).first()
    if row is None:
        raise task_failed(f"deliver: this job has no artifact {artifact_id}")
    return row  # type: ignore[no-any-return]


def _body(deps: TaskDeps, params: dict[str, Any], artifact: Artifact | None, job_id: str, workflow_key: str) -> str:
    """`body` as given, else the artifact as a pipeline's job.delivered describes its artifacts."""
    if "body" in params:
        return json.dumps(params["body"], separators=(",", ":"), ensure_ascii=False)
    if artifact is None:
        raise task_failed("deliver: a webhook sends `body` or an `artifact_id`")
    about = described(deps.settings, str(artifact.tenant_id), artifact, artifact.created_at)
    payload = {
        "type": "job.delivered",
        "timestamp": artifact.created_at.isoformat(),
        "data": {"job_id": job_id, "workflow_key": workflow_key, "artifacts": [about]},
    }
    return json.dumps(payload, separators=(",", ":"))


async def _email(
    deps: TaskDeps,
    inp: MachineTaskInput,
    to: str,
    msg_id: str,
    workflow_key: str,
    artifact: Artifact | None,
    asked: approval.Approval | None = None,
) -> tuple[int | None, str | None]:
    """One message with the artifact's signed link, minted as of the artifact's time so that
    every attempt sends the same message (an approval's: its link, and the artifact's to
    review); (status, error)."""
    if asked is not None:
        review = (
            [] if artifact is None else artifact_links(deps.settings, inp.tenant_id, [artifact], artifact.created_at)
        )
        message = approval.email_message(asked, deps.settings.smtp_from, to, msg_id, inp, workflow_key, review)
    elif artifact is None:
        raise task_failed("deliver: an email sends an artifact: give artifact_id")
    else:
        message = _artifact_message(deps, inp, to, msg_id, workflow_key, artifact)
    try:
        async with heartbeating(heartbeat_every()):
            return await mail.send(deps.settings, message), None
    except mail.MailError as e:
        return e.code, f"{errors.code_of(e)}: {e}"


def _artifact_message(
    deps: TaskDeps, inp: MachineTaskInput, to: str, msg_id: str, workflow_key: str, artifact: Artifact
) -> Any:
    issued = artifact.created_at
    return mail.delivery_message(
        sender=deps.settings.smtp_from,
        to=to,
        delivery_id=msg_id,
        job_id=inp.job_id,
        workflow_key=workflow_key,
        when=issued,
        links=artifact_links(deps.settings, inp.tenant_id, [artifact], issued),
        expires=issued + timedelta(seconds=deps.settings.link_max_ttl_seconds),
    )
