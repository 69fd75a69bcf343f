"""`lodestone ops ...`. Tables go to a terminal; piped (or with --plain), rows are
tab-separated lines. Refusals and failures print one line on stderr and exit 1."""

import sys
import uuid
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from cli.ops.cancel import cancel
from cli.ops.drain import drain
from cli.ops.runner import fail, note, run, temporal
from cli.schedules import pause_cmd, trigger_cmd, unpause_cmd
from lodestone.settings import get_settings

if TYPE_CHECKING:
    from temporalio.runtime import Runtime

    from cli.ops.deadletters import DeadLetter
    from services.redrive import Redrive

ops_app = typer.Typer(
    help="Operate Lodestone: dead letters, redrive, cancel, schedules, workflow histories, drain.", no_args_is_help=True
)
schedules_ops = typer.Typer(help="Pause, resume and trigger schedules.", no_args_is_help=True)
history_app = typer.Typer(help="Export a workflow history; replay one against the current code.", no_args_is_help=True)
ops_app.add_typer(schedules_ops, name="schedules")
ops_app.add_typer(history_app, name="history")
# The same commands as `lodestone schedules pause|unpause|trigger`, under the operator's names.
schedules_ops.command("pause")(pause_cmd)
schedules_ops.command("resume")(unpause_cmd)
schedules_ops.command("trigger")(trigger_cmd)
ops_app.command("drain")(drain)
ops_app.command("cancel")(cancel)

Plain = Annotated[bool, typer.Option("--plain", help="tab-separated lines, also the default when piped")]


class VersionChoice(StrEnum):  # services.redrive_version.Version, without importing the services here
    original = "original"
    latest = "latest"


DryRun = Annotated[bool, typer.Option("--dry-run", help="show what would run, start nothing")]


def _line(*fields: object) -> None:
    sys.stdout.write("\t".join("-" if f is None else " ".join(str(f).split()) for f in fields) + "\n")


def _when(value: object) -> str | None:
    return None if value is None else f"{value:%Y-%m-%d %H:%M:%S}Z"


@ops_app.command("dead-letters")
def dead_letters(
    tenant: Annotated[uuid.UUID | None, typer.Option(help="only this tenant's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    everything: Annotated[bool, typer.Option("--all", help="also redriven ones no longer failed")] = False,
    plain: Plain = False,
) -> None:
    """List failed jobs (dead letters), newest first.

    Plain columns: job, tenant, tenant name, workflow, job status, failed at, error code,
    failed time, redriven time, Web UI link, message.
    """
    from cli.ops.deadletters import dead_letters_table, list_dead_letters
    from services.operator_db import engine

    async def go(_: "Runtime") -> "list[DeadLetter]":
        async with engine(get_settings().admin_database_url) as owner:
            return await list_dead_letters(owner, tenant, limit, everything)

    rows, link = run(go), get_settings().workflow_link
    if not rows:
        note("no dead letters")
    elif plain or not sys.stdout.isatty():
        for r in rows:
            _line(
                r.job_id,
                r.tenant_id,
                r.tenant_name,
                r.workflow_key,
                r.job_status,
                r.failed_step,
                r.error_code,
                _when(r.created_at),
                _when(r.redriven_at),
                link(str(r.job_id)),
                r.message,
            )
    else:
        Console().print(dead_letters_table(rows, link))


def _show(plan: "Redrive") -> None:
    _line(f"job {plan.job_id}", f"tenant {plan.tenant_id}", f"workflow {plan.workflow_key}")
    _line(f"last run: {plan.last_run}", f"dead letter: {plan.failure or 'none'}")
    _line(f"version {plan.version} (last run: version {plan.previous_version})", f"starts at: {plan.start}")
    for a in plan.actions:
        _line(a.verb, a.kind, a.name, a.state)
    if plan.new_run_id:
        _line(f"started run {plan.new_run_id}", get_settings().workflow_link(plan.job_id))
    else:
        _line("dry run: nothing started")


def _redrive(
    job_id: uuid.UUID | None, delivery_id: uuid.UUID | None, dry_run: bool, from_start: bool = False, version: str = ""
) -> None:
    from services.operator_db import engine
    from services.redrive import redeliver, redrive
    from services.redrive_version import Version

    settings = get_settings()

    async def go(runtime: "Runtime") -> "Redrive":
        client = await temporal(runtime)
        async with engine(settings.admin_database_url) as owner, engine(settings.app_database_url) as app:
            if delivery_id is not None:
                return await redeliver(settings, client, owner, app, delivery_id, dry_run=dry_run)
            assert job_id is not None
            chosen = Version(version or Version.original)
            return await redrive(
                settings, client, owner, app, job_id, dry_run=dry_run, from_start=from_start, version=chosen
            )

    _show(run(go))


@ops_app.command("redrive")
def redrive_cmd(
    job_id: Annotated[uuid.UUID, typer.Argument(help="the job id (= its workflow id)")],
    dry_run: DryRun = False,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="a state machine: run again from StartAt, not from the failed state")
    ] = False,
    version: Annotated[
        VersionChoice,
        typer.Option(help="original: the version the job was submitted with; latest: its workflow's current one"),
    ] = VersionChoice.original,
) -> None:
    """Redrive a failed job from its failed step.

    Completed steps, stored artifacts and delivered targets are skipped; a state machine
    resumes at the state that failed, its succeeded Tasks and Map items not run again. Only
    a job whose last run failed, was terminated or timed out is redriven. With
    --version latest, work the new version would do differently is done again.
    """
    _redrive(job_id, None, dry_run, from_start, version.value)


@ops_app.command("redeliver")
def redeliver_cmd(
    delivery_id: Annotated[uuid.UUID, typer.Argument(help="the delivery id (GET /v1/jobs/{id})")],
    dry_run: DryRun = False,
) -> None:
    """Replay a failed delivery.

    Reopens the delivery (its attempts and webhook-id stay) and redrives its job, so only
    the targets not yet delivered are sent.
    """
    _redrive(None, delivery_id, dry_run)


@history_app.command("export")
def history_export(
    workflow_id: str,
    run_id: Annotated[str | None, typer.Option(help="default: the latest run")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="default: stdout")] = None,
) -> None:
    """Export a workflow run's history as JSON.

    The form `ops history replay` reads and tests/histories/ holds.
    """
    from temporalio.service import RPCError, RPCStatusCode

    from services.errors import OpsError

    async def go(runtime: "Runtime") -> tuple[str, str, int]:
        client = await temporal(runtime)
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        try:
            described = await handle.describe()
            history = await client.get_workflow_handle(workflow_id, run_id=described.run_id).fetch_history()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise OpsError(f"workflow {workflow_id}{f' run {run_id}' if run_id else ''} not found") from e
            raise
        return described.run_id, history.to_json(), len(history.events)

    found_run, text, events = run(go)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text)
    note(f"exported {workflow_id} run {found_run}: {events} events -> {output or 'stdout'}")


@history_app.command("replay")
def history_replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="exported history JSON")],
) -> None:
    """Replay a history JSON against this build's workflow code.

    The same path as tests/test_replay.py; exit 1 on a non-determinism error.
    """
    from cli.replay import HistoryUnreadable, ReplayOutcome, load_history, replay
    from lodestone.payload_codec import data_converter
    from services.errors import OpsError

    async def go(runtime: "Runtime") -> ReplayOutcome:
        try:
            history = load_history(file.read_text(), file.stem)
        except HistoryUnreadable as e:
            raise OpsError(f"{file}: {e}") from e
        return await replay(history, runtime=runtime, data_converter=data_converter(get_settings()))

    outcome = run(go)
    if not outcome.ok:
        raise fail(
            f"replay of {outcome.workflow_type} {outcome.workflow_id} ({outcome.events} events) failed: {outcome.error}"
        )
    _line(
        f"OK: {outcome.workflow_type} {outcome.workflow_id} replayed {outcome.events} events against the current code"
    )
