"""LLM clients: `offline` (deterministic, no network), `local` (the OpenAI-compatible server
at LOCAL_LLM_URL, which the dev stack runs) and any OpenAI-compatible API
(lodestone/llm_openai.py): the deployment's default provider (LLM_BASE_URL) and a tenant's
named providers (lodestone/llm_providers.py), each reached through an Endpoint.

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
from typing import Any

from lodestone.settings import Settings

OFFLINE_MODEL = "offline"
LOCAL_MODEL = "local"
DEFAULT_PROVIDER = "default"  # the deployment's LLM_BASE_URL (and the offline and local models)

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
    provider: str = DEFAULT_PROVIDER


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion with its options (a state machine's llm Task); `complete` is the
    one-prompt form pipeline steps use."""

    messages: list[dict[str, str]]  # {"role": "user"|"assistant"|"system", "content": ...}
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    json: bool = False  # ask for a JSON object
    json_schema: dict[str, Any] | None = None  # ask for a JSON object that matches this schema

    def as_prompt(self) -> str:
        """One prompt for a provider that takes no messages (offline)."""
        parts = [self.system] if self.system else []
        parts += [m["content"] if m["role"] == "user" else f"[{m['role']}] {m['content']}" for m in self.messages]
        return "\n\n".join(parts)


class LLMOutputInvalid(LLMError):
    """The model's answer never matched the output schema it was asked for."""


@dataclass(frozen=True)
class Endpoint:
    """Where a model is asked: a provider by name, its base URL and key (None: the default
    provider's own), its prices per million tokens (in, out) and how it takes a JSON request:
    `json_schema`, `json_object` or `none` (the schema only in the prompt)."""

    provider: str = DEFAULT_PROVIDER
    base_url: str | None = None
    api_key: str | None = None
    prices: dict[str, tuple[float, float]] | None = None
    json_mode: str = "json_schema"


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

    async def chat_at(
        self, endpoint: Endpoint, model: str, request: ChatRequest, on_text: TextSink | None = None
    ) -> Completion:
        """A chat at a named provider's endpoint; a client that knows only its own provider
        answers the default one."""
        if endpoint.provider != DEFAULT_PROVIDER:
            raise LLMRequestRejected(f"provider {endpoint.provider!r} is not reachable from this client")
        return await self.chat(model, request, endpoint.api_key, on_text)

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


class RoutingLLM(LLMClient):
    """Sends model `offline` to the offline provider, `local` to LOCAL_LLM_URL, a tenant's
    named provider's models to its endpoint (through the outbound guard: its URL is the
    tenant's word) and everything else to the deployment's API."""

    def __init__(self, settings: Settings) -> None:
        from lodestone.llm_openai import OpenAICompatibleLLM

        self._settings = settings
        self._offline = OfflineLLM()
        self._remote = OpenAICompatibleLLM(settings) if settings.llm_base_url else None
        self._tenants: LLMClient | None = None  # made on first use
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

    async def chat_at(
        self, endpoint: Endpoint, model: str, request: ChatRequest, on_text: TextSink | None = None
    ) -> Completion:
        if endpoint.provider == DEFAULT_PROVIDER:
            return await self.chat(model, request, endpoint.api_key, on_text)
        if self._tenants is None:
            from lodestone.llm_openai import OpenAICompatibleLLM
            from lodestone.netguard import guarded_client_httpx2

            allow, timeout = self._settings.outbound_allow_cidrs, self._settings.llm_timeout_seconds
            http = guarded_client_httpx2(allow, timeout=timeout)
            self._tenants = OpenAICompatibleLLM(self._settings, http_client=http)
        return await self._tenants.chat_at(endpoint, model, request, on_text)

    def _route(self, model: str) -> LLMClient:
        if model == LOCAL_MODEL:
            if self._local is None:
                raise LLMRequestRejected("model 'local' needs LOCAL_LLM_URL (lodestone dev and lodestone demo set it)")
            return self._local
        if self._remote is None:
            raise LLMRequestRejected(f"model {model!r} needs LLM_BASE_URL and LLM_API_KEY; only 'offline' runs without")
        return self._remote

    async def close(self) -> None:
        for client in (self._remote, self._local, self._tenants):
            if client is not None:
                await client.close()
