"""One template evaluator of lodestone.template_pool: a long-lived child process that
renders one template at a time, under limits the kernel enforces.

- Memory: RLIMIT_AS, set once after Jinja2 is imported, at the address space the child
  has then plus the cap. An expression that builds more (`'x' * 300000000`) gets a
  MemoryError, reported as TemplateLimitExceeded.
- CPU time: ITIMER_PROF, armed for each evaluation. Its SIGPROF has no handler here, so
  the kernel ends the child even inside one long C call (a huge join or power); the
  parent reads the signal from the exit status.
- Output: evaluate() stops a template whose output passes the cap while it generates.

The protocol on stdin/stdout: each message is a 4-byte big-endian length and a body. A
request is a pickle of (source, context, html) from the parent; a reply is b"o" and the
UTF-8 output, or b"e" and JSON {"type", "message"}. After any limit the child reports and
exits, and the pool starts a fresh one. Its stdout is kept for replies only, and its
stderr goes nowhere: nothing a template or its data produce reaches a log.
"""

import json
import os
import pickle
import resource
import signal
import struct
import sys
from typing import BinaryIO

from lodestone.templating import (
    TemplateLimitExceeded,
    TemplateRenderError,
    TemplateSecurityViolation,
    evaluate,
)

HEADER = struct.Struct(">I")
READY = b"r"
EXIT_MEMORY = 3  # the child could not even report a MemoryError
ERRORS = (TemplateLimitExceeded, TemplateRenderError, TemplateSecurityViolation)


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def limit_memory(memory_mb: int) -> None:
    cap = _address_space() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _read(stream: BinaryIO) -> bytes | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None  # the parent went away
    return stream.read(HEADER.unpack(head)[0])


def _send(stream: BinaryIO, body: bytes) -> None:
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def _error(kind: str, message: str) -> bytes:
    return b"e" + json.dumps({"type": kind, "message": message[:2000]}).encode()


def answer(request: bytes, cpu_seconds: float, memory_mb: int, max_bytes: int) -> tuple[bytes, bool]:
    """The reply to one request, and whether a limit was hit (the child then exits)."""
    source, context, html = pickle.loads(request)
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        return b"o" + evaluate(source, context, html=html, max_bytes=max_bytes), False
    except MemoryError:
        return _error(
            "TemplateLimitExceeded", f"template needed more than TEMPLATE_MEMORY_MB ({memory_mb} MiB) of memory"
        ), True
    except ERRORS as e:
        return _error(type(e).__name__, str(e)), isinstance(e, TemplateLimitExceeded)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def main(argv: list[str]) -> None:
    cpu_seconds, memory_mb, max_bytes = float(argv[0]), int(argv[1]), int(argv[2])
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray write to stdout cannot corrupt a reply
    requests = sys.stdin.buffer
    limit_memory(memory_mb)
    _send(replies, READY)
    while (request := _read(requests)) is not None:
        try:
            reply, spent = answer(request, cpu_seconds, memory_mb, max_bytes)
            _send(replies, reply)
        except MemoryError:
            os._exit(EXIT_MEMORY)
        if spent:
            return


if __name__ == "__main__":
    main(sys.argv[1:])
