"""Dead letters across tenants: the operator_dead_letters view (migration 0007), read
through the owner's opt-in, read-only operator session, and the table a terminal shows."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from rich import box
from rich.table import Table
from rich.text import Text
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.operator_db import operator_session

COLUMNS = (
    "job_id",
    "tenant_id",
    "tenant_name",
    "workflow_key",
    "job_status",
    "failed_step",
    "error_code",
    "message",
    "created_at",
    "redriven_at",
)


@dataclass
class DeadLetter:
    job_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_name: str
    workflow_key: str
    job_status: str
    failed_step: str | None
    error_code: str
    message: str
    created_at: datetime
    redriven_at: datetime | None


async def list_dead_letters(
    owner: AsyncEngine, tenant: uuid.UUID | None = None, limit: int = 50, everything: bool = False
) -> list[DeadLetter]:
    """Newest first. By default only jobs that are failed now: a redriven job that is running
    or delivered drops out (everything=True keeps it), one that failed again is back."""
    where, params = [], {"limit": limit}
    if tenant is not None:
        where.append("tenant_id = :tenant")
        params["tenant"] = tenant
    if not everything:
        where.append("job_status = 'failed'")
    query = (
        f"SELECT {', '.join(COLUMNS)} FROM operator_dead_letters "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY created_at DESC, job_id LIMIT :limit"
    )
    async with operator_session(owner) as session:
        rows = (await session.execute(text(query), params)).all()
    return [DeadLetter(*row) for row in rows]


def _minute(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def dead_letters_table(rows: list[DeadLetter], link: Callable[[str], str]) -> Table:
    """The table a terminal shows: two columns, so that it fits 80 columns with nothing cut.
    The job id (what redrive takes) stays whole on its own line, above when the job failed
    and was redriven; the other column wraps: tenant and workflow, the failed step and
    error code, the whole message."""
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        caption=f"Web UI: {link('<job>')} (--plain prints each link)",
        caption_justify="left",
    )
    table.add_column("job\nfailed\nredriven", min_width=36, no_wrap=True)
    table.add_column("tenant · workflow\nfailed at: error\nmessage", overflow="fold", ratio=1)
    for r in rows:
        table.add_row(
            Text.assemble(
                (str(r.job_id), f"link {link(str(r.job_id))}"),
                f"\n{_minute(r.created_at)}\n{_minute(r.redriven_at)}",
            ),
            Text(f"{r.tenant_name} · {r.workflow_key}\n{r.failed_step or '-'}: {r.error_code}\n{r.message}"),
            end_section=True,
        )
    return table
