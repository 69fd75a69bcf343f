"""Reclaiming what crashed writes leave behind: partial files (filesystem store) and
incomplete multipart uploads (S3).

A partial is reclaimed once it was last modified more than PARTIAL_MAX_AGE_SECONDS ago and
nothing is writing it. On the filesystem "nothing is writing it" is exact: a writer holds
an flock on its partial file while it writes (the kernel drops it when the writer dies).
Between the parts of a resumable ingest the file is not locked, so the age protects it: an
ingest modifies its partial at every part. S3 has no locks, so there the age alone decides,
measured from the upload's newest part.
"""

import asyncio
import contextlib
import fcntl
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lodestone.storage.base import ObjectNotFound

if TYPE_CHECKING:
    from lodestone.storage.base import ObjectStore
    from lodestone.storage.s3 import S3Store

log = logging.getLogger("lodestone.storage")


def lock_for_writing(fd: int, path: Path, wait: bool = True) -> None:
    """Lock a partial file for its writer. Waits out a sweep looking at it (without wait:
    BlockingIOError while anyone holds it), and raises ObjectNotFound if that sweep
    reclaimed it."""
    fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    if os.fstat(fd).st_nlink == 0:
        raise ObjectNotFound(f"partial {path.name} was reclaimed")


def reclaim_file(path: Path, cutoff: float) -> bool:
    """Remove a partial file last modified before cutoff that no writer holds."""
    try:
        if not stat.S_ISREG((st := path.lstat()).st_mode) or st.st_mtime > cutoff:
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer
        st = os.fstat(fd)
        if st.st_nlink == 0 or st.st_mtime > cutoff:
            return False  # gone already, or written since it was looked at
        with contextlib.suppress(FileNotFoundError):  # published meanwhile (a rename)
            os.unlink(path)
            return True
        return False
    finally:
        os.close(fd)


def reclaim_dir(directory: Path, cutoff: float) -> int:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    return sum(reclaim_file(directory / name, cutoff) for name in names)


def abort_stale_uploads(store: "S3Store", cutoff: float) -> int:
    """Abort the bucket's incomplete multipart uploads last modified before cutoff."""
    from minio.error import S3Error

    client, removed, key_marker, id_marker = store.client, 0, None, None
    while True:
        page = client._list_multipart_uploads(store.bucket, key_marker=key_marker, upload_id_marker=id_marker)
        for upload in page.uploads:
            try:
                if upload.upload_id and _last_modified(store, upload) < cutoff:
                    client._abort_multipart_upload(store.bucket, upload.object_name, upload.upload_id)
                    removed += 1
            except S3Error as e:
                if not store._missing(e):  # completed or aborted meanwhile
                    raise
        if not page.is_truncated or not page.uploads:
            return removed
        # minio's page leaves NextUploadIdMarker unread: continue after the last upload seen.
        key_marker, id_marker = page.uploads[-1].object_name, page.uploads[-1].upload_id


def _last_modified(store: "S3Store", upload: Any) -> float:
    """An upload's newest part's time, or its start's when it has none."""
    newest = upload.initiated_time.timestamp() if upload.initiated_time else 0.0
    marker = None
    while True:
        listed = store.client._list_parts(store.bucket, upload.object_name, upload.upload_id, part_number_marker=marker)
        newest = max([newest, *(p.last_modified.timestamp() for p in listed.parts if p.last_modified)])
        if not listed.is_truncated or not listed.next_part_number_marker:
            return newest
        marker = listed.next_part_number_marker


async def reclaim_once(store: "ObjectStore", max_age: float) -> int:
    """One sweep; errors are logged, never raised (a sweep must not take its process down)."""
    try:
        removed = await store.reclaim_partials(max_age)
    except Exception as e:  # noqa: BLE001 - logged, and the next sweep tries again
        log.warning("reclaiming partial uploads failed: %s", type(e).__name__)
        return 0
    if removed:
        log.info("reclaimed %d partial uploads older than %.0fs", removed, max_age)
    return removed


async def sweep_forever(store: "ObjectStore", max_age: float, every: float) -> None:
    """reclaim_once now and every `every` seconds, until cancelled."""
    while True:
        await reclaim_once(store, max_age)
        await asyncio.sleep(every)
