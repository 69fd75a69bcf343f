"""Database access. Every unit of work runs in one transaction with the tenant set for
row-level security, via set_config(..., true) so it ends with the transaction.

A database that cannot be reached (refused, reset, timed out, shutting down) raises
DatabaseUnavailable (or a DBAPIError that `unavailable` recognises), so the API can answer
it as an outage (503) rather than as its own fault. A connect that fails for a reason an
operator must fix (a host name that does not resolve, a TLS error, a bad password) stays
an error (500, logged as one).

A pooled connection is not pinged before use (a round trip per checkout). Instead each
transaction's first statement, the one that sets the tenant, must answer within the
connect timeout: a connection that went half-open, or that a PostgreSQL restart closed, is
discarded, and the transaction begun once more on a fresh one (nothing was done on the
first yet); if that fails too, the database is unavailable. Every later statement ends
within DB_COMMAND_TIMEOUT_SECONDS.

tenant_session is an ORM session; tenant_transaction is the driver's (asyncpg) connection
for the hot routes, where BEGIN and the tenant go in one round trip."""

import asyncio
import errno
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

# SQLSTATEs that say the server is gone, going, or not taking connections: connection
# exceptions (class 08), admin/crash shutdown, "cannot connect now", too many connections.
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
CONNECT_TIMEOUT = "lodestone_connect_timeout"  # the engine's execution option: the first statement's bound
SET_TENANT = "SELECT set_config('app.tenant_id', :t, true)"
# A socket error that says the server is down or out of reach, not misconfigured.
UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EPIPE,
}


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL could not be reached (refused, timed out, shutting down or starting up)."""


def unreachable_socket(exc: BaseException) -> bool:
    """Refused, reset or timed out. Not a TLS error nor a name that does not resolve: those
    are the configuration's fault, and an outage answer (503, "try again") would hide them."""
    if isinstance(exc, ssl.SSLError | socket.gaierror | socket.herror):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if not isinstance(exc, OSError):
        return False
    # asyncio's connect to a name with several addresses, each refused in its own way.
    return exc.errno in UNREACHABLE_ERRNOS or (exc.errno is None and str(exc).startswith("Multiple exceptions"))


def unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database is out of reach (or every pooled connection
    is busy), not that a statement failed."""
    if isinstance(exc, DatabaseUnavailable | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or (exc.orig is not None and unavailable(exc.orig))
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    cause = exc.__cause__
    return cause is not None and cause is not exc and unavailable(cause)


def make_engine(
    url: str,
    pool_size: int = 10,
    connect_timeout: float = 5.0,
    *,
    command_timeout: float = 60.0,
    pool_timeout: float = 30.0,
) -> AsyncEngine:
    """pool_timeout: how long a caller waits for a free pooled connection before
    sqlalchemy.exc.TimeoutError (the API answers that 503: it is overload)."""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        connect_args={"timeout": connect_timeout, "command_timeout": command_timeout},
        execution_options={CONNECT_TIMEOUT: connect_timeout},
    )

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # A refused or timed-out connect surfaces as a bare OSError or TimeoutError (not a
        # DBAPI error): name it here, the one place every new connection passes through.
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as e:
            if unreachable_socket(e):
                raise DatabaseUnavailable(f"PostgreSQL is unreachable: {type(e).__name__}") from e
            if unavailable(e):
                raise DatabaseUnavailable(f"PostgreSQL is not taking connections: {type(e).__name__}") from e
            raise

    return engine


def first_statement_timeout(engine: AsyncEngine) -> float:
    return float(engine.get_execution_options()[CONNECT_TIMEOUT])


async def _set_tenant(session: AsyncSession, engine: AsyncEngine, tenant_id: str) -> None:
    """Begin the session's transaction with the tenant set, on a connection that answers."""
    for last in (False, True):
        await session.connection()  # a checkout waits for the pool, not for the statement's bound
        try:
            async with asyncio.timeout(first_statement_timeout(engine)):
                await session.execute(text(SET_TENANT), {"t": tenant_id})
            return
        except TimeoutError as e:  # half-open: the cancelled statement invalidated the connection
            await session.rollback()
            if last:
                raise DatabaseUnavailable("PostgreSQL did not answer on a fresh connection") from e
        except DBAPIError as e:  # closed under us (a restart): the pool drops it and its peers
            await session.rollback()
            if last or not e.connection_invalidated:
                raise


@asynccontextmanager
async def tenant_session(engine: AsyncEngine, tenant_id: uuid.UUID | str) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction that sees only this tenant's rows."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        await _set_tenant(session, engine, str(tenant_id))
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def _driver(conn: AsyncConnection) -> asyncpg.Connection:
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver


async def _begin_raw(engine: AsyncEngine, tenant_id: uuid.UUID) -> tuple[AsyncConnection, asyncpg.Connection]:
    begin = f"BEGIN; SELECT set_config('app.tenant_id', '{tenant_id}', true)"  # a UUID's text: nothing to escape
    for last in (False, True):
        conn = await engine.connect()
        driver = await _driver(conn)
        try:
            await driver.execute(begin, timeout=first_statement_timeout(engine))
            return conn, driver
        except Exception as e:
            try:
                await _lost(conn, driver, e)
            except DatabaseUnavailable:
                if last:
                    raise
                continue  # a pooled connection a restart closed: once more, on a fresh one
            finally:
                await conn.close()
            raise
    raise AssertionError("unreachable")


@asynccontextmanager
async def tenant_transaction(engine: AsyncEngine, tenant_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
    """One transaction on a pooled connection's asyncpg connection, seeing only this tenant's
    rows: BEGIN and the tenant in one round trip, then the caller's statements, then COMMIT.
    json parameters are passed as text (the engine's codec). An error rolls it back; a lost
    connection is discarded and raised as DatabaseUnavailable."""
    conn, driver = await _begin_raw(engine, uuid.UUID(str(tenant_id)))
    try:
        try:
            yield driver
            await driver.execute("COMMIT")
        except Exception as e:
            await _lost(conn, driver, e)
            try:
                await driver.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - the caller's error is the one to raise
                await conn.invalidate()
            raise
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            await conn.invalidate()
            raise
    finally:
        await conn.close()


async def run_in_tenant(engine: AsyncEngine, tenant_id: uuid.UUID, sql: str) -> None:
    """`sql` (no parameters; ids inlined as UUID text) in one implicit transaction with the
    tenant set: one round trip."""
    async with engine.connect() as conn:
        driver = await _driver(conn)
        tenant = uuid.UUID(str(tenant_id))
        try:
            await driver.execute(f"SELECT set_config('app.tenant_id', '{tenant}', true); {sql}")
        except Exception as e:
            await _lost(conn, driver, e)
            raise


async def _lost(conn: AsyncConnection, driver: asyncpg.Connection, e: Exception) -> None:
    """If `e` says the connection is gone: drop it, and every pooled connection as old (as
    SQLAlchemy does on a disconnect it sees itself), and raise DatabaseUnavailable."""
    if unavailable(e) or unreachable_socket(e) or driver.is_closed():
        await conn.run_sync(lambda sync: sync.engine.pool._invalidate(sync.connection, e))
        raise DatabaseUnavailable(f"PostgreSQL connection lost: {type(e).__name__}") from e
