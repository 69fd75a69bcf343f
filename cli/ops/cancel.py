"""`lodestone ops cancel JOB_ID`: the same cancel as POST /v1/jobs/{id}/cancel (services/cancel.py),
for a job of any tenant (its tenant is looked up on the owner role, read only)."""

import sys
import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from cli.ops.runner import run, temporal
from lodestone.settings import get_settings

if TYPE_CHECKING:
    from temporalio.runtime import Runtime

    from services.cancel import Cancelled


def cancel(job_id: Annotated[uuid.UUID, typer.Argument(help="the job id (= its workflow id)")]) -> None:
    """Cancel a job that has not finished.

    Its running activities and child workflows are stopped, no further delivery is attempted,
    and the job and its open steps end cancelled. A pending job not started yet is cancelled
    at once. Prints the job id and `cancelled` or `cancelling` (its run was asked to stop).
    """
    from services.cancel import cancel_job
    from services.errors import Conflict, NotFound, OpsError
    from services.operator_db import engine, job_tenant

    settings = get_settings()

    async def go(runtime: "Runtime") -> "Cancelled":
        client = await temporal(runtime)
        async with engine(settings.admin_database_url) as owner, engine(settings.app_database_url) as app:
            tenant = await job_tenant(owner, job_id)
            if tenant is None:
                raise OpsError(f"job {job_id} not found")
            try:
                return await cancel_job(client, app, job_id, tenant=tenant)
            except (NotFound, Conflict) as e:
                raise OpsError(str(e)) from e

    done = run(go)
    sys.stdout.write(f"{done.job_id}\t{done.status}\n")
