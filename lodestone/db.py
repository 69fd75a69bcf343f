"""Database access. Every unit of work runs in one transaction with the tenant set for
row-level security, via set_config(..., true) so it ends with the transaction.

A database that cannot be reached raises DatabaseUnavailable (or a DBAPIError that
`unavailable` recognises), never a bare socket error, so the API can answer it as an
outage (503) rather than as its own fault."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

# SQLSTATEs that say the server is gone, going, or not taking connections: connection
# exceptions (class 08), admin/crash shutdown, "cannot connect now", too many connections.
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL could not be reached (refused, timed out, shutting down or starting up)."""


def unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database is out of reach, not that a statement failed."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or (exc.orig is not None and unavailable(exc.orig))
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    cause = exc.__cause__
    return cause is not None and cause is not exc and unavailable(cause)


def make_engine(url: str, pool_size: int = 10, connect_timeout: float = 5.0) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                                 connect_args={"timeout": connect_timeout})

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # A refused or timed-out connect surfaces as a bare OSError or TimeoutError (not a
        # DBAPI error): name it here, the one place every new connection passes through.
        try:
            return dialect.connect(*cargs, **cparams)
        except (OSError, TimeoutError) as e:
            raise DatabaseUnavailable(f"PostgreSQL is unreachable: {type(e).__name__}") from e
        except Exception as e:
            if unavailable(e):
                raise DatabaseUnavailable(f"PostgreSQL is not taking connections: {type(e).__name__}") from e
            raise

    return engine


@asynccontextmanager
async def tenant_session(engine: AsyncEngine, tenant_id: uuid.UUID | str) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction that sees only this tenant's rows."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        async with session.begin():
            await session.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)}
            )
            yield session
