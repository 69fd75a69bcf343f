"""The API's allocator settings: streamed chunks reuse heap memory instead of being mapped
and page-faulted afresh each time."""

import subprocess
import sys
from pathlib import Path

CHURN = """
import os, resource, sys
sys.path.insert(0, {root!r})
if {tuned}:
    from lodestone.memory import tune_malloc
    assert tune_malloc()
block = os.urandom(256 * 1024)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(400):  # 100 MiB of body, one ~256 KiB chunk at a time, as uvicorn hands it over
    chunk = bytes(bytearray(block))
    del chunk
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(script: str, **fields: object) -> int:
    """Run a script in a fresh interpreter (allocator settings are per process); its printed number."""
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", script.format(root=root, **fields)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def test_tuned_allocator_reuses_chunk_memory():
    untuned, tuned = _run(CHURN, tuned=False), _run(CHURN, tuned=True)
    # Untuned glibc maps and zero-fills each chunk (64 pages apiece); tuned, the heap is reused.
    assert tuned * 10 < untuned, (tuned, untuned)
    assert tuned < 400  # well under one fault per chunk


RELEASE = """
import os, sys
sys.path.insert(0, {root!r})
from lodestone.memory import release_free_memory, tune_malloc
assert tune_malloc()

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

chunks, kept_alive = [], []
for _ in range(256):  # 64 MiB of chunks on the heap, each followed by something that stays
    chunks.append(bytes(bytearray(256 * 1024)))
    kept_alive.append(bytes(bytearray(4096)))
del chunks  # holes between live blocks: the heap top cannot shrink past them
kept = rss()
release_free_memory()
print(kept - rss())
"""


def test_release_free_memory_returns_the_heap_a_body_grew():
    assert _run(RELEASE) > 32 * 1024 * 1024
