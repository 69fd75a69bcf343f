"""A tenant's LLM calls and PDF renders in flight, capped across every worker: a lease per
call in PostgreSQL (tenant_leases), one row per slot 0..max-1 of (tenant, kind), taken before
the call and deleted after it. The cap is the tenant's effective max_llm_calls or max_renders
(tenants.limits, else TENANT_MAX_LLM_CALLS / TENANT_MAX_RENDERS), read in the same statement.

A lease lasts LEASE_SECONDS and its holder extends it every RENEW_SECONDS while the call
runs, so a worker killed mid-call (kill -9, a lost host) holds its slot at most LEASE_SECONDS
more. No free slot raises SlotsBusy (lodestone.busy): the caller gives its worker slot back
and asks again later; nothing queues, so waiters are not served in order.

Bounds: a cap lowered while calls run admits no new one until enough of them end; a holder
that cannot reach PostgreSQL to extend its lease for LEASE_SECONDS can lose the slot to
another call (one call over the cap, for the rest of that call)."""

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from lodestone.busy import Busy
from lodestone.db import run_in_tenant, tenant_transaction
from lodestone.settings import Settings
from lodestone.tenant_limits import effective

log = logging.getLogger("lodestone.tenant_slots")

Kind = Literal["llm", "render"]
LIMIT_OF: dict[str, str] = {"llm": "max_llm_calls", "render": "max_renders"}
LEASE_SECONDS = 60.0
RENEW_SECONDS = 20.0
BUSY_RETRY_SECONDS = (1.0, 3.0)  # a busy caller asks again after a random time in this range
TAKE_TRIES = 3  # a free slot another caller took first: look again this often

# A free slot chosen at random (two callers rarely pick the same one); one another caller
# took between the look and the insert comes back empty with free > 0. An expired lease's
# row is taken over. The cap: the tenant's override, else the setting ($4).
TAKE = """
WITH cap AS (
  SELECT COALESCE((SELECT (t.limits ->> $3)::int FROM tenants t WHERE t.id = $1), $4) AS n
), free AS (
  SELECT s FROM cap, generate_series(0, cap.n - 1) AS s
  WHERE NOT EXISTS (
    SELECT 1 FROM tenant_leases l
    WHERE l.tenant_id = $1 AND l.kind = $2 AND l.slot = s AND l.expires_at > clock_timestamp()
  )
), took AS (
  INSERT INTO tenant_leases AS l (tenant_id, kind, slot, holder, expires_at)
  SELECT $1, $2, s, $5, clock_timestamp() + make_interval(secs => $6)
  FROM free ORDER BY random() LIMIT 1
  ON CONFLICT (tenant_id, kind, slot) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
  WHERE l.expires_at <= clock_timestamp()
  RETURNING slot
)
SELECT (SELECT slot FROM took) AS slot, (SELECT count(*) FROM free) AS free, (SELECT n FROM cap) AS cap
"""


class SlotsBusy(Busy):
    """Every one of the tenant's slots of this kind is held."""


async def _take(
    engine: AsyncEngine, tenant_id: uuid.UUID, kind: Kind, default: int, holder: uuid.UUID
) -> tuple[int | None, int]:
    """(the slot taken or None, the tenant's cap)."""
    cap = default
    for _ in range(TAKE_TRIES):
        async with tenant_transaction(engine, tenant_id) as db:
            row = await db.fetchrow(TAKE, tenant_id, kind, LIMIT_OF[kind], default, holder, LEASE_SECONDS)
        cap = row["cap"]
        if row["slot"] is not None or not row["free"]:
            return row["slot"], cap
    return None, cap


def _where(tenant_id: uuid.UUID, kind: Kind, slot: int, holder: uuid.UUID) -> str:
    # Inlined: a UUID's text, a kind from Kind, an int; nothing to escape (run_in_tenant takes no parameters).
    return f"tenant_id = '{tenant_id}' AND kind = '{kind}' AND slot = {int(slot)} AND holder = '{holder}'"


async def _renew(engine: AsyncEngine, tenant_id: uuid.UUID, kind: Kind, slot: int, holder: uuid.UUID) -> None:
    extend = (
        f"UPDATE tenant_leases SET expires_at = clock_timestamp() + interval '{LEASE_SECONDS} seconds' "
        f"WHERE {_where(tenant_id, kind, slot, holder)}"
    )
    while True:
        await asyncio.sleep(RENEW_SECONDS)
        try:
            await run_in_tenant(engine, tenant_id, extend)
        except Exception as e:  # noqa: BLE001 - tried again; the lease lasts LEASE_SECONDS meanwhile
            log.warning("could not extend the %s lease of tenant %s: %s", kind, tenant_id, type(e).__name__)


@asynccontextmanager
async def tenant_slot(engine: AsyncEngine, settings: Settings, tenant_id: str, kind: Kind) -> AsyncIterator[None]:
    """Hold one of the tenant's `kind` slots for the body, or raise SlotsBusy at once."""
    tenant = uuid.UUID(str(tenant_id))
    holder = uuid.uuid4()
    default = getattr(effective(settings, None), LIMIT_OF[kind])
    slot, cap = await _take(engine, tenant, kind, default, holder)
    if slot is None:
        raise SlotsBusy(
            f"this tenant's {cap} {kind} slot(s) are all in use; asking again shortly",
            random.uniform(*BUSY_RETRY_SECONDS),
        )
    renew = asyncio.create_task(_renew(engine, tenant, kind, slot, holder))
    try:
        yield
    finally:
        renew.cancel()
        await asyncio.gather(renew, return_exceptions=True)
        try:
            await run_in_tenant(engine, tenant, f"DELETE FROM tenant_leases WHERE {_where(tenant, kind, slot, holder)}")
        except Exception as e:  # noqa: BLE001 - the lease expires on its own within LEASE_SECONDS
            log.warning("could not release the %s lease of tenant %s: %s", kind, tenant, type(e).__name__)
