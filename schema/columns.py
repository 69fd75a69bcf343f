"""Column helpers shared by the table modules."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kw)


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


def _json_as_written() -> Any:
    """A JSON document kept as its text (PostgreSQL `json`, not `jsonb`): an object's keys stay
    in the order they were written, as Step Functions keeps them and a state machine can show
    (States.JsonToString). For documents that are read whole, never queried into."""
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _json_as_written_or_null() -> Any:
    """As _json_as_written, where None is SQL NULL (not the JSON text `null`)."""
    return Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))


def _tenant() -> Any:
    return Field(foreign_key="tenants.id", index=True)
