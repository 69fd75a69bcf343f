"""Child processes that never outlive their parent.

Each child gets PR_SET_PDEATHSIG, so even a kill -9 of the parent takes it down, and
ProcessGroup.stop() ends them all, politely first, on exit, Ctrl-C or SIGTERM.
"""

import ctypes
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int) -> Callable[[], None]:
    def preexec() -> None:
        # After any setuid (a credential change clears the death signal), so it holds.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        os.setpgrp()

    return preexec


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        # SO_REUSEADDR as servers set it: a port in TIME_WAIT is still free to them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# Ports handed out by this process, never handed out twice.
_handed_out: set[int] = set()
# How many ports below the kernel's ephemeral range free_port draws from.
_BELOW_EPHEMERAL = 12_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free on 127.0.0.1 for a server started next, drawn at random from below the
    kernel's ephemeral range. The outgoing connections of every process on the machine take
    their source ports from that range, and one of them can take a port between this check
    and the server's own bind. Where there is no room below the range, the kernel picks."""
    low = _ephemeral_low()
    if low - _BELOW_EPHEMERAL >= 1024:
        for _ in range(100):
            port = random.randrange(low - _BELOW_EPHEMERAL, low)
            if port not in _handed_out and port_is_free(port):
                _handed_out.add(port)
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_bin(name: str) -> str:
    """A console script next to the running interpreter, else on PATH."""
    import sys

    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH")
    return found


class ProcessGroup:
    """Starts named children, stops them in reverse order."""

    def __init__(self) -> None:
        self._children: list[tuple[str, subprocess.Popen, int]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")  # noqa: SIM115 - the child owns it from here
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            user=user,
            cwd=cwd,
            preexec_fn=_die_with_parent(stop_signal),
        )
        out.close()
        self._children.append((name, proc, stop_signal))
        log.info("started %s (pid %d), log %s", name, proc.pid, log_path)
        return proc

    def pid(self, name: str) -> int:
        """The process id of the child started under `name`."""
        return next(proc.pid for child, proc, _ in self._children if child == name)

    def check(self) -> None:
        for name, proc, _ in self._children:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited unexpectedly with code {proc.returncode}")

    def stop(self, timeout: float = 15.0) -> None:
        while self._children:
            name, proc, sig = self._children.pop()
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in %.0fs, killing it", name, timeout)
                    proc.kill()
                    proc.wait()
            log.info("stopped %s", name)

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
