"""LLM providers: `offline` (deterministic, no network), `local` (the OpenAI-compatible server
at LOCAL_LLM_URL, which the dev stack runs) and any OpenAI-compatible API.

The client never retries by itself: Temporal's retry policy does, and a 429's
Retry-After is handed back so the activity can wait that long.

A caller that passes `on_text` gets the answer's text as the model produces it, piece by
piece, before the Completion: the OpenAI-compatible client then uses the provider's streaming
API (`stream=True`, usage from its last chunk); the offline model hands its text over word by
word. The pieces joined are the answer as the model wrote it; Completion.text is that text
with surrounding whitespace trimmed.
"""

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from lodestone.settings import Settings

OFFLINE_MODEL = "offline"
LOCAL_MODEL = "local"

# Receives each new piece of an answer's text, as the model produces it.
TextSink = Callable[[str], Awaitable[None]]


class LLMError(Exception):
    """Base of every LLM failure."""


class LLMTransient(LLMError):
    """Worth retrying: 429, 5xx, timeouts, lost connections."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMEmptyAnswer(LLMError):
    """The model answered with no text."""


class LLMRefused(LLMError):
    """The model refused, or a content filter stopped it."""


class LLMRequestRejected(LLMError):
    """The provider rejected the request itself (bad model, bad key, bad input)."""


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion with its options (a state machine's llm Task); `complete` is the
    one-prompt form pipeline steps use."""

    messages: list[dict[str, str]]  # {"role": "user"|"assistant"|"system", "content": ...}
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    json: bool = False  # ask for a JSON object

    def as_prompt(self) -> str:
        """One prompt for a provider that takes no messages (offline)."""
        parts = [self.system] if self.system else []
        parts += [m["content"] if m["role"] == "user" else f"[{m['role']}] {m['content']}" for m in self.messages]
        return "\n\n".join(parts)


class LLMClient(ABC):
    @abstractmethod
    async def complete(
        self, model: str, prompt: str, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        """api_key: the tenant's own key, when it has one; else the provider's default.
        on_text: called with each piece of the answer as it arrives."""

    async def chat(
        self, model: str, request: ChatRequest, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        """A chat; a provider without messages or options answers the messages as one prompt."""
        return await self.complete(model, request.as_prompt(), api_key, on_text)

    async def close(self) -> None:
        return None


def offline_text(model: str, prompt: str) -> str:
    digest = hashlib.sha256(f"{model}\n{prompt}".encode()).hexdigest()
    words = prompt.split()
    opening = " ".join(words[:40])
    return (
        f"[offline output: no language model was called; model={model}, digest={digest[:12]}]\n"
        f"Derived from a {len(words)}-word prompt that opens: {opening}"
    )


class OfflineLLM(LLMClient):
    async def complete(
        self, model: str, prompt: str, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        text = offline_text(model, prompt)
        if on_text is not None:
            for piece in re.findall(r"\S+\s*|\s+", text):
                await on_text(piece)
        return Completion(text, model, len(prompt.split()), len(text.split()), 0.0)


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
    def __init__(self, settings: Settings) -> None:
        from openai import AsyncOpenAI

        self._client = AsyncOpenAI(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout_seconds,
            max_retries=0,
        )
        self._prices = settings.llm_prices

    async def complete(
        self, model: str, prompt: str, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        return await self._create(model, {"messages": [{"role": "user", "content": prompt}]}, api_key, on_text)

    async def chat(
        self, model: str, request: ChatRequest, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        messages = ([{"role": "system", "content": request.system}] if request.system else []) + request.messages
        options: dict[str, Any] = {"messages": messages}
        if request.max_tokens is not None:
            options["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.json:
            options["response_format"] = {"type": "json_object"}
        return await self._create(model, options, api_key, on_text)

    async def _create(
        self, model: str, options: dict[str, Any], api_key: str | None, on_text: TextSink | None = None
    ) -> Completion:
        import openai

        client = self._client.with_options(api_key=api_key) if api_key else self._client
        try:
            if on_text is not None:
                return self._completion(model, *await self._stream(client, model, options, on_text))
            resp = await client.chat.completions.create(model=model, **options)
        except openai.RateLimitError as e:
            raise LLMTransient(f"rate limited (429) by {model}", _retry_after(e.response.headers)) from e
        except openai.APITimeoutError as e:
            raise LLMTransient(f"timed out waiting for {model}") from e
        except openai.APIConnectionError as e:
            raise LLMTransient(f"could not reach the LLM endpoint: {e}") from e
        except openai.APIStatusError as e:
            if e.status_code >= 500 or e.status_code in (408, 409):
                raise LLMTransient(f"LLM endpoint answered {e.status_code}", _retry_after(e.response.headers)) from e
            raise LLMRequestRejected(f"LLM endpoint rejected the request: {e.status_code}") from e
        if not resp.choices:
            raise LLMEmptyAnswer(f"{model} returned no choices")
        choice = resp.choices[0]
        answer = Answer(choice.message.content or "", choice.finish_reason, getattr(choice.message, "refusal", None))
        return self._completion(model, answer, resp.model, resp.usage)

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

    def _completion(self, model: str, answer: "Answer", served: str | None, usage: Any) -> Completion:
        if answer.finish_reason == "content_filter" or answer.refusal:
            raise LLMRefused(f"{model} refused: {answer.refusal or 'content filter'}")
        text = answer.content.strip()
        if not text:
            raise LLMEmptyAnswer(f"{model} returned an empty answer")
        tin = usage.prompt_tokens if usage else 0
        tout = usage.completion_tokens if usage else 0
        price_in, price_out = self._prices.get(model, (0.0, 0.0))
        cost = (tin * price_in + tout * price_out) / 1_000_000
        return Completion(text, served or model, tin, tout, round(cost, 8))

    async def close(self) -> None:
        await self._client.close()


class RoutingLLM(LLMClient):
    """Sends model `offline` to the offline provider, `local` to LOCAL_LLM_URL and everything
    else to the API."""

    def __init__(self, settings: Settings) -> None:
        self._offline = OfflineLLM()
        self._remote = OpenAICompatibleLLM(settings) if settings.llm_base_url else None
        local = {
            "llm_base_url": settings.local_llm_url,
            "llm_api_key": LOCAL_MODEL,
            "llm_timeout_seconds": settings.local_llm_timeout_seconds,
        }
        self._local = OpenAICompatibleLLM(settings.model_copy(update=local)) if settings.local_llm_url else None

    async def complete(
        self, model: str, prompt: str, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        if model == OFFLINE_MODEL:
            return await self._offline.complete(model, prompt, on_text=on_text)
        return await self._route(model).complete(model, prompt, self._key(model, api_key), on_text)

    async def chat(
        self, model: str, request: ChatRequest, api_key: str | None = None, on_text: TextSink | None = None
    ) -> Completion:
        if model == OFFLINE_MODEL:
            return await self._offline.chat(model, request, on_text=on_text)
        return await self._route(model).chat(model, request, self._key(model, api_key), on_text)

    @staticmethod
    def _key(model: str, api_key: str | None) -> str | None:
        """A tenant's key is for its provider: the local model never gets it."""
        return None if model == LOCAL_MODEL else api_key

    def _route(self, model: str) -> LLMClient:
        if model == LOCAL_MODEL:
            if self._local is None:
                raise LLMRequestRejected("model 'local' needs LOCAL_LLM_URL (lodestone dev and lodestone demo set it)")
            return self._local
        if self._remote is None:
            raise LLMRequestRejected(f"model {model!r} needs LLM_BASE_URL and LLM_API_KEY; only 'offline' runs without")
        return self._remote

    async def close(self) -> None:
        for client in (self._remote, self._local):
            if client:
                await client.close()
