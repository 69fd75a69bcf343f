"""Replaying a recorded workflow history against the current workflow code: the one path
that tests/test_replay.py and `lodestone ops history replay` share. A change that would
break the running workflows of that history fails here instead of in production.

A history holds offloaded payloads as references (lodestone.payload_codec): replaying it
fetches them from the object store, through the converter given (the CLI passes its
deployment's), as a worker would."""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

if TYPE_CHECKING:
    from temporalio.converter import DataConverter
    from temporalio.runtime import Runtime


# The core wraps the reason in a Rust debug dump: `Failure { failure: Some(Failure { message: "..." ...`.
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


class HistoryUnreadable(ValueError):
    """Not a workflow history in Temporal's JSON form."""


@dataclass
class ReplayOutcome:
    workflow_id: str
    workflow_type: str
    events: int
    error: str | None = None  # None: the current code makes the same decisions as the recorded run

    @property
    def ok(self) -> bool:
        return self.error is None


def registered_workflows() -> list[type]:
    from worker import WORKFLOWS  # the list the worker registers: replay what production runs

    return list(WORKFLOWS)


def _started(doc: dict[str, Any]) -> dict[str, Any]:
    try:
        return doc["events"][0]["workflowExecutionStartedEventAttributes"]
    except (KeyError, IndexError, TypeError) as e:
        raise HistoryUnreadable("the first event is not a WorkflowExecutionStarted event") from e


def load_history(text: str, fallback_id: str = "replayed") -> WorkflowHistory:
    """Parse exported history JSON. The workflow id comes from the start event when the
    server recorded it there, else fallback_id (e.g. the file's name)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise HistoryUnreadable(f"not JSON: {e}") from e
    workflow_id = _started(doc).get("workflowId") or fallback_id
    try:
        return WorkflowHistory.from_json(workflow_id, doc)
    except Exception as e:  # protobuf's ParseError and friends: the JSON is not a history
        raise HistoryUnreadable(f"not a workflow history: {e}") from e


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


async def replay(
    history: WorkflowHistory,
    workflows: Sequence[type] | None = None,
    runtime: "Runtime | None" = None,
    data_converter: "DataConverter | None" = None,
) -> ReplayOutcome:
    workflows = registered_workflows() if workflows is None else workflows
    kind = workflow_type(history)
    outcome = ReplayOutcome(history.workflow_id, kind, len(history.events))
    if kind not in {w.__name__ for w in workflows}:
        outcome.error = f"workflow type {kind!r} is not registered in this build"
        return outcome
    converter = {"data_converter": data_converter} if data_converter is not None else {}
    # debug_mode lifts the 2 s deadlock limit (the sandbox stays): a replay checks determinism,
    # and a run that carried megabytes of state may take longer than that on a loaded machine.
    replayer = Replayer(workflows=workflows, runtime=runtime, debug_mode=True, **converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        found = _CORE_MESSAGE.search(str(result.replay_failure))
        outcome.error = f"{type(result.replay_failure).__name__}: {found.group(1) if found else result.replay_failure}"
    return outcome
