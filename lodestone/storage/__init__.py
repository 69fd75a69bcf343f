"""Object storage behind one interface: a filesystem store (the default) or MinIO/S3.

Keys look like `{tenant_id}/jobs/{job_id}/report.html` on both.
"""

from lodestone.settings import Settings
from lodestone.storage.base import (
    CHUNK,
    InvalidKey,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    PartRef,
    StorageFull,
    StoredObject,
    check_key,
    job_key,
)
from lodestone.storage.fs import FilesystemStore
from lodestone.storage.s3 import S3Store

__all__ = [
    "CHUNK",
    "FilesystemStore",
    "InvalidKey",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "PartRef",
    "S3Store",
    "StorageFull",
    "StoredObject",
    "check_key",
    "job_key",
    "make_store",
]


def make_store(settings: Settings) -> ObjectStore:
    if settings.s3_endpoint:
        return S3Store(settings)
    return FilesystemStore(settings.data_path / "objects", part_size=settings.upload_part_size)
