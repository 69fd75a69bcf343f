"""The demo's state machine: a competitor brief written in the Amazon States Language. A
Choice checks the input, a Map looks up each competitor at the tenant's own service (an http
Task whose first answer per competitor is "busy", so its Retry shows), a Parallel summarises
with the llm built-in while a scoring service fails into a Catch, a Wait, then the result."""

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console

from devstack.task_service import TaskService
from schema.statuses import TERMINAL

KEY = "competitor-brief"
SUBMISSION = {
    "workflow_key": KEY,
    "input": {"company": "Acme Anvils", "competitors": ["Globex", "Initech", "Umbrella"]},
}
PROFILES = {
    "Globex": {"founded": 1989, "segment": "industrial"},
    "Initech": {"founded": 1996, "segment": "software"},
    "Umbrella": {"founded": 1968, "segment": "pharma"},
}


def machine_definition(service_url: str) -> dict[str, Any]:
    """The definition `make run` stores, its Tasks bound to the service at service_url."""
    lookup = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "LookupCompetitor", "Payload.$": "$"},
        "ResultSelector": {"profile.$": "$.Payload"},
        "OutputPath": "$.profile",
        "Retry": [{"ErrorEquals": ["ServiceBusy"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}],
        "End": True,
    }
    summarise = {
        "Type": "Task",
        "Resource": "lodestone:llm",
        "Parameters": {
            "prompt.$": "States.Format('Summarise where {} stands against these competitors: {}', "
            "$.company, States.JsonToString($.profiles))"
        },
        "ResultSelector": {"text.$": "$.text"},
        "End": True,
    }
    score = {
        "Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:ScoreThreat",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Unscored"}],
        "End": True,
    }
    unscored = {"Type": "Pass", "Parameters": {"score": None, "reason.$": "$.error.Error"}, "End": True}
    return {
        "key": KEY,
        "kind": "state_machine",
        "description": "A competitor brief: look up each competitor, summarise, score",
        "input_schema": {
            "type": "object",
            "required": ["company", "competitors"],
            "properties": {
                "company": {"type": "string"},
                "competitors": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
            },
        },
        "state_machine": {
            "Comment": "Look up each competitor, then summarise and score in parallel",
            "StartAt": "CheckInput",
            "States": {
                "CheckInput": {
                    "Type": "Choice",
                    "Choices": [
                        {
                            "And": [
                                {"Variable": "$.company", "IsString": True},
                                {"Variable": "$.competitors[0]", "IsPresent": True},
                            ],
                            "Next": "LookUpEach",
                        }
                    ],
                    "Default": "NothingToDo",
                },
                "NothingToDo": {"Type": "Fail", "Error": "NoCompetitors", "Cause": "the input names no competitor"},
                "LookUpEach": {
                    "Type": "Map",
                    "ItemsPath": "$.competitors",
                    "MaxConcurrency": 2,
                    "ItemSelector": {"name.$": "$$.Map.Item.Value", "company.$": "$.company"},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "Lookup",
                        "States": {"Lookup": lookup},
                    },
                    "ResultPath": "$.profiles",
                    "Next": "Analyse",
                },
                "Analyse": {
                    "Type": "Parallel",
                    "Branches": [
                        {"StartAt": "Summarise", "States": {"Summarise": summarise}},
                        {"StartAt": "Score", "States": {"Score": score, "Unscored": unscored}},
                    ],
                    "ResultPath": "$.analysis",
                    "Next": "Settle",
                },
                "Settle": {"Type": "Wait", "Seconds": 1, "Next": "Brief"},
                "Brief": {
                    "Type": "Pass",
                    "Parameters": {
                        "company.$": "$.company",
                        "competitors.$": "$.profiles",
                        "summary.$": "$.analysis[0].text",
                        "threat.$": "$.analysis[1]",
                    },
                    "End": True,
                },
            },
        },
        "resources": [
            {"function": "LookupCompetitor", "http": {"url": f"{service_url}/lookup"}},
            {"function": "ScoreThreat", "http": {"url": f"{service_url}/score"}},
        ],
    }


class _Lookups:
    """The lookup route: each competitor's first call is answered busy (503 ServiceBusy)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, body: Any) -> Any:
        name = str((body or {}).get("name"))
        with self._lock:
            first = name not in self.seen
            self.seen.add(name)
        if first:
            return 503, {"error": "ServiceBusy", "cause": f"lookup of {name} is queued, try again"}
        if name not in PROFILES:
            return 404, {"error": "UnknownCompetitor", "cause": name}
        return {"name": name, **PROFILES[name]}


def service(secret: str, port: int = 0) -> TaskService:
    unavailable = (500, {"error": "ModelUnavailable", "cause": "the threat model is offline"})
    return TaskService(secret, {"lookup": _Lookups(), "score": [unavailable]}, port=port)


@dataclass
class MachineResult:
    job_id: str
    status: str
    output: Any
    states: list[str] = field(default_factory=list)  # "entered" states, in order
    retries: int = 0
    caught: list[str] = field(default_factory=list)
    signed_calls: int = 0
    calls: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded" and self.signed_calls == self.calls > 0

    def lines(self) -> list[str]:
        return [
            f"machine:   {self.job_id} (status: {self.status}); {len(self.states)} states entered, "
            f"{self.retries} retries, caught {', '.join(self.caught) or 'nothing'}; "
            f"{self.signed_calls}/{self.calls} service calls signed",
            f"output:    {self.output}",
        ]


def run_machine(
    api: httpx.Client,
    secret: str,
    port: int,
    console: Console,
    alive: Callable[[], None],
    timeout: float = 120,
    keep: ExitStack | None = None,
) -> MachineResult:
    """Stores the definition, submits the sample, follows the job to its end. With `keep`, the
    service stays up until that stack closes (`lodestone dev`: the definition stays runnable)."""
    with ExitStack() as own:
        svc = (keep or own).enter_context(service(secret, port=port))
        resp = api.post("/v1/workflows", json=machine_definition(svc.url))
        if resp.is_error:
            raise RuntimeError(f"storing the state machine answered {resp.status_code}: {resp.text[:500]}")
        resp = api.post("/v1/submissions", json=SUBMISSION, headers={"Idempotency-Key": uuid.uuid4().hex})
        if resp.is_error:
            raise RuntimeError(f"submitting the state machine answered {resp.status_code}: {resp.text[:500]}")
        job_id = resp.json()["job_id"]
        deadline = time.monotonic() + timeout
        with console.status(f"state machine {job_id}") as status:
            while True:
                alive()
                job = api.get(f"/v1/jobs/{job_id}").json()
                path = job.get("path") or []
                current = next((e["state"] for e in reversed(path) if e["kind"] == "entered"), "-")
                status.update(f"state machine {job_id}: {job['status']} at {current}")
                if job["status"] in TERMINAL or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        calls = list(svc.calls)
    return MachineResult(
        job_id,
        job["status"],
        job.get("output") if job["status"] == "succeeded" else job.get("error"),
        [e["state"] for e in path if e["kind"] == "entered"],
        sum(e["kind"] == "retry" for e in path),
        [f"{e['state']}: {e['error']}" for e in path if e["kind"] == "caught"],
        sum(c.verified for c in calls),
        len(calls),
    )
