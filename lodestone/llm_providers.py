"""A tenant's named LLM providers and how a model name finds its provider.

A tenant stores providers by name (tenants.llm_providers): an OpenAI-compatible base URL,
the name of the tenant secret that holds its API key (lodestone/tenant_secrets.py; none for
an endpoint that takes no key), the models it serves, their prices in US dollars per million
tokens (in, out), and how it takes a JSON request. A model name belongs to the first of the
tenant's providers (by name) that lists it; else `offline` is the offline model, and any other
name goes to the deployment's default provider (LLM_BASE_URL), when it serves that model
(LLM_MODELS; empty: every model)."""

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from lodestone.llm import DEFAULT_PROVIDER, LOCAL_MODEL, OFFLINE_MODEL
from lodestone.netguard import OutboundRefused, check_url
from lodestone.settings import Settings
from lodestone.tenant_secrets import known_secret_name

PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
RESERVED_NAMES = (DEFAULT_PROVIDER, OFFLINE_MODEL)
MAX_PROVIDERS = 16
MAX_MODELS = 64


class ProviderConfig(BaseModel):
    """One named provider, as a tenant stores it."""

    base_url: str = Field(max_length=2048, description="an OpenAI-compatible API, e.g. https://api.groq.com/openai/v1")
    api_key_secret: str | None = Field(
        default=None, description="the tenant secret (PUT /v1/tenant/secrets) that holds the key; none: no key"
    )
    models: list[str] = Field(min_length=1, max_length=MAX_MODELS)
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="{model: [usd_per_million_in, usd_per_million_out]}"
    )
    json_mode: Literal["json_schema", "json_object", "none"] = "json_schema"

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            check_url(value)
        except OutboundRefused as e:
            raise ValueError(str(e)) from e
        return value.rstrip("/")

    @field_validator("api_key_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None and not known_secret_name(value):
            raise ValueError("api_key_secret is a tenant secret name (a-z, 0-9, _)")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        if any(not m or len(m) > 200 or m == OFFLINE_MODEL for m in value):
            raise ValueError("models are non-empty names of at most 200 characters, never 'offline'")
        return value

    @field_validator("prices")
    @classmethod
    def _prices(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        if any(p < 0 for pair in value.values() for p in pair):
            raise ValueError("prices are not negative")
        return value


def check_providers(raw: dict[str, Any]) -> dict[str, ProviderConfig]:
    """A tenant's providers, each checked; ValueError names the first bad one."""
    if len(raw) > MAX_PROVIDERS:
        raise ValueError(f"at most {MAX_PROVIDERS} providers")
    out = {}
    for name, config in raw.items():
        if not PROVIDER_NAME.fullmatch(name) or name in RESERVED_NAMES:
            raise ValueError(f"provider name {name!r}: 1 to 32 of a-z, 0-9, _ and -, not {' or '.join(RESERVED_NAMES)}")
        out[name] = config if isinstance(config, ProviderConfig) else ProviderConfig.model_validate(config)
    return out


@dataclass(frozen=True)
class Route:
    """A model and the provider that serves it (its config; None for default and offline)."""

    provider: str
    model: str
    config: ProviderConfig | None = None


def route_for(settings: Settings, providers: dict[str, Any], model: str) -> Route | None:
    """The provider that serves `model` for a tenant with these stored providers; None when
    none does."""
    for name in sorted(providers):
        config = ProviderConfig.model_validate(providers[name])
        if model in config.models:
            return Route(name, model, config)
    if model == OFFLINE_MODEL or (model == LOCAL_MODEL and settings.local_llm_url):
        return Route(DEFAULT_PROVIDER, model)
    if settings.llm_base_url and (not settings.llm_models or model in settings.llm_models):
        return Route(DEFAULT_PROVIDER, model)
    return None


def model_configured(settings: Settings, providers: dict[str, Any], model: str) -> bool:
    """Whether `model` is configured for a tenant with these stored providers (the tenant
    row's llm_providers): one of its providers lists it, it is `offline`, or the deployment's
    default provider serves it."""
    return route_for(settings, providers, model) is not None
