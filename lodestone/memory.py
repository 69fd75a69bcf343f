"""Allocator settings for the long-running processes.

A streamed request body arrives as a run of ~256 KiB bytes objects, each freed as soon
as it is hashed and written. glibc's defaults serve blocks that size with mmap, or trim
them off the heap top as soon as they are freed, so every chunk is mapped, zero-filled
page by page and unmapped again: about one page fault per 4 KiB of body, which cost the
API more CPU than reading the socket itself. Fixed thresholds keep those blocks on the
heap, where the next chunk reuses them. The settings are bounded: at most TRIM_THRESHOLD
of free heap stays mapped, and blocks over MMAP_THRESHOLD still go straight to the OS;
release_free_memory gives the free heap back after a large body, so a burst does not stay
resident.
"""

import logging

from lodestone.libc import libc_function

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 16 * 1024 * 1024


def tune_malloc() -> bool:
    """Apply the thresholds on glibc; a no-op (False) on any other C library."""
    mallopt = libc_function("mallopt")
    if mallopt is None:
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc thresholds: mmap %d, trim %d (%s)", MMAP_THRESHOLD, TRIM_THRESHOLD, ok)
    return ok


_malloc_trim = libc_function("malloc_trim")


def release_free_memory() -> None:
    """Return the allocator's free pages to the OS (glibc malloc_trim); elsewhere a no-op."""
    if _malloc_trim is not None:
        _malloc_trim(0)
