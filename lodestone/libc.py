"""Functions of the C library that Python's os module does not wrap."""

import ctypes
import ctypes.util
import os
from typing import Any

SYNC_FILE_RANGE_WAIT_BEFORE = 1
SYNC_FILE_RANGE_WRITE = 2
SYNC_FILE_RANGE_WAIT_AFTER = 4


def _load() -> ctypes.CDLL | None:
    try:  # find_library may run ldconfig: once per process, not per call
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _load()


def libc_function(name: str, argtypes: list[Any] | None = None) -> Any:
    """The named C library function, or None where the library lacks it (not glibc)."""
    function = getattr(_LIBC, name, None)
    if function is None:
        return None
    if argtypes is not None:
        function.argtypes = argtypes
    return function


_sync_file_range = libc_function("sync_file_range", [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint])


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a file range to disk, without waiting for it (Linux
    sync_file_range). A hint: where unsupported it does nothing, and fsync still decides."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def finish_writeback(fd: int, offset: int, length: int) -> None:
    """Wait until a file range is on disk, then drop it from the page cache: a large
    sequential write keeps a bounded amount of dirty and cached data instead of all of it."""
    if _sync_file_range is not None:
        _sync_file_range(
            fd, offset, length, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER
        )
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
