"""Parts spooled to disk on their way to a multipart upload.

A part is cut from the stream into an anonymous temporary file (TMPDIR; gone when closed,
or when the process dies), hashed as it is written, and sent from there. Memory holds a
few chunks whatever the part size; disk holds the parts in flight plus the one filling.
"""

import asyncio
import hashlib
import os
import tempfile
from typing import BinaryIO

SPOOL_BATCH = 2 * 1024 * 1024  # chunks gathered before one writev into the spool file


def writev_all(fd: int, views: list[memoryview]) -> None:
    """Write every buffer, in order, in as few writev calls as the kernel allows."""
    while views:  # writev may write less than asked
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


class SpooledPart:
    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.size = 0  # bytes written to the file
        self.digest = hashlib.sha256()  # of this part, for a signed-payload upload
        self._batch: list[memoryview] = []
        self._batched = 0

    @classmethod
    async def open(cls) -> "SpooledPart":
        return cls(await asyncio.to_thread(tempfile.TemporaryFile))

    @property
    def length(self) -> int:
        return self.size + self._batched

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    async def add(self, view: memoryview, whole: "hashlib._Hash") -> None:
        """Append bytes; every SPOOL_BATCH, hash (the part and the whole object) and write
        them in a thread, off the event loop."""
        self._batch.append(view)
        self._batched += len(view)
        if self._batched >= SPOOL_BATCH:
            await self.flush(whole)

    async def flush(self, whole: "hashlib._Hash") -> None:
        batch, self._batch, batched, self._batched = self._batch, [], self._batched, 0
        if batch:
            await asyncio.to_thread(self._store, batch, whole)
            self.size += batched

    def _store(self, batch: list[memoryview], whole: "hashlib._Hash") -> None:
        for view in batch:
            self.digest.update(view)
            whole.update(view)
        writev_all(self.file.fileno(), batch)

    def close(self) -> None:
        self.file.close()
