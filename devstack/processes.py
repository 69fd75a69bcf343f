"""Child processes that never outlive their parent.

Each child gets PR_SET_PDEATHSIG, so even a kill -9 of the parent takes it down, and
ProcessGroup.stop() ends them all, politely first, on exit, Ctrl-C or SIGTERM.
"""

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lodestone.ports import free_port, port_is_free  # noqa: F401 - the stack and tests take them from here

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
