"""How the filesystem store turns a stream into a hashed file.

Chunks are gathered into contiguous batches (Batcher), and two threads of one upload's own
(Pipeline) hash and write each batch. Each takes the next batch as soon as it is done with
the last: the event loop, busy receiving the body, only hands batches in, and no thread
waits for it between one batch and the next.
"""

import asyncio
import collections
import contextlib
import hashlib
import queue
import threading
from collections.abc import AsyncIterator, Callable

from lodestone.storage.base import ObjectTooLarge


class Gathered(list[bytes]):
    """A batch of large chunks passed on uncopied: `size` bytes in all."""

    size = 0


Chunk = bytes | bytearray | memoryview
Buffer = Chunk | Gathered
# Chunks at least this large (the server's reads of a fast body: about 256 KiB) are
# gathered into a batch by reference instead of copied into one.
GATHER_MIN = 128 * 1024


def nbytes(batch: Buffer) -> int:
    return batch.size if isinstance(batch, Gathered) else len(batch)


def views(batch: Buffer) -> list[memoryview]:
    return [memoryview(c) for c in batch] if isinstance(batch, Gathered) else [memoryview(batch)]


def hashing(digest: "hashlib._Hash") -> Callable[[Buffer], None]:
    """A step that hashes each batch."""

    def step(batch: Buffer) -> None:
        if isinstance(batch, Gathered):
            for chunk in batch:
                digest.update(chunk)
        else:
            digest.update(batch)

    return step


# One batch filling, and PIPELINE_DEPTH batches being hashed and written or waiting for
# it: about 3 MiB of body per upload. Larger or deeper batches bought no throughput, only
# resident memory.
WRITE_BATCH = 1024 * 1024
PIPELINE_DEPTH = 2


class Batcher:
    """Gathers a stream's chunks into batches of about WRITE_BATCH bytes. Small chunks are
    copied into contiguous buffers, so hashing or writing them is one call that releases
    the GIL. Large bytes chunks (GATHER_MIN and up: what the server reads from a body that
    arrives fast) are passed on by reference, a batch's worth in a Gathered list: copying
    them cost the API ~0.06 CPU-s/GB more than the extra GIL hand-overs of hashing them one
    by one (bench/uploads.py, 1 GB, 3 rounds: 1.59 → 1.53 for POST /v1/uploads). Buffers
    given back to recycle (from any thread) are reused."""

    def __init__(self) -> None:
        self.free: collections.deque[bytearray] = collections.deque()
        self.gathered = Gathered()
        self._fill(bytearray(WRITE_BATCH))

    def add(self, chunk: Chunk) -> list[Buffer]:
        """The batches that chunk completes, in order."""
        if not self.filled and isinstance(chunk, bytes) and len(chunk) >= GATHER_MIN:
            # Large immutable chunks are passed on as they are, a batch's worth at a time.
            self.gathered.append(chunk)
            self.gathered.size += len(chunk)
            if self.gathered.size < WRITE_BATCH:
                return []
            full: list[Buffer] = [self.gathered]
            self.gathered = Gathered()
            return full
        # A small chunk after gathered ones: those are copied too, so every batch but the
        # last holds at least WRITE_BATCH bytes, and a body that trickles in is written a
        # full batch at a time.
        done: list[Buffer] = []
        pending, self.gathered = [*self.gathered, chunk], Gathered()
        for piece in pending:
            view = memoryview(piece)
            while view:
                n = min(len(view), WRITE_BATCH - self.filled)
                self.target[self.filled : self.filled + n] = view[:n]
                self.filled += n
                view = view[n:]
                if self.filled == WRITE_BATCH:
                    done.append(self.buffer)
                    self._fill(self.free.pop() if self.free else bytearray(WRITE_BATCH))
        return done

    def _fill(self, buffer: bytearray) -> None:
        # Copies go through a memoryview: assigning to a bytearray slice from anything but
        # a bytearray copies the source into a new bytearray first.
        self.buffer, self.target, self.filled = buffer, memoryview(buffer), 0

    def rest(self) -> Buffer:
        return self.gathered if self.gathered else self.target[: self.filled]

    def recycle(self, batch: Buffer) -> None:
        if isinstance(batch, bytearray):
            self.free.append(batch)


class _Batch:
    __slots__ = ("data", "stages_left")

    def __init__(self, data: Buffer, stages: int) -> None:
        self.data = data
        self.stages_left = stages


class Pipeline:
    """Applies each step (hash, write) to every batch in order, each on a thread of its
    own, with at most PIPELINE_DEPTH batches in flight: put() waits for a free slot, so a
    slow disk holds the stream back instead of filling memory. The first error of a step
    stops it and is raised by the next put() or by close()."""

    def __init__(self, name: str, steps: list[Callable[[Buffer], None]], done: Callable[[Buffer], None]) -> None:
        """`done` gets each batch once every step has finished with it (from a step's thread)."""
        self.loop = asyncio.get_running_loop()
        self.done = done
        self.lock = threading.Lock()
        self.slots = PIPELINE_DEPTH
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.inboxes: list[queue.SimpleQueue[_Batch | None]] = [queue.SimpleQueue() for _ in steps]
        self.threads = [
            threading.Thread(target=self._run, args=(step, inbox), name=f"{name}-{n}", daemon=True)
            for n, (step, inbox) in enumerate(zip(steps, self.inboxes, strict=True))
        ]
        try:
            for thread in self.threads:
                thread.start()
        except BaseException:  # the threads already started must not wait forever
            self._end()
            raise

    def _run(self, step: Callable[[Buffer], None], inbox: "queue.SimpleQueue[_Batch | None]") -> None:
        try:
            while (batch := inbox.get()) is not None:
                step(batch.data)
                self._done(batch)
        except BaseException as e:  # handed to the event loop's side, which raises it
            with self.lock:
                self.error = self.error or e
            self._wake()

    def _done(self, batch: _Batch) -> None:
        with self.lock:
            batch.stages_left -= 1
            if batch.stages_left:
                return
            self.slots += 1
        self.done(batch.data)
        self._wake()

    def _wake(self) -> None:
        with self.lock:
            waiter, self.waiter = self.waiter, None
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits now
                self.loop.call_soon_threadsafe(_resolve, waiter)

    async def put(self, data: Buffer) -> None:
        while True:
            with self.lock:
                if self.error is not None:
                    raise self.error
                if self.slots:
                    self.slots -= 1
                    break
                waiter = self.waiter = self.loop.create_future()
            await waiter
        batch = _Batch(data, len(self.inboxes))
        for inbox in self.inboxes:
            inbox.put(batch)

    async def close(self) -> None:
        """Wait until every step has finished the batches put so far (or stopped on an
        error), then raise the first error. Safe to call after a failed put()."""
        self._end()
        for thread in self.threads:
            await asyncio.to_thread(thread.join)
        if self.error is not None:
            raise self.error

    def join(self) -> None:
        """close() that blocks: for a caller that was cancelled while waiting in close()
        and must not release what the steps use (a file) while they still run."""
        self._end()
        for thread in self.threads:
            thread.join()

    def _end(self) -> None:
        for inbox in self.inboxes:  # a step stops at the first None; any more are never read
            inbox.put(None)


async def pump(chunks: AsyncIterator[Chunk], batcher: Batcher, pipeline: Pipeline, limit: int | None) -> int:
    """Feed a stream through batcher into pipeline, to its end (ObjectTooLarge past
    `limit` bytes), and wait for the steps to finish; how many bytes it held."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if limit is not None and size > limit:
            raise ObjectTooLarge(limit)
        for batch in batcher.add(chunk):
            await pipeline.put(batch)
    await pipeline.put(batcher.rest())
    await pipeline.close()
    return size


def _resolve(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)
