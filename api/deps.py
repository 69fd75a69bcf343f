"""Typed dependencies: the clients built once in the lifespan, and the caller's identity."""

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from activities.events import CHANNEL
from api.auth import Principal, TokenVerifier, unauthorized
from api.limits import SubmissionRates, UploadSlots
from api.problems import Problem
from lodestone.db import tenant_session
from lodestone.logs import bind
from lodestone.pg_listen import Listener
from lodestone.settings import Settings
from lodestone.storage import ObjectStore
from schema.tables import Tenant
from services.start_recorder import StartRecorder


class KnownTenants:
    """Whether a token's tenant exists: a valid token may name a tenant that was never
    created, or was deleted. A tenant found is remembered for ttl seconds, so a deleted one
    is refused within that time; one not found is asked about again on every request."""

    MAX_REMEMBERED = 100_000

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self.engine, self.ttl = engine, ttl
        self._found: dict[uuid.UUID, float] = {}

    async def exists(self, tenant_id: uuid.UUID) -> bool:
        now = time.monotonic()
        if now - self._found.get(tenant_id, -float("inf")) < self.ttl:
            return True
        async with tenant_session(self.engine, tenant_id) as session:
            found = await session.get(Tenant, tenant_id) is not None
        if found:
            if len(self._found) >= self.MAX_REMEMBERED:
                self._found.clear()
            self._found[tenant_id] = now
        else:
            self._found.pop(tenant_id, None)
        return found


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    temporal: Client
    store: ObjectStore
    http: httpx.AsyncClient
    verifier: TokenVerifier
    upload_slots: UploadSlots
    known_tenants: KnownTenants = field(init=False)
    rates: SubmissionRates = field(init=False)
    events: Listener = field(init=False)  # wakes job event streams (started in the lifespan)
    recorder: StartRecorder = field(init=False)  # records submitted jobs' starts (started in the lifespan)

    def __post_init__(self) -> None:
        self.known_tenants = KnownTenants(self.engine, self.settings.tenant_cache_seconds)
        self.rates = SubmissionRates(self.engine, self.settings, self.settings.tenant_cache_seconds)
        self.recorder = StartRecorder(self.engine)
        self.events = Listener(
            self.settings.app_database_url, CHANNEL, connect_timeout=self.settings.db_connect_timeout_seconds
        )


# Every dependency is async: FastAPI runs a sync one in a worker thread, a hop per request.
async def get_state(request: Request) -> AppState:
    return request.app.state.lodestone


StateDep = Annotated[AppState, Depends(get_state)]
_bearer = HTTPBearer(auto_error=False)


async def get_principal(
    state: StateDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer":
        raise unauthorized("missing bearer token")
    principal = await state.verifier.verify(creds.credentials)
    bind(tenant_id=str(principal.tenant_id))  # every later log line of this request names the tenant
    if not await state.known_tenants.exists(principal.tenant_id):
        raise Problem(403, "unknown_tenant", "the token's tenant does not exist")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(role: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        if not principal.allows(role):
            raise Problem(403, "forbidden", f"this action needs the {role} role")
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Editor = Annotated[Principal, Depends(require("editor"))]
Admin = Annotated[Principal, Depends(require("admin"))]


async def get_session(state: StateDep, principal: PrincipalDep) -> AsyncIterator[AsyncSession]:
    async with tenant_session(state.engine, principal.tenant_id) as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a 2xx means saved.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
