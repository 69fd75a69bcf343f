"""Asking a list of models in order, and structured output.

Each model is asked at its provider's Endpoint; a 429, 5xx, timeout, lost connection or
refusal moves on to the next model, and the answer keeps why each earlier one did not
answer (its `fallbacks`). Any other failure (a rejected request, an empty answer) ends there.
When every model failed, the last one's error is raised, naming every model tried.

A request with a JSON Schema (`json_schema`) is asked in the provider's JSON mode; the answer
is parsed (also from a Markdown code fence) and validated, and a mismatch is asked again of
the same model with the validation error, at most `retries` times; then LLMOutputInvalid.
Tokens and cost of every try of the answering model are summed in its Completion."""

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jsonschema

from lodestone.llm import (
    ChatRequest,
    Completion,
    Endpoint,
    LLMClient,
    LLMError,
    LLMOutputInvalid,
    LLMRefused,
    LLMRequestRejected,
    LLMTransient,
    TextSink,
)
from lodestone.llm_providers import Route

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
FALLBACK_ERRORS = (LLMTransient, LLMRefused)

# The API key of a route's provider: the tenant's secret, resolved when the route is tried.
KeyOf = Callable[[Route], Awaitable[str | None]]


@dataclass(frozen=True)
class Answered:
    completion: Completion
    fallbacks: list[dict[str, str]] = field(default_factory=list)  # {provider, model, error} per model skipped
    value: Any = None  # the validated object, when the request gave a schema


def parse_json(text: str) -> Any:
    """The JSON a model was asked for, also when it fenced it in a Markdown code block;
    ValueError when it is none."""
    fenced = _FENCE.match(text.strip())
    return json.loads(fenced.group(1) if fenced else text)


def schema_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise LLMRequestRejected(f"output_schema is not a valid JSON Schema: {e.message}") from e
    return jsonschema.Draft202012Validator(schema)


async def ask(
    llm: LLMClient,
    routes: Sequence[Route],
    request: ChatRequest,
    key_of: KeyOf,
    on_text: TextSink | None = None,
    retries: int = 2,
    default_json_mode: str = "json_schema",
) -> Answered:
    """The first answer of the routes' models, in order."""
    fallbacks: list[dict[str, str]] = []
    last: LLMError | None = None
    for route in routes:
        config = route.config
        endpoint = Endpoint(
            route.provider,
            config.base_url if config else None,
            await key_of(route),
            dict(config.prices) if config else None,
            config.json_mode if config else default_json_mode,  # the default provider's: LLM_JSON_MODE
        )
        try:
            completion, value = await _answer(llm, endpoint, route.model, request, on_text, retries)
        except FALLBACK_ERRORS as e:
            fallbacks.append({"provider": route.provider, "model": route.model, "error": f"{type(e).__name__}: {e}"})
            last = e
            continue
        return Answered(completion, fallbacks, value)
    if last is None:
        raise LLMRequestRejected("no model to ask")
    if len(fallbacks) == 1:
        raise last
    tried = "; ".join(f"{f['model']} ({f['provider']}): {f['error']}" for f in fallbacks)
    message = f"every model failed, the last with: {last} [{tried}]"
    if isinstance(last, LLMTransient):
        raise LLMTransient(message, last.retry_after) from last
    raise type(last)(message) from last


async def _answer(
    llm: LLMClient, endpoint: Endpoint, model: str, request: ChatRequest, on_text: TextSink | None, retries: int
) -> tuple[Completion, Any]:
    if request.json_schema is None:
        return await llm.chat_at(endpoint, model, request, on_text), None
    validator = schema_validator(request.json_schema)
    if endpoint.json_mode != "json_schema":  # the schema goes in the prompt
        shape = f"Answer with one JSON object that matches this JSON Schema: {json.dumps(request.json_schema)}"
        request = replace(request, system=f"{request.system}\n\n{shape}" if request.system else shape)
    messages = list(request.messages)
    spent: Completion | None = None
    for _ in range(retries + 1):
        done = await llm.chat_at(endpoint, model, replace(request, messages=messages), on_text)
        spent = done if spent is None else _summed(spent, done)
        problem = _mismatch(validator, done.text)
        if problem is None:
            return spent, parse_json(done.text)
        messages += [
            {"role": "assistant", "content": done.text},
            {
                "role": "user",
                "content": f"That answer does not match the JSON Schema: {problem}. "
                "Answer again with only the corrected JSON object.",
            },
        ]
    raise LLMOutputInvalid(f"{model}'s answer did not match output_schema after {retries + 1} tries: {problem}")


def _mismatch(validator: jsonschema.Draft202012Validator, text: str) -> str | None:
    try:
        value = parse_json(text)
    except ValueError:
        return f"the answer is not JSON: {text[:200]!r}"
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    return None if error is None else f"at {error.json_path}: {error.message}"[:500]


def _summed(a: Completion, b: Completion) -> Completion:
    return replace(
        b,
        tokens_in=a.tokens_in + b.tokens_in,
        tokens_out=a.tokens_out + b.tokens_out,
        cost_usd=round(a.cost_usd + b.cost_usd, 8),
    )
