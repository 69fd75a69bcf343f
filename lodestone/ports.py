"""Free TCP ports on loopback, for a server started next: the dev stack's servers and the
worker's SDK metrics endpoint."""

import random
import socket
from pathlib import Path


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
        bound: int = s.getsockname()[1]
        return bound
