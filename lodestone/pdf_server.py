"""The PDF fork server of lodestone.pdf: a process that imports WeasyPrint and draws one
small page once, then forks one child per render, so a render starts warm (a fresh Python
process importing WeasyPrint takes most of a second) and still runs alone: its caps, its
crash or its kill concern that child only.

It is started as `python -m lodestone.pdf_server FD`, FD one end of a SOCK_SEQPACKET pair
whose other end the worker holds. It sends READY on it once warm; then each message the
worker sends carries one file descriptor, a stream socket of its own, and the server forks a
child for it. A child, on its socket:
- sends its pid (4 bytes, big-endian), so the worker can kill it on a timeout or a cancel;
- reads a request: REQUEST (time limit in seconds, memory cap in MiB, HTML length), then
  the HTML;
- sets RLIMIT_AS to the memory cap (the whole address space, as a fresh renderer had) and
  an alarm a little past the time limit (the worker kills it at the limit; the alarm ends it
  should the worker be gone), renders with a fetcher that reaches nothing but data: URIs;
- replies b"o" + 8-byte length + the PDF, or b"e" + 8-byte length + the error's last line,
  and exits.

Children die with the server (PR_SET_PDEATHSIG), and the server exits when the worker's end
of the pair closes (the worker exiting, however it exits), so no render outlives either.
The server reaps nothing: SIGCHLD is ignored, and the kernel reaps its children. Its stdout
and stderr go nowhere (the worker starts it so): a document's warnings reach no log.
"""

import ctypes
import gc
import math
import os
import resource
import signal
import socket
import struct
import sys

from lodestone.libc import libc_function

READY = b"r"
PID = struct.Struct(">I")
REQUEST = struct.Struct(">dIQ")
LENGTH = struct.Struct(">Q")
ALARM_GRACE_SECONDS = 2
PR_SET_PDEATHSIG = 1
# Draws text, a table and a page counter, so fonts, shaping and layout are loaded before the
# first fork.
WARM_UP = (
    "<html><head><style>@page { @bottom-center { content: counter(page); font-family: 'DejaVu Sans'; } }"
    "body { font-family: 'DejaVu Sans', sans-serif; } table { table-layout: fixed; width: 100% }</style></head>"
    "<body><h1>Warm</h1><p>text <b>bold</b> <i>italic</i></p>"
    "<table><tr><th>a</th><td>b</td></tr></table></body></html>"
)

_prctl = libc_function("prctl", [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong])


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the worker hung up")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def render(html: str) -> bytes:
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    pdf: bytes = HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf()
    return pdf


def _reply(conn: socket.socket, status: bytes, body: bytes) -> None:
    conn.sendall(status + LENGTH.pack(len(body)) + body)


def serve_one(conn: socket.socket) -> None:
    """A child's one render, on its socket."""
    conn.setblocking(True)
    conn.sendall(PID.pack(os.getpid()))
    timeout, memory_mb, size = REQUEST.unpack(_read_exactly(conn, REQUEST.size))
    html = _read_exactly(conn, size).decode()
    cap = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.alarm(math.ceil(timeout) + ALARM_GRACE_SECONDS)
    try:
        pdf = render(html)
    except MemoryError:
        _reply(conn, b"e", b"MemoryError: the document needed more than PDF_MEMORY_MB")
        return
    except Exception as e:  # noqa: BLE001 - whatever WeasyPrint raised is the render's error
        line = (str(e).strip().splitlines() or [""])[-1]
        _reply(conn, b"e", f"{type(e).__name__}: {line}"[:500].encode(errors="replace"))
        return
    _reply(conn, b"o", pdf)


def _child(server_pid: int, control: socket.socket, fd: int) -> None:
    """In the forked child: never returns."""
    code = 1
    try:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != server_pid:  # the server died before the line above
            os._exit(1)
        control.close()
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        serve_one(socket.socket(fileno=fd))
        code = 0
    except BaseException:  # noqa: BLE001 - the worker sees the hang-up; nothing else to tell
        code = 1
    finally:
        os._exit(code)


def serve(control: socket.socket) -> None:
    """Fork a child for each socket the worker sends, until it closes its end."""
    server_pid = os.getpid()
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 1, 1)
        except ConnectionError:
            return
        if not fds:
            return  # EOF: the worker is gone
        fd = fds[0]
        try:
            pid = os.fork()
        except OSError:
            os.close(fd)  # the worker sees the hang-up and fails this render
            continue
        if pid == 0:
            _child(server_pid, control, fd)
        os.close(fd)


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the worker; it closes us
    render(WARM_UP)
    gc.collect()
    gc.freeze()  # the children's collections leave what the server made alone: fewer copied pages
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    control.sendall(READY)
    serve(control)


if __name__ == "__main__":
    main(sys.argv[1:])
