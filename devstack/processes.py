"""Child processes that never outlive their parent.

Each child gets PR_SET_PDEATHSIG, so even a kill -9 of the parent takes it down, and
ProcessGroup.stop() ends them all, politely first, on exit, Ctrl-C or SIGTERM. A child that
exited can be started again with the same command and log (devstack.supervisor does that).
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
from dataclasses import dataclass, field
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


@dataclass
class Child:
    """A started child and what it takes to start it again."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None
    user: str | None
    stop_signal: int
    cwd: Path | None
    proc: subprocess.Popen = field(init=False)
    started: float = field(init=False)  # time.monotonic() of the latest start

    def spawn(self) -> subprocess.Popen:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                user=self.user,
                cwd=self.cwd,
                preexec_fn=_die_with_parent(self.stop_signal),
            )
        self.started = time.monotonic()
        log.info("started %s (pid %d), log %s", self.name, self.proc.pid, self.log_path)
        return self.proc


def describe_exit(returncode: int) -> str:
    """`exit code 1`, or `killed by SIGKILL` for a child a signal ended."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class ProcessGroup:
    """Starts named children, restarts one on request, stops them in reverse order."""

    def __init__(self) -> None:
        self._children: list[Child] = []

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
        child = Child(name, list(argv), log_path, env, user, stop_signal, cwd)
        proc = child.spawn()
        self._children.append(child)
        return proc

    def pid(self, name: str) -> int:
        """The process id of the child started under `name`."""
        return next(child.proc.pid for child in self._children if child.name == name)

    def exited(self) -> list[Child]:
        """The children that are no longer running, in the order they were started."""
        return [child for child in self._children if child.proc.poll() is not None]

    def restart(self, name: str) -> int:
        """Start the exited child `name` again, with the same command and log; its new pid."""
        child = next(child for child in self._children if child.name == name)
        if child.proc.poll() is None:
            raise RuntimeError(f"{name} is still running (pid {child.proc.pid})")
        return child.spawn().pid

    def check(self) -> None:
        for child in self.exited():
            raise RuntimeError(f"{child.name} exited unexpectedly with code {child.proc.returncode}")

    def stop(self, timeout: float = 15.0) -> None:
        while self._children:
            child = self._children.pop()
            name, proc, sig = child.name, child.proc, child.stop_signal
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
