"""An upload that arrives in pieces (the tus protocol, or S3 part URLs), until it is whole.

The row holds what the pieces need: the declared length, the offset received and made
durable so far, and the store's handle on the partial object (the partial file's name on
the filesystem store, the multipart upload id on S3). When the last byte arrives the
object is published under the upload's key, an `uploads` row with the same id takes its
place and this row is deleted. An upload untouched until `expires_at` is swept, bytes
and row (services/uploads_resumable.py).
"""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime
from sqlmodel import Field, SQLModel

from schema.columns import _tenant, _ts


class ResumableUpload(SQLModel, table=True):
    __tablename__ = "resumable_uploads"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = _tenant()
    key: str
    length: int = Field(sa_type=BigInteger)
    received: int = Field(default=0, sa_type=BigInteger)
    content_type: str
    store_upload_id: str
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    created_at: datetime = _ts()
