"""`lodestone schedules ...`: a tenant's schedules, as the API manages them: job schedules
(any workflow definition, by cron or interval) and summary schedules (one per contact).
Output is plain lines on stdout, so it can be piped; errors go to stderr with exit code 2."""

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from cli.ops.runner import fail, run, temporal
from lodestone.settings import get_settings

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.runtime import Runtime

    from services.job_schedules import JobSchedule
    from services.schedules import SummarySchedule

schedules_app = typer.Typer(help="Manage a tenant's job and summary schedules.", no_args_is_help=True)
T = TypeVar("T")
Tenant = Annotated[uuid.UUID, typer.Option("--tenant", help="tenant id (a UUID)")]
ScheduleId = Annotated[str, typer.Argument(help="job:<tenant>:<hex> or summary:<tenant>:<contact>")]
OVERLAPS = "skip|buffer_one|buffer_all|cancel_other|terminate_other|allow_all"
Note = Annotated[str | None, typer.Option(help="why; shown on the schedule")]


def _fail(message: object) -> typer.Exit:
    return fail(message, exit_code=2)


def _run(op: Callable[["Client"], Awaitable[T]]) -> T:
    """One schedule call on a Temporal client of its own; failures exit 2 (ops.runner.run)."""

    async def with_client(runtime: "Runtime") -> T:
        return await op(await temporal(runtime))

    return run(with_client, exit_code=2)


def _line(*fields: object) -> None:
    sys.stdout.write("\t".join("-" if f is None else str(f) for f in fields) + "\n")


def _show(s: "SummarySchedule | JobSchedule") -> None:
    for key, value in vars(s).items():
        if isinstance(value, list):
            value = ", ".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in value)
        _line(f"{key}:", value)


def _timing(s: "SummarySchedule | JobSchedule") -> str:
    from services.job_schedules import JobSchedule

    if not isinstance(s, JobSchedule):
        return f"{s.interval_days}d"
    return " | ".join(s.cron) if s.cron else f"every {s.interval_seconds:g}s"


@schedules_app.command("list")
def list_cmd(tenant: Tenant) -> None:
    """One line per schedule: id, workflow (job schedules) or contact, timing, paused, next fire time."""
    from services.job_schedules import JobSchedule, list_job_schedules
    from services.schedules import list_summary_schedules

    async def both(c: "Client") -> "list[SummarySchedule | JobSchedule]":
        return [*await list_job_schedules(c, tenant), *await list_summary_schedules(c, tenant)]

    for s in _run(both):
        _line(
            s.id,
            s.workflow_key if isinstance(s, JobSchedule) else s.contact_id,
            _timing(s),
            "paused" if s.paused else "active",
            s.next_action_times[0].isoformat() if s.next_action_times else None,
        )


@schedules_app.command("show")
def show_cmd(schedule_id: ScheduleId, tenant: Tenant) -> None:
    """Everything about one schedule."""
    from services.job_schedules import describe_job_schedule
    from services.schedule_common import is_job_schedule
    from services.schedules import describe_summary_schedule

    describe = describe_job_schedule if is_job_schedule(schedule_id) else describe_summary_schedule
    _show(_run(lambda c: describe(c, tenant, schedule_id)))


async def _contact_exists(tenant: uuid.UUID, contact_id: uuid.UUID) -> bool:
    from lodestone.db import make_engine, tenant_session
    from schema.conversations import Contact

    engine = make_engine(get_settings().app_database_url, 1)
    try:
        async with tenant_session(engine, tenant) as session:
            return await session.get(Contact, contact_id) is not None
    finally:
        await engine.dispose()


def _input(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as e:
        raise typer.BadParameter(f"not JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise typer.BadParameter("a JSON object")
    return parsed


@schedules_app.command("create")
def create_cmd(
    tenant: Tenant,
    contact_id: Annotated[uuid.UUID | None, typer.Argument(help="a summary schedule: the contact's id")] = None,
    interval_days: Annotated[int | None, typer.Option(min=1, max=365, help="a summary schedule's")] = None,
    workflow: Annotated[str | None, typer.Option(help="a job schedule: the workflow key")] = None,
    input_json: Annotated[str, typer.Option("--input", help="the jobs' input, a JSON object")] = "{}",
    cron: Annotated[list[str] | None, typer.Option(help="a cron expression (repeat for more)")] = None,
    interval_seconds: Annotated[int | None, typer.Option(min=1)] = None,
    offset_seconds: Annotated[int, typer.Option(min=0)] = 0,
    time_zone: Annotated[str, typer.Option(help="IANA name")] = "UTC",
    overlap: Annotated[
        str, typer.Option(help="skip|buffer_one|buffer_all|cancel_other|terminate_other|allow_all")
    ] = "skip",
    paused: Annotated[bool, typer.Option("--paused")] = False,
    note: Note = None,
) -> None:
    """Create a job schedule (--workflow, with --cron or --interval-seconds) or a contact's
    summary schedule (CONTACT_ID; default interval: SUMMARY_INTERVAL_DAYS)."""
    if (workflow is None) == (contact_id is None):
        raise _fail("give --workflow (a job schedule) or CONTACT_ID (a summary schedule)")
    if workflow is None:
        assert contact_id is not None
        _create_summary(tenant, contact_id, interval_days)
        return
    from services.job_schedules import JobScheduleRequest, check_request, create_job_schedule

    req = JobScheduleRequest(
        workflow, _input(input_json), cron or [], interval_seconds, offset_seconds, time_zone, overlap, paused, note
    )

    async def create(c: "Client") -> "JobSchedule":
        from lodestone.db import make_engine

        engine = make_engine(get_settings().app_database_url, 1)
        try:
            await check_request(engine, tenant, req)
        finally:
            await engine.dispose()
        return await create_job_schedule(c, get_settings(), tenant, req)

    _show(_run(create))


def _create_summary(tenant: uuid.UUID, contact_id: uuid.UUID, interval_days: int | None) -> None:
    from services.schedules import create_summary_schedule

    if not asyncio.run(_contact_exists(tenant, contact_id)):
        raise _fail(f"contact {contact_id} not found")
    _show(_run(lambda c: create_summary_schedule(c, get_settings(), tenant, contact_id, interval_days)))


@schedules_app.command("pause")
def pause_cmd(schedule_id: ScheduleId, tenant: Tenant, note: Note = None) -> None:
    """Stop future fires until resumed."""
    from services.schedule_common import pause_schedule

    _run(lambda c: pause_schedule(c, tenant, schedule_id, note))
    _line("paused", schedule_id)


@schedules_app.command("resume")
@schedules_app.command("unpause")
def unpause_cmd(schedule_id: ScheduleId, tenant: Tenant, note: Note = None) -> None:
    """Resume fires."""
    from services.schedule_common import unpause_schedule

    _run(lambda c: unpause_schedule(c, tenant, schedule_id, note))
    _line("unpaused", schedule_id)


@schedules_app.command("trigger")
def trigger_cmd(schedule_id: ScheduleId, tenant: Tenant) -> None:
    """Run now: a job schedule always; a summary is skipped if one is still running."""
    from services.schedule_common import trigger_schedule

    overlap, running = _run(lambda c: trigger_schedule(c, tenant, schedule_id))
    skipped = running and overlap == "SKIP"
    _line("skipped: still running" if skipped else "triggered", schedule_id, *running)


def _when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"{value!r} is not an ISO datetime") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@schedules_app.command("backfill")
def backfill_cmd(
    schedule_id: ScheduleId,
    tenant: Tenant,
    start: Annotated[datetime, typer.Option(parser=_when, help="ISO; UTC if no offset")],
    end: Annotated[datetime, typer.Option(parser=_when, help="ISO; exclusive")],
    overlap: Annotated[str, typer.Option(help="the backfilled runs' overlap policy")] = "allow_all",
) -> None:
    """Run every fire time in [start, end) now (at most 366 days, in the past)."""
    from temporalio.client import ScheduleOverlapPolicy

    from services.schedule_common import backfill_schedule

    try:
        policy = ScheduleOverlapPolicy[overlap.upper()]
    except KeyError as e:
        raise _fail(f"unknown overlap policy {overlap!r}") from e
    _run(lambda c: backfill_schedule(c, tenant, schedule_id, start, end, policy))
    _line("backfilling", schedule_id, start.isoformat(), end.isoformat())


@schedules_app.command("delete")
def delete_cmd(
    schedule_id: ScheduleId,
    tenant: Tenant,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete the schedule; runs already started finish."""
    from services.schedule_common import delete_schedule

    if not yes:
        typer.confirm(f"delete {schedule_id}?", abort=True)
    _run(lambda c: delete_schedule(c, tenant, schedule_id))
    _line("deleted", schedule_id)
