"""`lodestone ops drain`: ask a worker to stop polling, then wait while it finishes its
in-flight activities and exits."""

import time
from typing import Annotated

import httpx
import typer

from cli.ops.runner import fail
from lodestone.local_tokens import DRAIN, read_token
from lodestone.settings import get_settings


def drain(
    url: Annotated[str | None, typer.Option(help="the worker's listener; default WORKER_METRICS_HOST:PORT")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the worker to exit")] = 120.0,
) -> None:
    """Drain a worker: it polls no new tasks, finishes what it runs, and exits. The request
    carries WORKER_DRAIN_TOKEN, else the one the dev stack keeps in DATA_DIR/keys."""
    settings = get_settings()
    base = (url or f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}").rstrip("/")
    token = settings.worker_drain_token or read_token(settings.data_path, DRAIN)
    with httpx.Client(timeout=5) as http:
        try:
            answer = http.post(f"{base}/drain", headers={"Authorization": f"Bearer {token}"} if token else {})
            if answer.status_code in (401, 403):
                raise fail(
                    f"the worker at {base} refused to drain ({answer.status_code}): set "
                    "WORKER_DRAIN_TOKEN to the worker's" + ("" if token else " (none is set)")
                )
            last = int(answer.raise_for_status().json()["activities_in_flight"])
        except (httpx.HTTPError, ValueError, KeyError) as e:  # nothing, or not a Lodestone worker
            raise fail(f"no worker answers at {base}: {e}") from e
        typer.echo(f"draining {base}: {last} activities in flight")
        deadline = time.monotonic() + timeout
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
    raise fail(f"the worker at {base} was still running after {timeout:.0f}s")
