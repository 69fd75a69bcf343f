"""Re-record machine_callback_task.json: `.venv/bin/python -m tests.histories.record_callback`.

A callback Task (`.waitForTaskToken`) on the time-skipping test server with the stand-ins of
tests/test_machine_callback_workflow.py: its token issued, its request sent, a heartbeat, then
the success signal the API sends."""

import asyncio
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from schema.task_tokens import token_hash
from tests.test_machine_callback_workflow import CallbackStandIns, ask, sent, start
from workflows.machine_callbacks import TASK_TOKEN_SIGNAL, TaskTokenSignal
from workflows.state_machine import StateMachineWorkflow

OUT = Path(__file__).parent / "machine_callback_task.json"
SERVER = Path(__file__).parents[2] / ".venv" / "bin" / "temporal-test-server"


async def main() -> None:
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(SERVER)) as env:
        keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=env.client.namespace, search_attributes={"JobStatus": keyword})
        )
        fakes = CallbackStandIns(env, ask(HeartbeatSeconds=60, ResultPath="$.decision", Next="Done"))
        queue = f"tq-{uuid.uuid4()}"
        async with Worker(env.client, task_queue=queue, workflows=[StateMachineWorkflow], activities=fakes.all()):
            handle = await start(env, fakes, queue)
            await sent(fakes)
            digest = token_hash("tok-Ask-1")
            await handle.signal(TASK_TOKEN_SIGNAL, TaskTokenSignal(digest, "heartbeat"))
            await handle.signal(TASK_TOKEN_SIGNAL, TaskTokenSignal(digest, "success", {"approved": True}))
            await handle.result()
            history = await handle.fetch_history()
    OUT.write_text(history.to_json())


if __name__ == "__main__":
    asyncio.run(main())
