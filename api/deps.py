"""Typed dependencies: the clients built once in the lifespan, and the caller's identity."""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.auth import Principal, TokenVerifier, unauthorized
from api.limits import TenantRateLimiter, UploadSlots
from api.problems import Problem
from lodestone.db import tenant_session
from lodestone.logs import bind
from lodestone.settings import Settings
from lodestone.storage import ObjectStore


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    temporal: Client
    store: ObjectStore
    http: httpx.AsyncClient
    verifier: TokenVerifier
    submissions_limiter: TenantRateLimiter
    forms_limiter: TenantRateLimiter
    upload_slots: UploadSlots


def get_state(request: Request) -> AppState:
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
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(role: str) -> Callable[[Principal], Principal]:
    def check(principal: PrincipalDep) -> Principal:
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
