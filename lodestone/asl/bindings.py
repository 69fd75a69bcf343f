"""Resource bindings: what a Task's Resource runs. A definition's ``resources`` list binds a
Lambda function name (``function``) or a Resource string (``resource``), exact or with ``*``
wildcards, to one handler (``http``, ``llm``, ``render``, ``deliver``); the first binding that
matches wins. ``http:invoke``, ``bedrock:invokeModel`` and the ``lodestone:*`` built-ins need
none. The shape says how the handler's answer is returned, so a definition runs as written:
``$.Payload`` of an optimized ``lambda:invoke``, the JSON itself for a bare Lambda ARN.

Function names take every form Lambda's FunctionName takes: ``Name``, ``Name:qualifier``,
``123456789012:function:Name``, ``arn:aws:lambda:region:acct:function:Name[:qualifier]``;
``${...}`` template placeholders are kept whole. A ``function`` pattern matches the name, or
``Name:qualifier`` when there is a qualifier (so ``Fn:prod`` binds only that alias).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .bindings_check import check_bindings
from .validate import task_resources

__all__ = ["BUILT_INS", "HANDLERS", "Resolved", "check_bindings", "function_name", "resolve", "unbound"]

HANDLERS = ("http", "llm", "render", "deliver")
BUILT_INS = {f"lodestone:{h}": h for h in HANDLERS}
LAMBDA_INVOKE = "lambda:invoke"
HTTP_INVOKE = "http:invoke"
BEDROCK_INVOKE = "bedrock:invokeModel"
# The callback pattern: the Resource's request is sent as without it, then the Task waits for
# its task token (machine_task.py); a `resource` binding may name it with or without the suffix.
CALLBACK_SUFFIX = ".waitForTaskToken"

START_EXECUTION = "states:startExecution"  # and .sync, .sync:2: a child execution
CHILD = "child_execution"

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


@dataclass(frozen=True)
class Resolved:
    handler: str  # "http" | "llm" | "render" | "deliver"
    settings: dict[str, Any] = field(default_factory=dict)  # the binding's handler object
    shape: str = "plain"  # "lambda_invoke" | "lambda_arn" | "http_invoke" | "bedrock" | "plain"
    function: str | None = None  # the Lambda function name, when there is one


def _split(value: str) -> list[str]:
    """Split on ':' outside ${...} placeholders (CloudFormation's ${AWS::Region})."""
    held: list[str] = []

    def hold(m: re.Match[str]) -> str:
        held.append(m.group(0))
        return f"\x00{len(held) - 1}\x00"

    parts = _PLACEHOLDER.sub(hold, value).split(":")
    return [re.sub(r"\x00(\d+)\x00", lambda m: held[int(m.group(1))], p) for p in parts]


def function_name(value: str) -> tuple[str, str | None] | None:
    """(name, qualifier) of a FunctionName in any of its forms, or None when it names none."""
    parts = _split(value)
    if "function" in parts:  # a full or partial ARN
        i = parts.index("function")
        if parts[0] == "arn" and (len(parts) < 3 or parts[2] != "lambda"):
            return None
        rest = parts[i + 1 :]
    else:
        rest = parts
    if not rest or not rest[0] or len(rest) > 2:
        return None
    return rest[0], (rest[1] or None) if len(rest) == 2 else None


def _service(resource: str) -> str | None:
    """The service part of an ``arn:<partition>:states:<region>:<account>:<service>`` Resource."""
    parts = _split(resource)
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "states":
        return ":".join(parts[5:])
    return None


def _lambda_arn(resource: str) -> tuple[str, str | None] | None:
    parts = _split(resource)
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "lambda" and parts[5] == "function":
        return function_name(resource)
    return None


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(p) for p in pattern.split("*")), re.DOTALL)


def matches(pattern: str, value: str) -> bool:
    """Exact, or with ``*`` matching any run of characters (nothing else is special)."""
    return _pattern(pattern).fullmatch(value) is not None


def _handler_of(binding: Mapping[str, Any]) -> str | None:
    found = [h for h in HANDLERS if h in binding]
    return found[0] if len(found) == 1 else None


def _payload_function(payload: Any) -> tuple[str, str | None] | None:
    if not isinstance(payload, Mapping) or not isinstance(payload.get("FunctionName"), str):
        return None
    named = function_name(payload["FunctionName"])
    if named and named[1] is None and isinstance(payload.get("Qualifier"), str):
        return named[0], payload["Qualifier"]
    return named


def resolve(resource: str, payload: Any, bindings: list[dict[str, Any]]) -> Resolved | None:
    """The handler a Task runs, from its Resource and its evaluated payload (Parameters or
    Arguments); None when nothing binds it. A callback Resource resolves as its request does."""
    written = resource
    resource = resource.removesuffix(CALLBACK_SUFFIX)
    service = _service(resource)
    named: tuple[str, str | None] | None = None
    shape = "plain"
    if service == LAMBDA_INVOKE:
        named, shape = _payload_function(payload), "lambda_invoke"
    elif (arn := _lambda_arn(resource)) is not None:
        named, shape = arn, "lambda_arn"
    elif service == HTTP_INVOKE:
        shape = "http_invoke"
    elif service == BEDROCK_INVOKE:
        shape = "bedrock"
    function = named[0] if named else None
    for binding in bindings:
        if not isinstance(binding, Mapping) or (handler := _handler_of(binding)) is None:
            continue
        if isinstance(binding.get("resource"), str):
            hit = matches(binding["resource"], written) or matches(binding["resource"], resource)
        elif isinstance(binding.get("function"), str) and named is not None:
            name, qualifier = named
            hit = matches(binding["function"], name) or (
                qualifier is not None and matches(binding["function"], f"{name}:{qualifier}")
            )
        else:
            hit = False
        if hit:
            settings = binding[handler]
            return Resolved(handler, dict(settings) if isinstance(settings, Mapping) else {}, shape, function)
    if shape == "http_invoke":
        return Resolved("http", {}, shape)
    if service is not None and service.startswith(START_EXECUTION):  # the workflow starts a child
        return Resolved(CHILD, {}, CHILD)
    if shape == "bedrock":
        return Resolved("llm", {}, shape)
    if resource in BUILT_INS:
        return Resolved(BUILT_INS[resource], {}, "plain")
    return None


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("{%")


def _static_payload(state: Mapping[str, Any]) -> Any | None:
    """What resolve() can know of a lambda:invoke's payload before it runs; None when its
    FunctionName is computed (``FunctionName.$``, a JSONata expression): resolved at run time."""
    for key in ("Parameters", "Arguments"):
        args = state.get(key)
        if _is_expression(args):
            return None
        if isinstance(args, Mapping):
            if "FunctionName.$" in args or _is_expression(args.get("FunctionName")):
                return None
            return {k: v for k, v in args.items() if k in ("FunctionName", "Qualifier") and not _is_expression(v)}
    return {}


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _state_at(machine: Mapping[str, Any], resource_pointer: str) -> Mapping[str, Any]:
    node: Any = machine
    for token in resource_pointer.split("/")[1:-1]:  # down to the state; "Resource" is last
        node = node[int(token)] if isinstance(node, list) else node[_unescape(token)]
    return node  # type: ignore[no-any-return]


def unbound(state_machine: Mapping[str, Any], bindings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(pointer relative to the state machine, Resource) of every Task, nested ones included,
    that resolve() cannot bind. A lambda:invoke whose FunctionName is computed is not reported:
    it is resolved when it runs (and fails then with Lodestone.UnboundResource if nothing binds it)."""
    out = []
    for pointer, resource in task_resources(state_machine):
        payload: Any = {}
        if _service(resource.removesuffix(CALLBACK_SUFFIX)) == LAMBDA_INVOKE:
            payload = _static_payload(_state_at(state_machine, pointer))
            if payload is None:
                continue
        if resolve(resource, payload, bindings) is None:
            out.append((pointer, resource))
    return out
