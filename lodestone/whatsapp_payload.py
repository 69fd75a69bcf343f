"""The WhatsApp Cloud API webhook payload, parsed and checked: entry -> changes -> value.

Unknown fields are ignored, so new fields Meta adds do not break the webhook."""

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

MEDIA_KINDS = ("image", "video", "document", "audio", "sticker")
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Metadata(_Part):
    phone_number_id: str
    display_phone_number: str | None = None


class Profile(_Part):
    name: str | None = None


class ContactInfo(_Part):
    wa_id: str
    profile: Profile | None = None


class Text(_Part):
    body: str


class Media(_Part):
    id: str | None = None
    caption: str | None = None


class InboundMessage(_Part):
    id: str
    from_: str | None = Field(default=None, alias="from")  # absent on some system notices
    type: str
    timestamp: str | None = None
    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    document: Media | None = None
    audio: Media | None = None
    sticker: Media | None = None

    @property
    def body(self) -> str | None:
        if self.type == "text":
            return self.text.body if self.text else None
        media = getattr(self, self.type, None) if self.type in MEDIA_KINDS else None
        return media.caption if isinstance(media, Media) else None

    @property
    def sent_at(self) -> datetime:
        try:
            return datetime.fromtimestamp(int(self.timestamp or ""), UTC)
        except (ValueError, OverflowError, OSError):
            return datetime.now(UTC)


class MessageStatus(_Part):
    id: str
    status: str
    recipient_id: str | None = None


class ChangeValue(_Part):
    metadata: Metadata | None = None
    contacts: list[ContactInfo] = Field(default_factory=list)
    messages: list[InboundMessage] = Field(default_factory=list)
    statuses: list[MessageStatus] = Field(default_factory=list)

    def contact_names(self) -> dict[str, str | None]:
        """Every wa_id this change mentions, with its profile name when Meta sent one."""
        names: dict[str, str | None] = {m.from_: None for m in self.messages if m.from_}
        for c in self.contacts:
            names[c.wa_id] = c.profile.name if c.profile else None
        return names


class Change(_Part):
    field: str | None = None
    value: ChangeValue


class Entry(_Part):
    id: str | None = None
    changes: list[Change] = Field(default_factory=list)


class WebhookPayload(_Part):
    object: str | None = None
    entry: list[Entry] = Field(default_factory=list)

    def routed_values(self) -> list[ChangeValue]:
        return [c.value for e in self.entry for c in e.changes if c.value.metadata is not None]
