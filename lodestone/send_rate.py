"""The per-tenant, per-country send rate of sms and whatsapp deliveries: a token bucket per
(tenant, channel, country calling code) in PostgreSQL (send_rate_buckets), so every worker
draws from the same one. A bucket holds at most `burst` sends and refills at `per_minute`."""

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lodestone.db import tenant_session

# One statement takes a token when one is there: the row lock of ON CONFLICT orders concurrent
# takers, and each sees the tokens the one before it left.
_TAKE = text(
    """
    INSERT INTO send_rate_buckets AS b (tenant_id, channel, prefix, tokens, updated_at)
    VALUES (:tenant, :channel, :prefix, :burst - 1, clock_timestamp())
    ON CONFLICT (tenant_id, channel, prefix) DO UPDATE
    SET tokens = LEAST(:burst, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * :rate / 60) - 1,
        updated_at = clock_timestamp()
    WHERE LEAST(:burst, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * :rate / 60) >= 1
    RETURNING tokens
    """
)
_LEVEL = text(
    """
    SELECT LEAST(:burst, tokens + EXTRACT(EPOCH FROM clock_timestamp() - updated_at) * :rate / 60)
    FROM send_rate_buckets WHERE tenant_id = :tenant AND channel = :channel AND prefix = :prefix
    """
)


async def take(engine: AsyncEngine, tenant_id: str, channel: str, prefix: str, per_minute: float, burst: int) -> float:
    """Take one send from the bucket: 0.0 when taken, else the seconds until one is there."""
    args = {
        "tenant": uuid.UUID(tenant_id),
        "channel": channel,
        "prefix": prefix,
        "rate": float(per_minute),
        "burst": float(max(burst, 1)),
    }
    async with tenant_session(engine, tenant_id) as session:
        if (await session.execute(_TAKE, args)).first() is not None:
            return 0.0
        level = (await session.execute(_LEVEL, args)).scalar_one_or_none() or 0.0
    return max((1 - float(level)) * 60 / float(per_minute), 0.05)
