"""The shapes a state machine Task's result and error take, so that a definition written for
Step Functions runs as written: an optimized lambda:invoke's result wraps the function's JSON
in `Payload` (developer guide, "Invoke Lambda with Step Functions"), a bare Lambda ARN's is the
JSON itself, http:invoke's has Headers/ResponseBody/StatusCode/StatusText ("Call HTTPS APIs"),
bedrock:invokeModel's has Body/ContentType (Bedrock InvokeModel's response)."""

import json
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from temporalio.exceptions import ApplicationError

from activities import errors

MAX_CAUSE = 32768  # Step Functions' own limit on an error's cause
_NAMESPACE = uuid.UUID("3c1e0a52-7d4b-4f0e-9a36-5b8e2d7c91f4")


@dataclass
class Answer:
    """What a handler answered: the JSON (or text) and, for http, its status and headers."""

    body: Any
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""


def task_error(error: str, cause: str) -> ApplicationError:
    """A Task failure with its ASL error name: the machine's Retry and Catch decide what follows,
    never Temporal's retry."""
    return ApplicationError(cause[:MAX_CAUSE], type=error, non_retryable=True)


def task_failed(cause: str) -> ApplicationError:
    return task_error(errors.STATES_TASK_FAILED, cause)


def request_id(job_id: str, path: str, attempt: int) -> str:
    """Stable for one attempt of one Task: the webhook-id's and the RequestId's base."""
    return str(uuid.uuid5(_NAMESPACE, f"{job_id}:{path}:{attempt}"))


def lambda_invoke(payload: Any, rid: str) -> dict[str, Any]:
    return {
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "Content-Type": ["application/json"],
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-RequestId": [rid],
            },
            "HttpHeaders": {
                "Content-Type": "application/json",
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-RequestId": rid,
            },
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": rid},
        "StatusCode": 200,
    }


def http_invoke(answer: Answer) -> dict[str, Any]:
    headers: dict[str, list[str]] = {}
    for name, value in answer.headers:
        headers.setdefault(name, []).append(value)
    return {"Headers": headers, "ResponseBody": answer.body, "StatusCode": answer.status, "StatusText": answer.reason}


def shaped(shape: str, answer: Answer, rid: str) -> Any:
    """The Task's result in the shape its Resource returns."""
    if shape == "lambda_invoke":
        return lambda_invoke(answer.body, rid)
    if shape == "http_invoke":
        return http_invoke(answer)
    if shape == "bedrock":
        return {"Body": answer.body, "ContentType": "application/json"}
    return answer.body


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def failure(shape: str, answer: Answer) -> ApplicationError:
    """A non-2xx answer as the machine sees it: the error its body names ({"error", "cause"},
    or a Lambda runtime's {"errorType", "errorMessage"}), else the one the Resource's own
    service would raise."""
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]:
        cause = body.get("cause")
        return task_error(body["error"], "" if cause is None else _text(cause))
    if isinstance(body, dict) and isinstance(body.get("errorType"), str) and body["errorType"]:
        return task_error(body["errorType"], _text(body))
    said = f"{answer.status} {answer.reason}".strip() + (f": {_text(body)}" if body not in (None, "") else "")
    if shape in ("lambda_invoke", "lambda_arn"):
        return task_error(errors.LAMBDA_SERVICE_EXCEPTION, f"the function's endpoint answered {said}")
    if shape == "http_invoke":
        return task_error(f"States.Http.StatusCode.{answer.status}", _text(http_invoke(answer)))
    return task_failed(f"the endpoint answered {said}")
