"""Every activity call in workflow code sets start_to_close_timeout and a retry policy, and
every long activity also sets heartbeat_timeout (and its implementation heartbeats)."""

import ast
import inspect
from pathlib import Path

import pytest

from activities.email_delivery import EmailDelivery
from activities.ingest import IngestActivities
from activities.render import RenderActivities
from activities.steps import StepActivities

WORKFLOW_FILES = sorted((Path(__file__).parent.parent / "workflows").glob("*.py"))
CALLS = {"execute_activity_method", "start_activity_method", "execute_activity", "start_activity"}
LONG = {"run_step", "render", "ingest_input", "deliver_email", "send_email"}


def activity_calls() -> list[tuple[str, ast.Call]]:
    found = []
    for path in WORKFLOW_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in CALLS:
                found.append((f"{path.name}:{node.lineno}", node))
    return found


def test_workflows_call_activities():
    assert len(activity_calls()) >= 6


@pytest.mark.parametrize("where,call", activity_calls(), ids=[w for w, _ in activity_calls()])
def test_every_call_has_timeouts(where, call):
    kwargs = {k.arg for k in call.keywords}
    assert "start_to_close_timeout" in kwargs, where
    assert "retry_policy" in kwargs, where
    target = call.args[0]
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    if name in LONG:
        assert "heartbeat_timeout" in kwargs, f"{where}: {name} is long and must heartbeat"


@pytest.mark.parametrize(
    "method", [StepActivities._attempt, RenderActivities._pdf, IngestActivities._copy, EmailDelivery._send]
)
def test_long_activities_heartbeat(method):
    source = inspect.getsource(method)
    assert "heartbeating()" in source or "activity.heartbeat(" in source
