"""Running one ops command: one event loop, a Temporal runtime of our own, and every
failure the operator should read turned into one red line on stderr and exit code 1."""

import asyncio
import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from services.errors import OpsError

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.runtime import Runtime

T = TypeVar("T")
errors = Console(stderr=True, highlight=False)


@dataclass
class _Failed:
    message: str


def fail(message: object, exit_code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {escape(str(message))}", soft_wrap=True)
    return typer.Exit(exit_code)


def note(message: str) -> None:
    errors.print(escape(message), soft_wrap=True)


async def temporal(runtime: "Runtime") -> "Client":
    from lodestone.settings import get_settings
    from lodestone.temporal_client import connect

    return await connect(get_settings(), runtime=runtime)


def _message(e: Exception) -> str:
    orig = getattr(e, "orig", None)  # SQLAlchemy wraps the driver's error, and adds the SQL
    return str(orig or e) or type(e).__name__


async def _guard(op: Callable[["Runtime"], Awaitable[T]], runtime: "Runtime") -> T | _Failed:
    from sqlalchemy.exc import SQLAlchemyError
    from temporalio.service import RPCError

    from services.errors import Invalid, NotFound
    from services.schedule_common import ScheduleError

    try:
        return await op(runtime)
    except (OpsError, ScheduleError, Invalid, NotFound, RPCError, SQLAlchemyError, OSError, RuntimeError) as e:
        return _Failed(_message(e))  # not the exception: its traceback would keep the client alive


def run(op: Callable[["Runtime"], Awaitable[T]], exit_code: int = 1) -> T:
    from temporalio.runtime import Runtime, TelemetryConfig

    # A runtime of our own, dropped before the interpreter exits: the default one is torn down
    # during finalization, and its threads then abort the process now and then
    # ("PyGILState_Release: thread state ... must be current"; temporalio/sdk-python#300).
    # Without the core's log lines: they would land on stdout, and
    # what went wrong reaches the operator as the command's own error.
    runtime = Runtime(telemetry=TelemetryConfig(logging=None))
    try:
        outcome = asyncio.run(_guard(op, runtime))
    finally:
        del runtime
        gc.collect()
    if isinstance(outcome, _Failed):
        raise fail(outcome.message, exit_code)
    return outcome
