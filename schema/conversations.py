"""Conversation tables: WhatsApp contacts, their messages, 15-day summaries; and the two
routing tables that find a tenant before it is known (a phone number, a public form slug)."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from schema.columns import _tenant, _ts


class ChannelRoute(SQLModel, table=True):
    """Which tenant owns a WhatsApp phone_number_id. Readable by every tenant (a webhook
    arrives before its tenant is known); writable only by its own tenant."""

    __tablename__ = "channel_routes"
    phone_number_id: str = Field(primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    created_at: datetime = _ts()


class FormRoute(SQLModel, table=True):
    """Which tenant owns a public form slug. Readable by every tenant (a public submission
    arrives before its tenant is known); writable only by its own tenant."""

    __tablename__ = "form_routes"
    slug: str = Field(primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    created_at: datetime = _ts()


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("tenant_id", "wa_id"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    wa_id: str
    phone_number_id: str | None = None
    name: str | None = None
    created_at: datetime = _ts()


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "message_id"),
        UniqueConstraint("tenant_id", "client_key"),
        Index("ix_messages_contact_time", "tenant_id", "contact_id", "sent_at"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    contact_id: uuid.UUID = Field(foreign_key="contacts.id", index=True)
    message_id: str | None = None  # WhatsApp's id; an outbound message has it once sent
    client_key: str | None = None  # our idempotency key for outbound sends
    direction: str  # "in" or "out"
    kind: str = "text"
    status: str = "received"  # in: received; out: pending -> sent | failed
    body: str | None = None  # personal data: purged after MESSAGE_RETENTION_DAYS
    sent_at: datetime = _ts()
    purged_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class Summary(SQLModel, table=True):
    __tablename__ = "summaries"
    __table_args__ = (UniqueConstraint("contact_id", "window_end"),)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    contact_id: uuid.UUID = Field(foreign_key="contacts.id", index=True)
    window_start: datetime = Field(sa_type=DateTime(timezone=True))
    window_end: datetime = Field(sa_type=DateTime(timezone=True))
    message_count: int = 0
    artifact_key: str
    media_id: str | None = None
    wa_message_id: str | None = None
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    created_at: datetime = _ts()
