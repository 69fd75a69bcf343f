"""`lodestone schedules ...`: a tenant's summary schedules, as the API manages them.
Output is plain lines on stdout, so it can be piped; errors go to stderr with exit code 2."""

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from cli.ops.runner import fail, run, temporal
from lodestone.settings import get_settings

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.runtime import Runtime

    from services.schedules import SummarySchedule

schedules_app = typer.Typer(help="Manage a tenant's summary schedules.", no_args_is_help=True)
T = TypeVar("T")
Tenant = Annotated[uuid.UUID, typer.Option("--tenant", help="tenant id (a UUID)")]
ScheduleId = Annotated[str, typer.Argument(help="e.g. summary:<tenant>:<contact>")]
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


def _show(s: "SummarySchedule") -> None:
    for key, value in (
        ("id", s.id),
        ("contact_id", s.contact_id),
        ("interval_days", s.interval_days),
        ("overlap", s.overlap),
        ("paused", s.paused),
        ("note", s.note),
        ("next", ", ".join(t.isoformat() for t in s.next_action_times)),
        ("recent", ", ".join(s.recent_actions)),
        ("running", ", ".join(s.running)),
        ("created_at", s.created_at),
        ("updated_at", s.updated_at),
    ):
        _line(f"{key}:", value)


@schedules_app.command("list")
def list_cmd(tenant: Tenant) -> None:
    """One line per schedule: id, interval days, paused, next fire time."""
    from services.schedules import list_summary_schedules

    for s in _run(lambda c: list_summary_schedules(c, tenant)):
        _line(
            s.id,
            f"{s.interval_days}d",
            "paused" if s.paused else "active",
            s.next_action_times[0].isoformat() if s.next_action_times else None,
        )


@schedules_app.command("show")
def show_cmd(schedule_id: ScheduleId, tenant: Tenant) -> None:
    """Everything about one schedule."""
    from services.schedules import describe_summary_schedule

    _show(_run(lambda c: describe_summary_schedule(c, tenant, schedule_id)))


async def _contact_exists(tenant: uuid.UUID, contact_id: uuid.UUID) -> bool:
    from lodestone.db import make_engine, tenant_session
    from schema.conversations import Contact

    engine = make_engine(get_settings().app_database_url, 1)
    try:
        async with tenant_session(engine, tenant) as session:
            return await session.get(Contact, contact_id) is not None
    finally:
        await engine.dispose()


@schedules_app.command("create")
def create_cmd(
    contact_id: Annotated[uuid.UUID, typer.Argument(help="the contact's id")],
    tenant: Tenant,
    interval_days: Annotated[int | None, typer.Option(min=1, max=365)] = None,
) -> None:
    """Create the contact's summary schedule (default interval: SUMMARY_INTERVAL_DAYS)."""
    from services.schedules import create_summary_schedule

    if not asyncio.run(_contact_exists(tenant, contact_id)):
        raise _fail(f"contact {contact_id} not found")
    _show(_run(lambda c: create_summary_schedule(c, get_settings(), tenant, contact_id, interval_days)))


@schedules_app.command("pause")
def pause_cmd(schedule_id: ScheduleId, tenant: Tenant, note: Note = None) -> None:
    """Stop future fires until unpaused."""
    from services.schedules import pause_summary_schedule

    _run(lambda c: pause_summary_schedule(c, tenant, schedule_id, note))
    _line("paused", schedule_id)


@schedules_app.command("unpause")
def unpause_cmd(schedule_id: ScheduleId, tenant: Tenant, note: Note = None) -> None:
    """Resume fires."""
    from services.schedules import unpause_summary_schedule

    _run(lambda c: unpause_summary_schedule(c, tenant, schedule_id, note))
    _line("unpaused", schedule_id)


@schedules_app.command("trigger")
def trigger_cmd(schedule_id: ScheduleId, tenant: Tenant) -> None:
    """Run a summary now (skipped if one is still running)."""
    from services.schedules import trigger_summary_schedule

    running = _run(lambda c: trigger_summary_schedule(c, tenant, schedule_id))
    _line("skipped: still running" if running else "triggered", schedule_id, *running)


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
) -> None:
    """Run every fire time in [start, end) now (at most 366 days, in the past)."""
    from services.schedules import backfill_summary_schedule

    _run(lambda c: backfill_summary_schedule(c, tenant, schedule_id, start, end))
    _line("backfilling", schedule_id, start.isoformat(), end.isoformat())


@schedules_app.command("delete")
def delete_cmd(
    schedule_id: ScheduleId,
    tenant: Tenant,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete the schedule; runs already started finish."""
    from services.schedules import delete_summary_schedule

    if not yes:
        typer.confirm(f"delete {schedule_id}?", abort=True)
    _run(lambda c: delete_summary_schedule(c, tenant, schedule_id))
    _line("deleted", schedule_id)
