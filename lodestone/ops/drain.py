"""`lodestone ops drain`: ask a worker to stop polling, then wait while it finishes its
in-flight activities and exits."""

import time
from typing import Annotated

import httpx
import typer
from rich.console import Console

from lodestone.settings import get_settings

console = Console(stderr=True)


def drain(
    url: Annotated[str | None, typer.Option(help="the worker's listener; default WORKER_METRICS_HOST:PORT")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the worker to exit")] = 120.0,
) -> None:
    """Drain a worker: it polls no new tasks, finishes what it runs, and exits."""
    settings = get_settings()
    base = (url or f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}").rstrip("/")
    with httpx.Client(timeout=5) as http:
        try:
            first = http.post(f"{base}/drain").json()
        except httpx.HTTPError as e:
            console.print(f"[red]error:[/red] no worker answers at {base}: {e}")
            raise typer.Exit(1) from e
        typer.echo(f"draining {base}: {first['activities_in_flight']} activities in flight")
        deadline, last = time.monotonic() + timeout, first["activities_in_flight"]
        while time.monotonic() < deadline:
            try:
                state = http.get(f"{base}/health").json()
            except httpx.HTTPError:
                typer.echo(f"worker at {base} drained and exited")
                return
            if state["activities_in_flight"] != last:
                last = state["activities_in_flight"]
                typer.echo(f"  {last} activities in flight")
            time.sleep(0.5)
    console.print(f"[red]error:[/red] the worker at {base} was still running after {timeout:.0f}s")
    raise typer.Exit(1)
