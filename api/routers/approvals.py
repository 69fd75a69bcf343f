"""Approval links, public: no bearer token, the link's signature is the credential. GET shows
the question with approve and reject buttons and changes nothing (mail scanners open links);
POST .../approve or .../reject acts, once. Answers are HTML pages for a browser, problem+json
(and the task token's state) for a client that asks for JSON."""

import html
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.deps import StateDep
from api.problems import Problem, responses
from lodestone import approval_links
from lodestone.approval_links import APPROVE, REJECT
from services import approvals, task_tokens
from services.errors import NotFound

router = APIRouter(prefix=approval_links.PREFIX, tags=["approvals"])
Token = Annotated[str, Path(min_length=1, max_length=1024)]


def _link_query(
    tenant: str = "", expires: str = "", q: Annotated[str, Query(max_length=2048)] = "", sig: str = ""
) -> approvals.LinkQuery:
    return approvals.LinkQuery(tenant, expires, q, sig)


Q = Annotated[approvals.LinkQuery, Depends(_link_query)]
_REFUSED = responses(
    403,
    404,
    409,
    410,
    422,
    descriptions={
        403: "the link is not valid or has expired",
        409: "the request was already answered",
        410: "the Task stopped waiting",
    },
)
# A person's browser gets each refusal as a page; a client asking for JSON, as a problem.
for _refusal in _REFUSED.values():
    _refusal["content"]["text/html"] = {"schema": {"type": "string"}}
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em}}
button{{font-size:1.1em;padding:.5em 1.5em;margin-right:1em}}</style></head><body>{body}</body></html>"""


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "json" in accept and "text/html" not in accept


def _page(status: int, title: str, body: str) -> HTMLResponse:
    page = _PAGE.format(title=html.escape(title), body=body)
    return HTMLResponse(page, status, headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def _refused(request: Request, problem: Problem) -> Response:
    if _wants_json(request):
        raise problem
    return _page(problem.status, "Approval", f"<h1>Not possible</h1><p>{html.escape(problem.detail)}</p>")


def _problem(e: Exception) -> Problem:
    if isinstance(e, approval_links.InvalidApprovalLink):
        return Problem(403, "invalid_approval_link", "This approval link is not valid, or it has expired.")
    if isinstance(e, task_tokens.TokenClosed):
        if e.used:
            return Problem(409, "task_token_used", "This request was already answered: a link works once.")
        return Problem(410, "task_token_expired", "This request no longer waits: it timed out or its job ended.")
    return Problem(404, "not_found", "There is no approval waiting for this link.")


_FAILURES: Any = (approval_links.InvalidApprovalLink, task_tokens.TokenClosed, NotFound)


@router.get("/{token}", response_class=HTMLResponse, responses=_REFUSED)
async def approval_page(token: Token, query: Q, request: Request, state: StateDep) -> Response:
    try:
        link, row = await approvals.waiting(state.engine, state.settings, token, query)
        if row.status != "waiting":
            raise task_tokens.TokenClosed(row.status)
    except _FAILURES as e:
        return _refused(request, _problem(e))
    if _wants_json(request):
        return JSONResponse({"question": link.question, "state": row.state, "status": row.status})
    api = state.settings.api_url
    buttons = (
        f'<form method="post"><button formaction="{html.escape(link.url(api, APPROVE))}">Approve</button>'
        f'<button formaction="{html.escape(link.url(api, REJECT))}">Reject</button></form>'
    )
    body = f"<h1>Approval requested</h1><p>{html.escape(link.question)}</p>{buttons}"
    return _page(200, "Approval requested", body)


async def _decide(token: str, query: approvals.LinkQuery, request: Request, state: Any, action: str) -> Response:
    try:
        row = await approvals.decide(state.engine, state.temporal, state.settings, token, query, action)
    except _FAILURES as e:
        return _refused(request, _problem(e))
    if _wants_json(request):
        shown = {"job_id": str(row.job_id), "state": row.state, "path": row.path, "attempt": row.attempt}
        return JSONResponse(shown | {"status": row.status})
    said = "approved" if action == APPROVE else "rejected"
    return _page(200, "Thank you", f"<h1>Thank you</h1><p>You {said} this request.</p>")


@router.post("/{token}/approve", response_class=HTMLResponse, responses=_REFUSED)
async def approve(token: Token, query: Q, request: Request, state: StateDep) -> Response:
    return await _decide(token, query, request, state, APPROVE)


@router.post("/{token}/reject", response_class=HTMLResponse, responses=_REFUSED)
async def reject(token: Token, query: Q, request: Request, state: StateDep) -> Response:
    return await _decide(token, query, request, state, REJECT)
