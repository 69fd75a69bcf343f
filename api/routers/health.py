"""Liveness and readiness."""

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "a dependency is down"}})
async def ready(state: StateDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"down: {type(e).__name__}"
    try:
        await state.temporal.service_client.check_health(
            timeout=timedelta(seconds=state.settings.temporal_rpc_timeout_seconds)
        )
        checks["temporal"] = "ok"
    except Exception as e:  # noqa: BLE001
        checks["temporal"] = f"down: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)
