"""HTML to PDF with WeasyPrint, each render in a child process with time and memory caps.

The children are forked by a warm server, lodestone.pdf_server, which the worker starts
(or the first render does) and starts again when it has died. A child may fetch nothing but
data: URIs, so a template cannot pull in local files or reach the network. A render that
passes its time cap is killed, as is one whose caller is cancelled.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading

from lodestone.pdf_server import LENGTH, PID, READY, REQUEST

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # importing WeasyPrint on a busy machine
DEATH_WAIT_SECONDS = 1.0  # after a child's hang-up: did its server die too?
CLOSE_GRACE_SECONDS = 5.0


class PdfRenderFailed(RuntimeError):
    """The renderer crashed, ran out of memory or ran out of time."""


class PdfRendererUnavailable(RuntimeError):
    """The fork server died or did not start: worth another attempt (the next render starts
    a fresh one)."""


class _Server:
    """One running lodestone.pdf_server and the worker's end of its control socket."""

    def __init__(self) -> None:
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lodestone.pdf_server", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except BaseException:
            control.close()
            raise
        finally:
            theirs.close()
        self.control = control
        try:
            control.settimeout(START_TIMEOUT)
            if control.recv(1) != READY:
                raise PdfRendererUnavailable("the PDF renderer exited while starting")
            control.setblocking(False)  # a send never stalls the event loop; a full queue fails it
        except (OSError, PdfRendererUnavailable) as e:
            self.close()
            raise PdfRendererUnavailable(f"the PDF renderer did not start: {e or type(e).__name__}") from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def died_within(self, seconds: float) -> bool:
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def fork(self, conn: socket.socket) -> None:
        """Hand the server `conn`'s socket: it forks a child that renders on it. OSError when
        the server is gone, or so far behind that its queue is full."""
        socket.send_fds(self.control, [b"f"], [conn.fileno()])

    def close(self) -> None:
        """Its control socket closed, the server exits, and its children with it."""
        self.control.close()
        try:
            self.proc.wait(CLOSE_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PdfRenderer:
    """Renders through a fork server of its own, started at start() or at the first render."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the server is made in a thread, from any event loop
        self._server: _Server | None = None

    @property
    def server_pid(self) -> int | None:
        server = self._server
        return server.pid if server is not None and server.alive() else None

    def _running(self) -> _Server:
        with self._lock:
            if self._server is not None and self._server.alive():
                return self._server
            if self._server is not None:
                log.warning("PDF renderer exited with %s; starting another", self._server.proc.returncode)
                self._server.close()
                self._server = None
            self._server = _Server()
            return self._server

    async def start(self) -> None:
        await asyncio.to_thread(self._running)

    async def _handed(self, conn: socket.socket) -> _Server:
        """The running server, `conn` handed to it; a server that died since it last forked is
        started again once."""
        server = self._server
        for _ in range(2):
            if server is None or not server.alive():
                server = await asyncio.to_thread(self._running)
            try:
                server.fork(conn)
                return server
            except OSError:  # it died between the check and the send
                server = None
        raise PdfRendererUnavailable("the PDF renderer is not accepting renders")

    async def render(self, html: bytes, *, timeout: float, memory_mb: int) -> bytes:
        mine, theirs = socket.socketpair()
        try:
            server = await self._handed(theirs)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=mine, limit=1 << 20)
        child = _Child()
        try:
            async with asyncio.timeout(timeout):
                (pid,) = PID.unpack(await reader.readexactly(PID.size))
                child.hold(pid)
                writer.write(REQUEST.pack(timeout, memory_mb, len(html)) + html)
                await writer.drain()
                status = await reader.readexactly(1)
                (size,) = LENGTH.unpack(await reader.readexactly(LENGTH.size))
                body = await reader.readexactly(size)
        except TimeoutError:
            child.kill()
            raise PdfRenderFailed(f"PDF rendering took longer than {timeout:.0f}s and was killed") from None
        except asyncio.CancelledError:  # the render was cancelled (its job was): the child goes with it
            child.kill()
            raise
        except (asyncio.IncompleteReadError, ConnectionError):
            child.kill()
            if await asyncio.to_thread(server.died_within, DEATH_WAIT_SECONDS):
                raise PdfRendererUnavailable("the PDF renderer died during the render") from None
            raise PdfRenderFailed("PDF renderer exited with no result (killed, crashed or out of memory)") from None
        finally:
            child.release()
            writer.close()
        if status != b"o" or not body.startswith(b"%PDF"):
            raise PdfRenderFailed(f"PDF renderer exited with an error: {body.decode(errors='replace')[:500]}")
        return body

    async def close(self) -> None:
        """Stop the server and its children (a later render starts another)."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.close)


class _Child:
    """A render child by pidfd: the server reaps it, so its pid alone could name another
    process by the time it is killed; the pidfd cannot."""

    def __init__(self) -> None:
        self.pidfd: int | None = None

    def hold(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # gone already: its socket says so next
            self.pidfd = os.pidfd_open(pid)

    def kill(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def release(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


_default = PdfRenderer()


def default_renderer() -> PdfRenderer:
    """The process's renderer: the worker starts and closes it; activities render with it."""
    return _default


async def render_pdf(html: bytes, *, timeout: float, memory_mb: int) -> bytes:
    return await _default.render(html, timeout=timeout, memory_mb=memory_mb)
