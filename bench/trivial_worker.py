"""Trivial workflows, the yardsticks of the benches: WaitingWorkflow waits for a signal (held
in flight by a bare SDK worker for bench/worker_memory.py), NoopWorkflow returns at once (the
latency floor of bench/pipeline_latency.py). Nothing but temporalio is imported.
`python bench/trivial_worker.py TARGET TASK_QUEUE` runs a bare worker of WaitingWorkflow on the
default sandbox, and prints `polling` once it polls."""

import asyncio
import sys

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker


@workflow.defn
class WaitingWorkflow:
    def __init__(self) -> None:
        self.released = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.released)
        return "released"

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.query
    def waiting(self) -> bool:
        return not self.released


@workflow.defn
class NoopWorkflow:
    @workflow.run
    async def run(self) -> str:
        return "done"


async def main(target: str, queue: str) -> None:
    client = await Client.connect(target)
    async with Worker(client, task_queue=queue, workflows=[WaitingWorkflow]):
        print("polling", flush=True)  # noqa: T201
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
