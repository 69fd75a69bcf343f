"""The llm handler: a chat completion with the tenant's models and key, as pipeline steps make
them (lodestone/llm.py), its usage recorded per Task path. Parameters: `prompt` or `messages`,
optional `model` or `models` (tried in order), `system`, `max_tokens`, `temperature`,
`response_format: "json"`, `output_schema` (a JSON Schema the answer's object must match,
asked again on a mismatch; the validated object is the result's `json`); a bound
Lambda's payload that holds neither prompt nor messages is the prompt itself (as JSON), under
the binding's `system`."""

import json
from typing import Any

from temporalio.exceptions import ApplicationError

from activities import errors
from activities.budget_meter import Meter
from activities.common import heartbeating, until_free
from activities.events import TokenStream
from activities.llm_calls import ask_models, models_of, record_usage
from activities.machine_tasks_base import (
    MachineTaskInput,
    TaskDeps,
    handler_params,
    heartbeat_every,
    load_tenant,
    task_data,
)
from activities.machine_tasks_bedrock import bedrock_body, bedrock_params
from activities.machine_tasks_shapes import Answer, request_id, task_failed
from lodestone.asl.bindings import Resolved
from lodestone.db import tenant_session
from lodestone.llm import ChatRequest, LLMError
from lodestone.llm_fallback import parse_json

LLM_KEYS = (
    "prompt",
    "messages",
    "model",
    "models",
    "system",
    "max_tokens",
    "temperature",
    "response_format",
    "output_schema",
)
ROLES = ("user", "assistant", "system")


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
    models, schema = params.get("models"), params.get("output_schema")
    if models is not None and not (
        isinstance(models, list) and models and all(isinstance(m, str) and m for m in models)
    ):
        raise task_failed("llm: models is a non-empty list of model names")
    if schema is not None and not isinstance(schema, dict):
        raise task_failed("llm: output_schema is a JSON Schema (an object)")
    json_mode = params.get("response_format") == "json"
    return ChatRequest(messages, system, max_tokens, temperature, json_mode, schema)


def answer_json(text: str) -> Any:
    """The JSON a model was asked for, also when it fenced it in a Markdown code block."""
    try:
        return parse_json(text)
    except ValueError as e:
        raise task_failed(f"llm: the model's answer is not JSON: {text[:200]!r}") from e


async def run_llm(deps: TaskDeps, inp: MachineTaskInput, resolved: Resolved) -> Answer:
    params = llm_params(resolved, inp.resource, inp.payload)
    request = chat_request(params)
    tenant = await load_tenant(deps, inp.tenant_id)
    every = deps.settings.job_events_token_flush_seconds
    tokens = TokenStream(deps.engine, inp.tenant_id, inp.job_id, inp.path, every, attempt=inp.attempt)
    models = models_of(params, deps.settings)
    try:
        async with heartbeating(heartbeat_every()), tokens:
            scope = f"{inp.path}@{inp.attempt}"  # each of the machine's Retry attempts is a call of its own
            meter = Meter(deps.engine, deps.settings, inp.tenant_id, inp.job_id, scope, deps.secrets)
            # Every one of the tenant's LLM-call slots held: waited out here (no workflow-side rescheduling).
            answered = await until_free(
                lambda: ask_models(
                    deps.llm,
                    deps.settings,
                    deps.secrets,
                    tenant,
                    inp.tenant_id,
                    models,
                    request,
                    tokens,
                    meter,
                    engine=deps.engine,
                )
            )
    except LLMError as e:
        raise task_failed(f"{errors.code_of(e)}: {e}") from e
    except ApplicationError as e:  # the tenant's key could not be read
        if e.type == errors.BUDGET_EXHAUSTED:  # the workflow pauses the job (workflows/budget_pause.py)
            raise
        raise task_failed(f"{e.type}: {e.message}") from e
    completion = answered.completion
    async with tenant_session(deps.engine, inp.tenant_id) as session:
        await record_usage(session, inp.tenant_id, inp.job_id, inp.path, completion, answered.fallbacks)
    if resolved.shape == "bedrock":
        return Answer(bedrock_body(inp.payload, completion, request_id(inp.job_id, inp.path, inp.attempt)))
    result: dict[str, Any] = {
        "text": completion.text,
        "model": completion.model,
        "usage": {"input_tokens": completion.tokens_in, "output_tokens": completion.tokens_out},
    }
    if request.json_schema is not None:
        result["json"] = answered.value
    elif request.json:
        result["json"] = answer_json(completion.text)
    return Answer(result)
