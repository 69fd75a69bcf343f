"""Every checked-in history replays against the current workflow code, through the same
cli.replay path as `lodestone ops history replay`. A change that breaks determinism
for running workflows fails here (re-record: python -m tests.histories.record; the cancelled
jobs' histories: python -m tests.histories.record_cancelled)."""

import base64
import json
from pathlib import Path

import pytest

from cli.replay import HistoryUnreadable, load_history, registered_workflows, replay, workflow_type

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
KNOWN_TYPES = {w.__name__ for w in registered_workflows()}


def test_every_workflow_type_has_a_history():
    assert HISTORIES, "no histories checked in"
    assert KNOWN_TYPES <= {workflow_type(load_history(p.read_text(), p.stem)) for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path):
    outcome = await replay(load_history(path.read_text(), path.stem))
    assert outcome.workflow_type in KNOWN_TYPES
    assert outcome.ok, outcome.error


def rename_first_activity(doc: dict, old: str, new: str) -> dict:
    for event in doc["events"]:
        scheduled = event.get("activityTaskScheduledEventAttributes")
        if scheduled and scheduled["activityType"]["name"] == old:
            scheduled["activityType"]["name"] = new
            return doc
    raise AssertionError(f"no {old} activity in the history")


async def test_a_history_the_code_no_longer_matches_fails():
    # As if the workflow had once called an activity the current code does not: nondeterminism.
    doc = json.loads((Path(__file__).parent / "histories" / "submission_delivered_before_split.json").read_text())
    outcome = await replay(load_history(json.dumps(rename_first_activity(doc, "load_plan", "load_plan_v0"))))
    assert not outcome.ok
    assert "load_plan_v0" in (outcome.error or "") and "nondetermin" in (outcome.error or "").lower()


def test_unreadable_histories_are_named_errors():
    for text in ("not json", "{}", '{"events": [{"eventId": "1"}]}'):
        with pytest.raises(HistoryUnreadable):
            load_history(text)


STATE_TYPES = {"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"}


def _machine_state_types(doc: dict) -> set[str]:
    """The state types of the machine a StateMachineWorkflow history ran (its load_machine result)."""
    scheduled = {
        e["eventId"]
        for e in doc["events"]
        if e.get("activityTaskScheduledEventAttributes", {}).get("activityType", {}).get("name") == "load_machine"
    }
    for e in doc["events"]:
        done = e.get("activityTaskCompletedEventAttributes")
        if done and done["scheduledEventId"] in scheduled:
            plan = json.loads(base64.b64decode(done["result"]["payloads"][0]["data"]))
            found: set[str] = set()
            _collect(plan["state_machine"], found)
            return found
    raise AssertionError("no load_machine result in the history")


def _collect(machine: dict, found: set[str]) -> None:
    for state in machine["States"].values():
        found.add(state["Type"])
        for sub in [*state.get("Branches", []), *[state[k] for k in ("ItemProcessor", "Iterator") if k in state]]:
            _collect(sub, found)


def test_every_state_type_has_a_recorded_history():
    machines = [p for p in HISTORIES if p.stem.startswith("machine_")]
    types = [_machine_state_types(json.loads(p.read_text())) for p in machines]
    assert set().union(*types) == STATE_TYPES
