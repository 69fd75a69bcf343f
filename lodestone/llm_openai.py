"""The OpenAI-compatible client: OpenAI, Groq, Ollama, vLLM, Gemini's and Anthropic's
compatibility endpoints. One AsyncOpenAI per client; a call at another Endpoint (a tenant's
named provider) uses a copy with that base URL and key over the same connections.

The client never retries by itself: Temporal's retry policy does (and the fallback models
of lodestone/llm_fallback.py), and a 429's Retry-After is handed back so the activity can
wait that long."""

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from lodestone.llm import (
    DEFAULT_PROVIDER,
    ChatRequest,
    Completion,
    Endpoint,
    LLMClient,
    LLMEmptyAnswer,
    LLMRefused,
    LLMRequestRejected,
    LLMTransient,
    TextSink,
)
from lodestone.netguard import OutboundRefused
from lodestone.settings import Settings


def _retry_after(headers: object) -> float | None:
    """Retry-After as seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = getattr(headers, "get", lambda _k: None)("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


@dataclass
class Answer:
    content: str
    finish_reason: str | None
    refusal: str | None


class OpenAICompatibleLLM(LLMClient):
    def __init__(self, settings: Settings, http_client: Any = None) -> None:
        """http_client: the httpx2 client to use (a guarded one for tenants' endpoints)."""
        from openai import AsyncOpenAI

        self._client = AsyncOpenAI(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key or "unset",  # a tenant's endpoint gets its own key, or none
            timeout=settings.llm_timeout_seconds,
            max_retries=0,
            http_client=http_client,
        )
        self._http = http_client
        self._default = Endpoint(DEFAULT_PROVIDER, prices=settings.llm_prices, json_mode=settings.llm_json_mode)

    async def complete(
        self, model: str, prompt: str, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        endpoint = Endpoint(DEFAULT_PROVIDER, api_key=api_key, prices=self._default.prices)
        return await self._create(endpoint, model, {"messages": [{"role": "user", "content": prompt}]}, on_text)

    async def chat(
        self, model: str, request: ChatRequest, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        endpoint = Endpoint(
            DEFAULT_PROVIDER, api_key=api_key, prices=self._default.prices, json_mode=self._default.json_mode
        )
        return await self.chat_at(endpoint, model, request, on_text)

    async def chat_at(
        self, endpoint: Endpoint, model: str, request: ChatRequest, on_text: TextSink | None = None
    ) -> Completion:
        messages = ([{"role": "system", "content": request.system}] if request.system else []) + request.messages
        options: dict[str, Any] = {"messages": messages}
        if request.max_tokens is not None:
            options["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.json_schema is not None and endpoint.json_mode == "json_schema":
            schema = {"name": "output", "schema": request.json_schema}
            options["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif (request.json or request.json_schema is not None) and endpoint.json_mode != "none":
            options["response_format"] = {"type": "json_object"}
        return await self._create(endpoint, model, options, on_text)

    async def _create(
        self, endpoint: Endpoint, model: str, options: dict[str, Any], on_text: TextSink | None = None
    ) -> Completion:
        import openai

        client = self._client
        if endpoint.base_url or endpoint.api_key:
            # A provider without a key (a local Ollama) still gets a placeholder: the SDK wants one.
            key = endpoint.api_key or (None if endpoint.provider == DEFAULT_PROVIDER else "none")
            client = client.with_options(base_url=endpoint.base_url or client.base_url, api_key=key or client.api_key)
        elif endpoint.provider != DEFAULT_PROVIDER:
            raise LLMRequestRejected(f"provider {endpoint.provider!r} has no base URL")
        try:
            if on_text is not None:
                return self._completion(endpoint, model, *await self._stream(client, model, options, on_text))
            resp = await client.chat.completions.create(model=model, **options)
        except openai.RateLimitError as e:
            raise LLMTransient(f"rate limited (429) by {model}", _retry_after(e.response.headers)) from e
        except openai.APITimeoutError as e:
            raise LLMTransient(f"timed out waiting for {model}") from e
        except OutboundRefused as e:
            raise LLMRequestRejected(f"provider {endpoint.provider!r} may not be called: {e}") from e
        except openai.APIConnectionError as e:
            if isinstance(e.__cause__, OutboundRefused):
                raise LLMRequestRejected(f"provider {endpoint.provider!r} may not be called: {e.__cause__}") from e
            raise LLMTransient(f"could not reach the LLM endpoint: {e}") from e
        except openai.APIStatusError as e:
            if e.status_code >= 500 or e.status_code in (408, 409):
                raise LLMTransient(f"LLM endpoint answered {e.status_code}", _retry_after(e.response.headers)) from e
            raise LLMRequestRejected(f"LLM endpoint rejected the request: {e.status_code}") from e
        if not resp.choices:
            raise LLMEmptyAnswer(f"{model} returned no choices")
        choice = resp.choices[0]
        answer = Answer(choice.message.content or "", choice.finish_reason, getattr(choice.message, "refusal", None))
        return self._completion(endpoint, model, answer, resp.model, resp.usage)

    @staticmethod
    async def _stream(client: Any, model: str, options: dict[str, Any], on_text: TextSink) -> tuple[Any, ...]:
        """The answer read from the provider's stream, each content delta handed to on_text."""
        stream = await client.chat.completions.create(
            model=model, stream=True, stream_options={"include_usage": True}, **options
        )
        answer, served, usage = Answer("", None, None), None, None
        async for chunk in stream:
            served, usage = chunk.model or served, chunk.usage or usage
            for choice in chunk.choices:
                delta = choice.delta
                answer.refusal = getattr(delta, "refusal", None) or answer.refusal
                answer.finish_reason = choice.finish_reason or answer.finish_reason
                if delta.content:
                    answer.content += delta.content
                    await on_text(delta.content)
        return answer, served, usage

    @staticmethod
    def _completion(endpoint: Endpoint, model: str, answer: "Answer", served: str | None, usage: Any) -> Completion:
        if answer.finish_reason == "content_filter" or answer.refusal:
            raise LLMRefused(f"{model} refused: {answer.refusal or 'content filter'}")
        text = answer.content.strip()
        if not text:
            raise LLMEmptyAnswer(f"{model} returned an empty answer")
        tin = usage.prompt_tokens if usage else 0
        tout = usage.completion_tokens if usage else 0
        price_in, price_out = (endpoint.prices or {}).get(model, (0.0, 0.0))
        cost = (tin * price_in + tout * price_out) / 1_000_000
        return Completion(text, served or model, tin, tout, round(cost, 8), endpoint.provider)

    async def close(self) -> None:
        await self._client.close()
        if self._http is not None:
            await self._http.aclose()
