"""The daily retention purge's Temporal Schedule, kept by the worker: one for the whole
deployment, belonging to no tenant."""

from dataclasses import replace
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from activities.conversation import PurgeInput
from lodestone.settings import Settings
from workflows.names import PURGE_MESSAGES

PURGE_SCHEDULE_ID = "retention:purge-messages"
PURGE_EVERY = timedelta(days=1)


def _purge_action(settings: Settings) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(
        PURGE_MESSAGES,
        PurgeInput(settings.message_retention_days),
        id=PURGE_SCHEDULE_ID,
        task_queue=settings.temporal_task_queue,
    )


async def ensure_purge_schedule(client: Client, settings: Settings) -> str:
    """Create the daily purge schedule, or bring its retention up to date.
    Returns "created", "updated" or "unchanged"."""
    schedule = Schedule(
        action=_purge_action(settings),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(PURGE_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(PURGE_SCHEDULE_ID, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(PURGE_SCHEDULE_ID)
    action = (await handle.describe()).schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    current = await client.data_converter.decode(action.args, [PurgeInput])  # type: ignore[arg-type]
    if current and current[0] == PurgeInput(settings.message_retention_days):
        return "unchanged"

    def update(inp: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=replace(inp.description.schedule, action=_purge_action(settings)))

    await handle.update(update)
    return "updated"
