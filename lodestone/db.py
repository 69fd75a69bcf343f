"""Database access. Every unit of work runs in one transaction with the tenant set for
row-level security, via set_config(..., true) so it ends with the transaction.

A database that cannot be reached (refused, reset, timed out, shutting down) raises
DatabaseUnavailable (or a DBAPIError that `unavailable` recognises), so the API can answer
it as an outage (503) rather than as its own fault. A connect that fails for a reason an
operator must fix (a host name that does not resolve, a TLS error, a bad password) stays
an error (500, logged as one). A pooled connection is pinged, within the connect timeout,
before each use: one that went half-open is replaced, not waited on; and every statement
ends within DB_COMMAND_TIMEOUT_SECONDS."""

import errno
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_
from sqlmodel.ext.asyncio.session import AsyncSession

# SQLSTATEs that say the server is gone, going, or not taking connections: connection
# exceptions (class 08), admin/crash shutdown, "cannot connect now", too many connections.
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
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

    # pool_pre_ping's ping waits as long as the connection lets it, for ever on a half-open
    # one. This one is bounded; a connection that fails it is dropped and the pool connects
    # anew (that connect is bounded, and raises DatabaseUnavailable if it fails).
    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        try:
            await_(dbapi_connection.driver_connection.fetchrow(";", timeout=connect_timeout))
        except Exception as e:
            raise DisconnectionError(f"a pooled connection did not answer: {type(e).__name__}") from e

    return engine


@asynccontextmanager
async def tenant_session(engine: AsyncEngine, tenant_id: uuid.UUID | str) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction that sees only this tenant's rows."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        async with session.begin():
            await session.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
            yield session
