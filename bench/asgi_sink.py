"""Bare ASGI apps for the upload benchmarks, served by the same uvicorn (httptools, uvloop)
and allocator settings as the API. SINK_MODE picks what happens to the request body:

- drop (default): read and dropped: the transport ceiling (bench/ingest.py);
- batches: gathered into the filesystem store's batches and handed through its Pipeline
  to two steps that do nothing (bench/upload_layers.py);
- store: streamed into FilesystemStore.put_stream under SINK_STORE_DIR, hashed and
  written as an upload is, then deleted (bench/upload_layers.py).
"""

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lodestone.memory import tune_malloc  # noqa: E402
from lodestone.storage.batches import Batcher, Buffer, Pipeline  # noqa: E402
from lodestone.storage.fs import FilesystemStore  # noqa: E402

tune_malloc()
MODE = os.environ.get("SINK_MODE", "drop")
if MODE not in ("drop", "batches", "store"):
    raise SystemExit(f"SINK_MODE must be drop, batches or store, not {MODE!r}")
STORE = FilesystemStore(Path(os.environ["SINK_STORE_DIR"])) if MODE == "store" else None


async def body(receive) -> AsyncIterator[bytes]:  # type: ignore[no-untyped-def]
    while True:
        message = await receive()
        if chunk := message.get("body", b""):
            yield chunk
        if not message.get("more_body"):
            return


def nothing(batch: Buffer) -> None:
    pass


async def consume(chunks: AsyncIterator[bytes]) -> int:
    size = 0
    if MODE == "drop":
        async for chunk in chunks:
            size += len(chunk)
    elif MODE == "batches":
        batcher = Batcher()
        pipeline = Pipeline("sink", [nothing, nothing], batcher.recycle)
        async for chunk in chunks:
            size += len(chunk)
            for batch in batcher.add(chunk):
                await pipeline.put(batch)
        await pipeline.put(batcher.rest())
        await pipeline.close()
    else:
        assert STORE is not None
        stored = await STORE.put_stream("sink/body", chunks, "application/octet-stream")
        await STORE.delete("sink/body")
        size = stored.size
    return size


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    answer = b'{"size": %d}' % await consume(body(receive))
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})
