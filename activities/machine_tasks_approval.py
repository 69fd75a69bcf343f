"""An approval link in a deliver Task: `lodestone:deliver.waitForTaskToken` with an `approval`
parameter (`true`, or `{"question": "..."}`) marks the Task's token as usable through a signed
link (lodestone/approval_links.py) and sends that link, instead of a delivery notice, as the
webhook's body or the email's text. The link expires with the Task: at the token's issue time
plus the Task's TimeoutSeconds (else LINK_MAX_TTL_SECONDS). Every attempt of the activity sends
the same message (the link is minted from the token row's time)."""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from activities.machine_tasks_base import MachineTaskInput, TaskDeps
from activities.machine_tasks_shapes import task_failed
from lodestone import approval_links, mail
from lodestone.db import tenant_session
from schema.tables import Artifact
from schema.task_tokens import WAITING, TaskToken, token_hash

APPROVAL = "approval"


@dataclass
class Approval:
    question: str
    link: approval_links.ApprovalLink
    api_url: str

    def urls(self) -> dict[str, str]:
        return {
            "url": self.link.url(self.api_url),
            "approve_url": self.link.url(self.api_url, approval_links.APPROVE),
            "reject_url": self.link.url(self.api_url, approval_links.REJECT),
        }

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.link.expires, UTC)


def wanted(params: dict[str, Any]) -> str | None:
    """The question, when the Task asks for an approval link; None when it does not."""
    value = params.get(APPROVAL)
    if value is None or value is False:
        return None
    if value is True:
        return ""
    if isinstance(value, dict) and isinstance(value.get("question", ""), str):
        return str(value.get("question", ""))
    raise task_failed('deliver: approval is true or {"question": "..."}')


def delivery_path(inp: MachineTaskInput, question: str | None) -> str:
    """What names the delivery: the Task path, and for an approval its attempt too (each
    attempt of a callback Task has a token, and a link, of its own)."""
    return inp.path if question is None else f"{inp.path}#{inp.attempt}"


async def open_link(deps: TaskDeps, inp: MachineTaskInput, question: str, workflow_key: str) -> Approval:
    """Marks the token as usable through a link, and mints the link."""
    if inp.token is None:
        raise task_failed("deliver: an approval link needs a callback Task (lodestone:deliver.waitForTaskToken)")
    async with tenant_session(deps.engine, inp.tenant_id) as session:
        issued = (
            await session.execute(
                update(TaskToken)
                .where(col(TaskToken.token_hash) == token_hash(inp.token), col(TaskToken.status) == WAITING)
                .values(approval_link=True)
                .returning(col(TaskToken.created_at))
            )
        ).scalar_one_or_none()
    if issued is None:
        raise task_failed("deliver: this Task's token no longer waits")
    ttl = inp.timeout_seconds or deps.settings.link_max_ttl_seconds
    expires = int(issued.timestamp() + ttl)
    question = question or f"Approve the next step of {workflow_key} ({inp.path} in job {inp.job_id})?"
    key = approval_links.approval_key(deps.settings)
    link = approval_links.mint(key, inp.token, uuid.UUID(inp.tenant_id), expires, question)
    return Approval(link.question, link, deps.settings.api_url)


def webhook_body(
    approval: Approval, inp: MachineTaskInput, workflow_key: str, details: Any, artifact: Artifact | None
) -> str:
    data: dict[str, Any] = {"job_id": inp.job_id, "workflow_key": workflow_key, "state": inp.path}
    data |= {"question": approval.question, **approval.urls(), "expires_at": approval.expires_at.isoformat()}
    if artifact is not None:
        data["artifact"] = {"id": str(artifact.id), "kind": artifact.kind, "content_type": artifact.content_type}
    if details is not None:
        data["details"] = details
    payload = {"type": "approval.requested", "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def email_message(
    approval: Approval, sender: str, to: str, msg_id: str, inp: MachineTaskInput, workflow_key: str,
    review: list[mail.ArtifactLink],
) -> EmailMessage:  # fmt: skip
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, to
    msg["Subject"] = f"{workflow_key}: approval requested"
    msg["Message-ID"] = mail.message_id(msg_id, sender)
    msg["X-Lodestone-Job-Id"] = inp.job_id
    msg["X-Lodestone-Delivery-Id"] = msg_id
    lines = [approval.question, "", "Open this link to approve or reject:", approval.urls()["url"], ""]
    lines += [f"To review: {a.kind} ({a.content_type}, {a.size} bytes): {a.url}" for a in review]
    lines += ["", f"The link works once, until {format_datetime(approval.expires_at)}."]
    msg.set_content("\n".join(lines) + "\n", cte="quoted-printable")
    return msg
