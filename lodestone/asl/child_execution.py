"""Child executions: a Task whose Resource is ``arn:aws:states:::states:startExecution``
starts another of the tenant's stored state machines, as Step Functions' StartExecution does;
``.sync`` waits for it and answers DescribeExecution's shape with ``Output`` as a JSON string,
``.sync:2`` the same with ``Output`` as JSON. Pure: names, keys and result shapes only (the
workflow side is workflows/machine_children.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import ASLError

START_EXECUTION = "states:startExecution"
FIRE_AND_FORGET, SYNC, SYNC2 = "", "sync", "sync:2"
INVALID_ARN = "StepFunctions.InvalidArnException"
DOES_NOT_EXIST = "StepFunctions.StateMachineDoesNotExistException"
INVALID_INPUT = "StepFunctions.InvalidExecutionInputException"

_ARN = re.compile(r"arn:[^:]+:states:[^:]*:[^:]*:stateMachine:(?P<key>[^:]+)(?::[^:]+)?")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def mode(resource: str) -> str | None:
    """FIRE_AND_FORGET, SYNC or SYNC2 for a startExecution Resource; None for any other."""
    parts = resource.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "states":
        return None
    service = ":".join(parts[5:])
    for suffix, found in ((".sync:2", SYNC2), (".sync", SYNC), ("", FIRE_AND_FORGET)):
        if service == START_EXECUTION + suffix:
            return found
    return None


def machine_key(value: Any) -> str:
    """The definition key a StateMachineArn names: ``arn:aws:states:<region>:<account>:
    stateMachine:<key>`` (a version or alias suffix is ignored: the key's current version
    runs), or the bare key."""
    if isinstance(value, str):
        found = _ARN.fullmatch(value)
        key = found.group("key") if found else value
        if _KEY.fullmatch(key):
            return key
    raise ASLError(INVALID_ARN, f"Invalid StateMachineArn: {json.dumps(value)[:200]}")


def request(payload: Any) -> tuple[str, Any, str | None]:
    """(key, input, name) from the Task's Parameters: StateMachineArn, Input (absent: {}; a JSON
    string is parsed, as Step Functions takes a string input), Name."""
    if not isinstance(payload, Mapping) or "StateMachineArn" not in payload:
        raise ASLError(INVALID_ARN, "startExecution needs Parameters with a StateMachineArn")
    value = payload.get("Input", {})
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise ASLError(INVALID_INPUT, f"Input is not JSON: {e}") from e
    name = payload.get("Name")
    return machine_key(payload["StateMachineArn"]), value, name if isinstance(name, str) else None


def execution_arn(tenant_id: str, key: str, job_id: str) -> str:
    """The child's ExecutionArn: what ``$$.Execution.Id`` is in the child."""
    return f"lodestone:{tenant_id}:{key}:{job_id}"


def state_machine_arn(tenant_id: str, key: str) -> str:
    return f"lodestone:{tenant_id}:stateMachine:{key}"


def started(arn: str, start_ms: int) -> dict[str, Any]:
    """Fire-and-forget's result, as StartExecution answers."""
    return {"ExecutionArn": arn, "StartDate": start_ms}


def described(found: Mapping[str, Any], sync_mode: str) -> dict[str, Any]:
    """DescribeExecution's shape of a finished child (``found``: execution_arn, state_machine_arn,
    name, status, start_ms, stop_ms, input, output, error, cause)."""
    out: dict[str, Any] = {
        "ExecutionArn": found["execution_arn"],
        "StateMachineArn": found["state_machine_arn"],
        "Name": found["name"],
        "Status": found["status"],
        "StartDate": found["start_ms"],
        "StopDate": found["stop_ms"],
        "Input": json.dumps(found["input"], separators=(",", ":")),
        "InputDetails": {"Included": True},
    }
    if found["status"] == "SUCCEEDED":
        output = found["output"]
        out["Output"] = output if sync_mode == SYNC2 else json.dumps(output, separators=(",", ":"))
        out["OutputDetails"] = {"Included": True}
    else:
        out["Error"] = found.get("error")
        out["Cause"] = found.get("cause")
    return out
