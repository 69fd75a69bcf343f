"""The llm handler: a chat completion with the tenant's models and key, as pipeline steps make
them (lodestone/llm.py), its usage recorded per Task path. Parameters: `prompt` or `messages`,
optional `model`, `system`, `max_tokens`, `temperature`, `response_format: "json"`; a bound
Lambda's payload that holds neither prompt nor messages is the prompt itself (as JSON), under
the binding's `system`."""

import json
import re
from typing import Any

from activities import errors
from activities.common import heartbeating
from activities.events import TokenStream
from activities.machine_tasks_base import (
    MachineTaskInput,
    TaskDeps,
    handler_params,
    heartbeat_every,
    load_tenant,
    own_secret,
    task_data,
)
from activities.machine_tasks_bedrock import bedrock_body, bedrock_params
from activities.machine_tasks_shapes import Answer, request_id, task_failed
from activities.steps import record_usage
from lodestone.asl.bindings import Resolved
from lodestone.db import tenant_session
from lodestone.llm import ChatRequest, LLMError

LLM_KEYS = ("prompt", "messages", "model", "system", "max_tokens", "temperature", "response_format")
ROLES = ("user", "assistant", "system")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def llm_params(resolved: Resolved, resource: str, payload: Any) -> dict[str, Any]:
    if resolved.shape == "bedrock":
        return {**resolved.settings, **bedrock_params(payload)}
    params = handler_params(resolved, resource, payload, LLM_KEYS)
    if params is not None:
        return params
    data = task_data(resolved, payload)
    return {**resolved.settings, "prompt": data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}


def chat_request(params: dict[str, Any]) -> ChatRequest:
    """The chat the parameters ask for; a malformed one fails the Task."""
    if isinstance(params.get("messages"), list):
        messages = params["messages"]
        if not messages or not all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in messages
        ):
            raise task_failed('llm: messages are [{"role": "user"|"assistant"|"system", "content": "..."}, ...]')
    elif isinstance(params.get("prompt"), str) and params["prompt"]:
        messages = [{"role": "user", "content": params["prompt"]}]
    else:
        raise task_failed("llm: the Task gives a prompt (a non-empty string) or messages")
    system, max_tokens, temperature = params.get("system"), params.get("max_tokens"), params.get("temperature")
    if system is not None and not isinstance(system, str):
        raise task_failed("llm: system is a string")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise task_failed("llm: max_tokens is a positive integer")
    if temperature is not None and (not isinstance(temperature, int | float) or isinstance(temperature, bool)):
        raise task_failed("llm: temperature is a number")
    if params.get("response_format", "text") not in ("json", "text"):
        raise task_failed("llm: response_format is json or text")
    return ChatRequest(messages, system, max_tokens, temperature, params.get("response_format") == "json")


def answer_json(text: str) -> Any:
    """The JSON a model was asked for, also when it fenced it in a Markdown code block."""
    fenced = _FENCE.match(text.strip())
    try:
        return json.loads(fenced.group(1) if fenced else text)
    except ValueError as e:
        raise task_failed(f"llm: the model's answer is not JSON: {text[:200]!r}") from e


async def run_llm(deps: TaskDeps, inp: MachineTaskInput, resolved: Resolved) -> Answer:
    params = llm_params(resolved, inp.resource, inp.payload)
    request = chat_request(params)
    model = params.get("model") if isinstance(params.get("model"), str) else deps.settings.llm_model
    tenant = await load_tenant(deps, inp.tenant_id)
    key = await own_secret(deps, tenant, "llm_api_key")
    every = deps.settings.job_events_token_flush_seconds
    tokens = TokenStream(deps.engine, inp.tenant_id, inp.job_id, inp.path, every, attempt=inp.attempt)
    try:
        async with heartbeating(heartbeat_every()), tokens:
            completion = await deps.llm.chat(str(model), request, key, on_text=tokens)
    except LLMError as e:
        raise task_failed(f"{errors.code_of(e)}: {e}") from e
    async with tenant_session(deps.engine, inp.tenant_id) as session:
        await record_usage(session, inp.tenant_id, inp.job_id, inp.path, completion)
    if resolved.shape == "bedrock":
        return Answer(bedrock_body(inp.payload, completion, request_id(inp.job_id, inp.path, inp.attempt)))
    result: dict[str, Any] = {
        "text": completion.text,
        "model": completion.model,
        "usage": {"input_tokens": completion.tokens_in, "output_tokens": completion.tokens_out},
    }
    if request.json:
        result["json"] = answer_json(completion.text)
    return Answer(result)
