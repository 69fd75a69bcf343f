"""Token buckets in PostgreSQL (token_buckets), so every API process and worker draws from
the same one: one per (tenant, kind, key). A bucket holds at most `burst` tokens and refills
at `per_minute`. Kinds: 'submissions' and 'form_submissions' (the API, key ''), 'sms' and
'whatsapp' (deliveries, key: the country calling code)."""

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from lodestone.db import tenant_transaction

MIN_WAIT = 0.05


@dataclass(frozen=True)
class Rate:
    kind: str
    per_minute: float
    burst: int


def _level(p: int) -> str:
    return f"LEAST(${p + 4}, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * ${p + 3} / 60)"


def take_sql(p: int = 1) -> str:
    """The statement that takes one token when one is there (a row RETURNed) with its
    parameters from $p: take_args. The row lock of ON CONFLICT orders concurrent takers, and
    each sees the tokens the one before it left; the lock is held until the transaction ends.
    clock_timestamp(), not now(): a transaction that began earlier may take the lock later.
    It can stand as a CTE in a caller's statement (services.submissions: no round trip more)."""
    return f"""
    INSERT INTO token_buckets AS b (tenant_id, kind, key, tokens, updated_at)
    VALUES (${p}, ${p + 1}, ${p + 2}, ${p + 4} - 1, clock_timestamp())
    ON CONFLICT (tenant_id, kind, key) DO UPDATE
    SET tokens = {_level(p)} - 1, updated_at = clock_timestamp()
    WHERE {_level(p)} >= 1
    RETURNING tokens
    """


def take_args(tenant_id: uuid.UUID | str, rate: Rate, key: str = "") -> tuple[Any, ...]:
    return uuid.UUID(str(tenant_id)), rate.kind, key, float(rate.per_minute), float(max(rate.burst, 1))


TAKE = take_sql()
LEVEL = f"SELECT {_level(1)} FROM token_buckets AS b WHERE tenant_id = $1 AND kind = $2 AND key = $3"


async def wait_for_token(db: asyncpg.Connection, tenant_id: uuid.UUID | str, rate: Rate, key: str = "") -> float:
    """After a take that found no token: the seconds until one is there."""
    if rate.per_minute <= 0:
        return float("inf")
    level = await db.fetchval(LEVEL, *take_args(tenant_id, rate, key)) or 0.0
    return max((1 - float(level)) * 60 / float(rate.per_minute), MIN_WAIT)


async def take(engine: AsyncEngine, tenant_id: uuid.UUID | str, rate: Rate, key: str = "") -> float:
    """Take one token in a transaction of its own: 0.0 when taken, else the seconds until one
    is there (one statement when taken, two when not)."""
    async with tenant_transaction(engine, uuid.UUID(str(tenant_id))) as db:
        if await db.fetchrow(TAKE, *take_args(tenant_id, rate, key)) is not None:
            return 0.0
        return await wait_for_token(db, tenant_id, rate, key)
