"""A draft bindings file for a state machine: one binding per Lambda function (by name) and
per other resource (by its Resource string), each to an http endpoint placeholder the tenant
fills in. Resources that need no binding (http:invoke, bedrock:invokeModel, which runs as the
built-in ``llm``, and ``lodestone:*``) get none. A lambda:invoke whose FunctionName is
computed gets a catch-all ``function: "*"`` binding, last, since its name is known only when it
runs. A run-and-wait Resource (``.sync``, ``.sync:2``, other than states:startExecution) is
drafted with ``"sync": "answer"``: its endpoint answers when the work is done (``"callback"``
is the other mode, sync_mode.py)."""

from __future__ import annotations

import re
from typing import Any

from .bindings import _split
from .inventory import AT_RUN_TIME, NATIVE, inventory
from .sync_mode import ANSWER, run_and_wait

__all__ = ["PLACEHOLDER_HOST", "suggest"]

PLACEHOLDER_HOST = "https://CHANGE-ME.example.com"


def _slug(text: str) -> str:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    return re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")[:60] or "task"


def _route(resource: str) -> str:
    """``arn:aws:states:::sns:publish`` -> ``sns-publish``; ``...:aws-sdk:s3:getObject`` -> ``s3-get-object``."""
    parts = _split(resource)
    tail = ":".join(parts[5:]) if parts[0] == "arn" and len(parts) > 5 else resource
    return _slug(tail.removeprefix("aws-sdk:"))


def suggest(state_machine: Any) -> list[dict[str, Any]]:
    """The draft bindings, in the order the Tasks first use them."""
    drafts: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    computed = False
    for r in inventory(state_machine, []).resources:
        if r.status == NATIVE:
            continue
        if r.status == AT_RUN_TIME:
            computed = True
            continue
        matcher, value = ("function", r.function) if r.function else ("resource", r.resource)
        if (matcher, value) in seen:
            continue
        seen.add((matcher, value))
        route = _slug(value) if matcher == "function" else _route(value)
        http: dict[str, Any] = {"url": f"{PLACEHOLDER_HOST}/{route}"}
        if matcher == "resource" and run_and_wait(value) is not None:
            http["sync"] = ANSWER
        drafts.append({matcher: value, "http": http})
    if computed:
        drafts.append({"function": "*", "http": {"url": f"{PLACEHOLDER_HOST}/lambda"}})
    return drafts
