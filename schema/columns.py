"""Column helpers shared by the table modules."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kw)


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


def _tenant() -> Any:
    return Field(foreign_key="tenants.id", index=True)
