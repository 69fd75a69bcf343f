"""A worker process with only the ingest activity and a probe workflow around it, for the
crash-and-resume test: `python -m tests.ingest_worker TASK_QUEUE` (settings from the env)."""

import asyncio
import sys
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.ingest import IngestActivities, IngestInput, IngestResult

# Short, so a killed attempt is retried within seconds.
PROBE_HEARTBEAT = timedelta(seconds=3)


@workflow.defn
class IngestProbeWorkflow:
    @workflow.run
    async def run(self, inp: IngestInput) -> IngestResult:
        return await workflow.execute_activity_method(
            IngestActivities.ingest_input,
            inp,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=PROBE_HEARTBEAT,
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=0.5)),
        )


async def main(task_queue: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from lodestone.db import make_engine
    from lodestone.netguard import guarded_client
    from lodestone.settings import get_settings
    from lodestone.storage import make_store

    settings = get_settings()
    client = await Client.connect(settings.temporal_target)
    engine = make_engine(settings.app_database_url, 2)
    ingest = IngestActivities(engine, make_store(settings), guarded_client(settings.outbound_allow_cidrs), settings)
    async with Worker(client, task_queue=task_queue, workflows=[IngestProbeWorkflow], activities=[ingest.ingest_input]):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
