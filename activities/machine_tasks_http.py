"""The http handler: a Task calls the tenant's own service. Signed per Standard Webhooks with
the tenant's signing secret (webhook-id stable per attempt of a Task), sent through the
outbound guard like deliveries, header values from the tenant's secrets; the answer's JSON is
the result, and a non-2xx answer is the error the machine can Retry or Catch."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from activities import errors
from activities.common import heartbeating
from activities.machine_tasks_base import (
    MachineTaskInput,
    TaskDeps,
    handler_params,
    header_secret,
    heartbeat_every,
    load_tenant,
    own_secret,
    task_data,
)
from activities.machine_tasks_shapes import Answer, failure, request_id, task_error, task_failed
from lodestone.asl.bindings import Resolved
from lodestone.asl.bindings_check import RESERVED_HEADERS
from lodestone.asl.sync_mode import ANSWER, ANSWER_WAIT_MAX_SECONDS, CALLBACK, TOKEN_HEADER, mode
from lodestone.netguard import OutboundRefused, check_url
from lodestone.webhooks import signed_headers
from schema.tables import Tenant

NO_BODY_METHODS = ("GET", "HEAD", "OPTIONS")
BUILT_IN_KEYS = ("url", "method", "headers", "query", "body", "timeout_seconds")


@dataclass
class HttpCall:
    url: Any
    method: str = "POST"
    headers: dict[str, Any] = field(default_factory=dict)
    query: Any = None
    body: Any = None
    has_body: bool = True
    timeout: Any = None


def http_call(resource: str, resolved: Resolved, payload: Any) -> HttpCall:
    """The request a Task makes: http:invoke's from its Parameters (ApiEndpoint, Method, Headers,
    QueryParameters, RequestBody), lodestone:http's from {url, method, headers, query, body,
    timeout_seconds}; a bound one POSTs its payload (a lambda:invoke's Payload) to the binding's
    url. A binding's url, method, headers and timeout go before the Task's."""
    s = resolved.settings
    p = payload if isinstance(payload, dict) else {}
    if resolved.shape == "http_invoke":
        call = HttpCall(
            s.get("url") or p.get("ApiEndpoint"),
            s.get("method") or p.get("Method") or "GET",
            {**_object(p.get("Headers")), **_object(s.get("headers"))},
            p.get("QueryParameters"),
            p.get("RequestBody"),
            "RequestBody" in p,
            s.get("timeout_seconds"),
        )
    elif (params := handler_params(resolved, resource, payload, BUILT_IN_KEYS)) is not None:
        headers = {**_object(s.get("headers")), **_object(p.get("headers"))}
        call = HttpCall(
            params.get("url"),
            params.get("method") or "POST",
            headers,
            params.get("query"),
            params.get("body"),
            "body" in params,
            params.get("timeout_seconds"),
        )
    else:
        data = task_data(resolved, payload)
        call = HttpCall(s.get("url"), s.get("method") or "POST", _object(s.get("headers")), None, data, True)
        call.timeout = s.get("timeout_seconds")
    call.method = str(call.method).upper()
    if call.method in NO_BODY_METHODS:
        call.has_body = False
    return call


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


async def run_http(deps: TaskDeps, inp: MachineTaskInput, resolved: Resolved) -> Answer:
    call = http_call(inp.resource, resolved, inp.payload)
    if not isinstance(call.url, str) or not call.url:
        raise task_failed(f"no URL to call for {inp.resource!r}: the binding or the Parameters give one")
    tenant = await load_tenant(deps, inp.tenant_id)
    body = json.dumps(call.body, separators=(",", ":"), ensure_ascii=False) if call.has_body else ""
    headers = await _headers(deps, tenant, call.headers)
    sync = mode(inp.resource, inp.payload, inp.bindings)
    if sync == CALLBACK and inp.token is not None:
        headers[TOKEN_HEADER] = inp.token  # the endpoint reports the work's end with it
    secret = await own_secret(deps, tenant, "webhook_secret", tenant.webhook_secret) or tenant.webhook_secret
    msg_id = "msg_" + request_id(inp.job_id, inp.path, inp.attempt).replace("-", "")
    headers.update(signed_headers(secret, msg_id, body))
    if not call.has_body:
        headers.pop("content-type")
    limit = _limit(deps, inp, call.timeout, sync == ANSWER)
    try:
        async with heartbeating(heartbeat_every()), asyncio.timeout(limit):
            request = deps.http.build_request(
                call.method, check_url(call.url), params=_query(call.query), headers=headers, content=body or None
            )
            resp = await deps.http.send(request, stream=True)
            try:
                raw = await _read(resp, deps.settings.machine_task_result_max_bytes)
            finally:
                await resp.aclose()
    except (OutboundRefused, httpx.InvalidURL) as e:
        raise task_failed(f"refused: {e}") from e
    except (TimeoutError, httpx.TimeoutException) as e:
        raise task_error(errors.STATES_TIMEOUT, f"no complete answer from the endpoint within {limit:g} s") from e
    except httpx.HTTPError as e:
        error = errors.STATES_HTTP_SOCKET if resolved.shape == "http_invoke" else errors.STATES_TASK_FAILED
        raise task_error(error, f"{type(e).__name__}: {e}") from e
    answer = Answer(_parse(raw), resp.status_code, [(k.lower(), v) for k, v in resp.headers.multi_items()])
    if not 200 <= resp.status_code < 300:
        raise failure(resolved.shape, answer)
    return answer


async def _headers(deps: TaskDeps, tenant: Tenant, given: dict[str, Any]) -> dict[str, str]:
    """The request's own headers; Lodestone sets the signature's and the body's itself."""
    out: dict[str, str] = {}
    for name, value in given.items():
        if name.lower() in RESERVED_HEADERS:
            continue
        if isinstance(value, dict):
            out[name] = await header_secret(deps, tenant, value.get("secret"))
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            out[name] = str(value)
        else:
            raise task_failed(f'header {name!r}: a value is a string or {{"secret": "<name>"}}')
        if "\r" in out[name] or "\n" in out[name]:
            raise task_failed(f"header {name!r}: a value is one line")
    return out


def _query(query: Any) -> dict[str, Any] | None:
    if not isinstance(query, dict):
        return None
    return {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in query.items()}


def _limit(deps: TaskDeps, inp: MachineTaskInput, asked: Any, run_and_wait: bool = False) -> float:
    """The binding's (or Parameters') timeout, else the Task's, within the deployment's maximum;
    a run-and-wait endpoint that answers when the work is done, within the Task's own."""
    most = ANSWER_WAIT_MAX_SECONDS if run_and_wait else deps.settings.webhook_timeout_max_seconds
    limits = [most, *([inp.timeout_seconds] if inp.timeout_seconds else [])]
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked > 0:
        limits.append(float(asked))
    return min(limits)


async def _read(resp: httpx.Response, limit: int) -> bytes:
    """The answer, up to MACHINE_TASK_RESULT_MAX_BYTES (Step Functions stops at 256 KiB; here a
    large answer travels through Temporal as a reference, see lodestone.payload_codec)."""
    chunks, size = [], 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise task_error(errors.STATES_DATA_LIMIT_EXCEEDED, f"the endpoint's answer is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> Any:
    """The answer's JSON; text that is not JSON stays text; no body is null."""
    if not raw.strip():
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
