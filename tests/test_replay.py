"""Every checked-in history replays against the current workflow code. A change that
breaks determinism for running workflows fails here (re-record: python -m tests.histories.record)."""

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
KNOWN_TYPES = {w.__name__ for w in WORKFLOWS}


def workflow_type(path: Path) -> str:
    first = json.loads(path.read_text())["events"][0]
    return first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]


def test_every_workflow_type_has_a_history():
    assert HISTORIES, "no histories checked in"
    assert KNOWN_TYPES <= {workflow_type(p) for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path):
    assert workflow_type(path) in KNOWN_TYPES
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await Replayer(workflows=WORKFLOWS).replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
