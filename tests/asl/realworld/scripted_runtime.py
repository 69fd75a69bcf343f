"""A test Runtime for lodestone.asl.machine.run that performs each Task as a real HTTP call.

It resolves the Task's binding with lodestone.asl.bindings.resolve, sends the payload to the
bound URL (a scripted stand-in endpoint in these tests) and shapes the answer as the
contract's Task activity does: the lambda:invoke envelope, the http:invoke envelope, or the
JSON itself. Time is virtual: a machine second is a millisecond of real time, and now() moves
with the timers. UUIDs count up (00000000-0000-4000-8000-000000000001, ...) and random() comes
from a seeded generator, so a case's expected values can name them.
"""

import asyncio
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from lodestone.asl.bindings import resolve
from lodestone.asl.errors import ASLError
from lodestone.asl.functions import Sources
from lodestone.asl.machine import Event, TaskCall
from tests.asl.realworld.cases import entered

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
START_TEXT = "2024-05-01T12:00:00.000Z"
TIME_SCALE = 0.001  # real seconds per machine second
ACCOUNT = "123456789012"


def uuid_n(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def context(case: str, input: Any) -> dict[str, Any]:
    """The "$$" object's Execution and StateMachine entries every case runs with."""
    return {
        "Execution": {
            "Id": f"arn:aws:states:us-east-1:{ACCOUNT}:execution:{case}:run-1",
            "Name": "run-1",
            "StartTime": START_TEXT,
            "Input": input,
        },
        "StateMachine": {"Id": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{case}", "Name": case},
    }


@dataclass
class ScriptedRuntime:
    bindings: list[dict[str, Any]]
    client: httpx.AsyncClient
    events: list[Event] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)  # completed timers, in the order they ended
    calls: list[TaskCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._elapsed = 0.0
        self._uuids = itertools.count(1)
        self._requests = itertools.count(1)
        rng = random.Random(17)
        self.sources = Sources(
            random=rng.random,
            uuid=lambda: uuid_n(next(self._uuids)),
            now_millis=lambda: int(self.now().timestamp() * 1000),
        )

    def now(self) -> datetime:
        return START + timedelta(seconds=self._elapsed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds * TIME_SCALE)
        self._elapsed += seconds
        self.sleeps.append(seconds)

    def record(self, event: Event) -> None:
        self.events.append(event)

    def entered(self) -> list[str]:
        """The top-level states entered, in order."""
        return entered([(e.kind, e.state, e.path) for e in self.events])

    async def run_task(self, call: TaskCall) -> Any:
        self.calls.append(call)
        return await perform(self.client, self.bindings, call.resource, call.payload, self._request_id)

    def _request_id(self) -> str:
        return f"req-{next(self._requests)}"


async def perform(
    client: httpx.AsyncClient,
    bindings: list[dict[str, Any]],
    resource: str,
    payload: Any,
    request_id: Callable[[], str],
) -> Any:
    """One Task over real HTTP: the resource's binding resolved, the payload sent to its URL and
    the answer shaped by the binding's shape; a failure is the ASLError the contract names.
    ``request_id`` gives each lambda:invoke envelope its RequestId."""
    resolved = resolve(resource, payload, bindings)
    if resolved is None:
        raise ASLError("States.TaskFailed", f"Lodestone.UnboundResource: {resource}")
    if resolved.handler != "http":
        raise ASLError("States.TaskFailed", f"the test runtime only scripts http handlers, not {resolved.handler}")
    if resolved.shape == "http_invoke":
        return await _http_invoke(client, payload)
    url, method = resolved.settings["url"], resolved.settings.get("method", "POST")
    body = payload
    if resolved.shape == "lambda_invoke":
        body = payload.get("Payload", {}) if isinstance(payload, dict) else {}
    response = await client.request(method, url, json=body)
    answer = response.json() if response.content else None
    if not response.is_success:
        raise _error(resolved.shape, response.status_code, answer)
    if resolved.shape == "lambda_invoke":
        return {
            "ExecutedVersion": "$LATEST",
            "Payload": answer,
            "SdkHttpMetadata": {"HttpHeaders": {"Content-Type": "application/json"}, "HttpStatusCode": 200},
            "SdkResponseMetadata": {"RequestId": request_id()},
            "StatusCode": 200,
        }
    return answer


async def _http_invoke(client: httpx.AsyncClient, p: dict[str, Any]) -> Any:
    body = p.get("RequestBody")
    response = await client.request(
        p.get("Method", "GET"),
        p["ApiEndpoint"],
        headers=p.get("Headers"),
        params=p.get("QueryParameters"),
        content=None if body is None else (body if isinstance(body, str) else json.dumps(body)),
    )
    answer = response.json() if response.content else None
    if not response.is_success:
        raise _error("http_invoke", response.status_code, answer)
    return {
        "Headers": dict(response.headers),
        "ResponseBody": answer,
        "StatusCode": response.status_code,
        "StatusText": response.reason_phrase,
    }


def _error(shape: str, status: int, answer: Any) -> ASLError:
    """The contract's error names: the body's ``error`` when it has one, else by shape."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return ASLError(answer["error"], str(answer.get("cause", "")))
    if shape in ("lambda_invoke", "lambda_arn"):
        name = "Lambda.ServiceException"
    elif shape == "http_invoke":
        name = f"States.Http.StatusCode.{status}"
    else:
        name = "States.TaskFailed"
    return ASLError(name, json.dumps(answer))
