"""Run-and-wait Resources (``.sync``, ``.sync:2``) of services other than
``states:startExecution`` (which starts a child execution, child_execution.py): a Glue job run,
an Athena query, a Batch job, an ECS task, a CodeBuild build. Their binding's ``http`` object
says how the work's end is known, in ``sync``:

- ``"answer"``: the endpoint answers when the work is done; the answer's JSON is the result.
  The call waits up to the Task's ``TimeoutSeconds`` (else a Task's one hour), heartbeating.
- ``"callback"``: the endpoint answers at once (202), then reports the outcome through the
  task-token routes; the token goes in the request's ``Lodestone-Task-Token`` header, and
  ``TimeoutSeconds``/``HeartbeatSeconds`` bound the wait, as for ``.waitForTaskToken``.

The llm, render and deliver built-ins answer when their work is done: bound to one, a ``.sync``
Resource runs as ``"answer"``. A ``.sync`` Resource whose http binding names no mode is refused
when the definition is stored (``unmoded``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .bindings import START_EXECUTION, _service, resolve
from .validate import task_resources

__all__ = ["ANSWER", "CALLBACK", "MODES", "TOKEN_HEADER", "mode", "run_and_wait", "unmoded", "unmoded_message"]

ANSWER, CALLBACK = "answer", "callback"
MODES = (ANSWER, CALLBACK)
SUFFIXES = (".sync:2", ".sync")
TOKEN_HEADER = "Lodestone-Task-Token"
ANSWER_WAIT_MAX_SECONDS = 3600.0  # a Task with no TimeoutSeconds: one hour per attempt


def run_and_wait(resource: str) -> str | None:
    """``.sync`` or ``.sync:2`` for a run-and-wait Resource other than startExecution; else None."""
    service = _service(resource)
    if service is not None and service.startswith(START_EXECUTION):
        return None
    return next((s for s in SUFFIXES if resource.endswith(s)), None)


def mode(resource: str, payload: Any, bindings: list[dict[str, Any]]) -> str | None:
    """How a run-and-wait Resource's binding waits (ANSWER or CALLBACK); None when the Resource
    is not one, nothing binds it, or its http binding names no mode."""
    if run_and_wait(resource) is None:
        return None
    found = resolve(resource, payload, bindings)
    if found is None:
        return None
    if found.handler != "http":
        return ANSWER  # llm, render, deliver answer when their work is done
    named = found.settings.get("sync")
    return named if named in MODES else None


def unmoded(state_machine: Mapping[str, Any], bindings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(pointer, Resource) of every bound run-and-wait Task whose binding names no mode
    (an unbound one is reported by bindings.unbound)."""
    out = []
    for pointer, resource in task_resources(state_machine):
        if run_and_wait(resource) is None:
            continue
        if resolve(resource, {}, bindings) is not None and mode(resource, {}, bindings) is None:
            out.append((pointer, resource))
    return out


def unmoded_message(resource: str) -> str:
    return (
        f"{resource!r} runs and waits for the work's end: its binding's http object says how, with "
        '"sync": "answer" (the endpoint answers when the work is done) or "sync": "callback" '
        "(it answers 202 at once and reports through POST /v1/task-tokens/{token}/success or /failure)"
    )
