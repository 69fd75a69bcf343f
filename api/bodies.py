"""Request and response bodies shared by more than one router."""

import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, model_validator

from lodestone.job_priority import HIGHEST, LOWEST
from lodestone.netguard import OutboundRefused, check_url
from lodestone.settings import Settings
from schema.tables import Job

MAX_JSON_DEPTH = 32


def _not_too_deep(value: dict[str, Any]) -> dict[str, Any]:
    level: list[Any] = [value]
    for _ in range(MAX_JSON_DEPTH):  # one level of containers per pass
        level = [
            child for c in level if isinstance(c, dict | list) for child in (c.values() if isinstance(c, dict) else c)
        ]
    if any(isinstance(c, dict | list) for c in level):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


# A JSON object from a caller. Schema validation and serialization recurse, and crash a few
# hundred levels down, so deeper nesting is refused (422) before either runs.
JsonObject = Annotated[dict[str, Any], AfterValidator(_not_too_deep)]


class SubmissionCreate(BaseModel):
    workflow_key: str = Field(min_length=1, max_length=63)
    input: JsonObject = Field(default_factory=dict)
    input_upload_id: uuid.UUID | None = None
    input_url: str | None = Field(default=None, max_length=2000)
    # 1 (first) to 5 (last); none means 3. A JSON integer only: "2", 2.0 and true are refused.
    priority: int | None = Field(default=None, ge=HIGHEST, le=LOWEST, strict=True)

    @model_validator(mode="after")
    def _one_input_object(self) -> "SubmissionCreate":
        if self.input_upload_id and self.input_url:
            raise ValueError("give input_upload_id or input_url, not both")
        if self.input_url:
            try:
                check_url(self.input_url)
            except OutboundRefused as e:
                raise ValueError(str(e)) from e
        return self

    def request(self) -> dict[str, Any]:
        """The submission as JSON, the body an Idempotency-Key is bound to; `priority` only if
        it names one, so a body without it hashes as it did before priorities."""
        request = self.model_dump(mode="json")
        if request["priority"] is None:
            del request["priority"]
        return request


class SubmissionAccepted(BaseModel):
    job_id: str
    status: str
    links: dict[str, str]


def accepted(job: Job, settings: Settings) -> SubmissionAccepted:
    return SubmissionAccepted(
        job_id=str(job.id),
        status=job.status,
        links={"self": f"{settings.api_url}/v1/jobs/{job.id}", "temporal": settings.workflow_link(str(job.id))},
    )
