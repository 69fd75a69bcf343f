"""A tenant's limits: the deployment's settings, each overridable per tenant (tenants.limits,
set with PUT /v1/tenant/limits). An override absent or null takes the setting."""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lodestone.settings import Settings


class LimitOverrides(BaseModel):
    """What a tenant may override; each is optional."""

    model_config = ConfigDict(extra="forbid")

    max_running_jobs: int | None = Field(default=None, ge=1, le=100_000)
    max_llm_calls: int | None = Field(default=None, ge=1, le=10_000)
    max_renders: int | None = Field(default=None, ge=1, le=1_000)
    submissions_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    submissions_burst: int | None = Field(default=None, ge=1, le=100_000)


@dataclass(frozen=True)
class TenantLimits:
    """The limits in force for one tenant."""

    max_running_jobs: int
    max_llm_calls: int
    max_renders: int
    submissions_per_minute: int
    submissions_burst: int


def effective(settings: Settings, overrides: LimitOverrides | dict[str, Any] | None) -> TenantLimits:
    given = overrides if isinstance(overrides, LimitOverrides) else LimitOverrides.model_validate(overrides or {})
    return TenantLimits(
        max_running_jobs=given.max_running_jobs or settings.tenant_max_running_jobs,
        max_llm_calls=given.max_llm_calls or settings.tenant_max_llm_calls,
        max_renders=given.max_renders or settings.tenant_max_renders,
        submissions_per_minute=given.submissions_per_minute or settings.submissions_per_minute,
        submissions_burst=given.submissions_burst or settings.submissions_burst,
    )
