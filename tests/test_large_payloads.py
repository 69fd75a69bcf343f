"""State data far past Temporal's payload limits, on the session stack: a Task's 5 MB answer
passes through two Pass states to a Succeed, whole, while every payload in the run's history
stays under TEMPORAL_PAYLOAD_OFFLOAD_BYTES (the large ones travel as object-store references),
and `lodestone ops history replay` replays that history. An answer past
MACHINE_TASK_RESULT_MAX_BYTES is still States.DataLimitExceeded."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from cli.replay import load_history, replay
from devstack.task_service import TaskService
from lodestone.payload_codec import ENCODING
from tests.helpers import create_workflow, wait_job
from tests.machine_tasks_support import build, close, task
from tests.test_ops import ops

ROWS = 50_000
INVOKE = "arn:aws:states:::lambda:invoke"


def export_document() -> dict[str, Any]:
    """About 5 MB of JSON, every row its own (so a lost or reordered chunk shows)."""
    rows = [{"i": i, "sku": f"SKU-{i:06d}", "note": f"café row {i} " + "x" * 60} for i in range(ROWS)]
    return {"rows": rows, "total": ROWS}


def machine(url: str) -> dict[str, Any]:
    return {
        "key": f"large-{uuid.uuid4().hex[:8]}",
        "kind": "state_machine",
        "state_machine": {
            "StartAt": "Export",
            "States": {
                "Export": {
                    "Type": "Task",
                    "Resource": INVOKE,
                    "Parameters": {"FunctionName": "ExportAll", "Payload.$": "$"},
                    "ResultSelector": {"report.$": "$.Payload"},
                    "Next": "Count",
                },
                "Count": {
                    "Type": "Pass",
                    "Parameters": {"report.$": "$.report", "rows.$": "States.ArrayLength($.report.rows)"},
                    "Next": "Keep",
                },
                "Keep": {"Type": "Pass", "Next": "Done"},
                "Done": {"Type": "Succeed"},
            },
        },
        "resources": [{"function": "ExportAll", "http": {"url": f"{url}/export"}}],
    }


def payloads(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere in a history event (inputs, results, headers, failures, memos)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = value.values()
        elif isinstance(value, Message):
            items = [value]
        else:  # a repeated field
            items = value
        for item in items:
            if isinstance(item, Message):
                yield from payloads(item)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return export_document()


@pytest.fixture(scope="module")
async def large_job(tenant_a, document) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with TaskService(tenant_a.webhook_secret, {"export": lambda _body: document}) as svc:
        await create_workflow(tenant_a.api, body := machine(svc.url))
        resp = await tenant_a.api.post(
            "/v1/submissions", json={"workflow_key": body["key"], "input": {"since": "2026-01-01"}}
        )
        assert resp.status_code == 202, resp.text
        return await wait_job(tenant_a.api, resp.json()["job_id"], timeout=120)


async def test_a_5mb_task_result_passes_through_three_states_whole(large_job, document, settings):
    assert len(json.dumps(document).encode()) > 5_000_000
    assert large_job["status"] == "succeeded", large_job
    assert large_job["output"] == {"report": document, "rows": ROWS}
    exited = {e["state"]: e["output"] for e in large_job["path"] if e["kind"] == "exited"}
    assert list(exited) == ["Export", "Count", "Keep", "Done"]
    # The path keeps the value's first MACHINE_PATH_VALUE_MAX_BYTES, cut
    whole = json.dumps({"report": document}, ensure_ascii=False, separators=(",", ":")).encode()
    head = whole[: settings.machine_path_value_max_bytes].decode(errors="ignore")
    assert exited["Export"] == {"truncated": True, "preview": head}


async def test_no_payload_in_its_history_is_over_the_threshold(large_job, temporal, settings):
    threshold = settings.temporal_payload_offload_bytes  # the worker's: the stack sets no other
    history = await temporal.get_workflow_handle(large_job["id"]).fetch_history()
    found = [p for event in history.events for p in payloads(event)]
    sizes = [p.ByteSize() for p in found]
    assert max(sizes) <= threshold

    refs = [json.loads(p.data) for p in found if p.metadata.get("encoding") == ENCODING]
    # The Task's answer (run_machine_task's result) and the machine's output (finish_machine's
    # input) each went by reference, each over 5 MB; the Pass states' values never left the workflow.
    assert sum(r["bytes"] > 5_000_000 for r in refs) >= 2
    for ref in refs:
        stored = settings.data_path / "objects" / ref["offloaded"]
        assert stored.stat().st_size == ref["bytes"]
    completed = [
        e.activity_task_completed_event_attributes.result.payloads[0]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]
    assert any(p.metadata["encoding"] == ENCODING for p in completed)


async def test_its_history_replays_with_the_codec_and_not_without(large_job, settings, tmp_path):
    exported = tmp_path / "large.json"
    code, _, err = await ops(settings, "history", "export", large_job["id"], "-o", str(exported))
    assert code == 0, err
    code, out, err = await ops(settings, "history", "replay", str(exported))
    assert code == 0 and out.startswith(f"OK: StateMachineWorkflow {large_job['id']} replayed"), (out, err)
    # Temporal's own converter cannot read the references: the codec is what made it replay.
    outcome = await replay(load_history(exported.read_text()))
    assert outcome.error is not None and "Failed decoding" in outcome.error


async def test_an_answer_past_the_result_limit_is_data_limit_exceeded(settings, engine, tenant_a):
    limited = settings.model_copy(update={"machine_task_result_max_bytes": 1000})
    acts = build(limited, engine)
    answers = {"fits": {"pad": "x" * (1000 - 11)}, "over": {"pad": "x" * (1001 - 11)}}  # 11: {"pad": ""}
    try:
        with TaskService(None, {name: (lambda _body, a=a: a) for name, a in answers.items()}) as svc:
            bindings = [{"function": name, "http": {"url": f"{svc.url}/{name}"}} for name in answers]
            job = str(uuid.uuid4())
            got = await ActivityEnvironment().run(
                acts.run_task, task(tenant_a.id, job, "Fits", INVOKE, {"FunctionName": "fits"}, bindings)
            )
            assert got["Payload"] == answers["fits"]
            with pytest.raises(ApplicationError) as raised:
                await ActivityEnvironment().run(
                    acts.run_task, task(tenant_a.id, job, "Over", INVOKE, {"FunctionName": "over"}, bindings)
                )
    finally:
        await close(acts)
    assert raised.value.type == "States.DataLimitExceeded"
    assert "larger than 1000 bytes" in raised.value.message
