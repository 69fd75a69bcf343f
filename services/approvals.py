"""Approval links (lodestone/approval_links.py): the page a person opens shows the question of
a callback Task that still waits; approving reports the Task's success with
{"approved": true, "by": "link"}, rejecting its failure with the error `Rejected`. Only a
token issued with an approval link answers, only for the tenant the link was signed for,
and once (task_tokens.report locks and closes its row)."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from lodestone import approval_links
from lodestone.settings import Settings
from schema.task_tokens import TaskToken
from services import task_tokens
from workflows.machine_callbacks import FAILURE, SUCCESS

REJECTED = "Rejected"
APPROVED_OUTPUT: dict[str, Any] = {"approved": True, "by": "link"}


@dataclass
class LinkQuery:
    tenant: str = ""
    expires: str = ""
    q: str = ""
    sig: str = ""


def checked(settings: Settings, token: str, query: LinkQuery) -> approval_links.ApprovalLink:
    """The link, or InvalidApprovalLink when it is forged, altered or expired."""
    key = approval_links.approval_key(settings)
    return approval_links.verify(key, token, tenant=query.tenant, expires=query.expires, q=query.q, sig=query.sig)


async def waiting(
    engine: AsyncEngine, settings: Settings, token: str, query: LinkQuery
) -> tuple[approval_links.ApprovalLink, TaskToken]:
    """For the page (no change): the link and its token's row; NotFound when the token was not
    issued with an approval link for this tenant."""
    link = checked(settings, token, query)
    return link, await task_tokens.find(engine, link.tenant_id, token, approval_link=True)


async def decide(
    engine: AsyncEngine, client: Client, settings: Settings, token: str, query: LinkQuery, action: str
) -> TaskToken:
    """Approve or reject; TokenClosed when it was already answered or no longer waits."""
    link = checked(settings, token, query)
    if action == approval_links.APPROVE:
        return await task_tokens.report(
            engine, client, link.tenant_id, token, SUCCESS, output=APPROVED_OUTPUT, approval_link=True
        )
    return await task_tokens.report(
        engine, client, link.tenant_id, token, FAILURE, error=REJECTED, cause="rejected by link", approval_link=True
    )
