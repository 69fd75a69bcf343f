"""Shared secrets the dev stack makes for its own processes (WORKER_DRAIN_TOKEN,
METRICS_TOKEN), kept under DATA_DIR/keys with mode 0600, so that a command run later on
the same DATA_DIR (`lodestone ops drain`) finds the one the stack's processes were given."""

import os
import secrets
from pathlib import Path

DRAIN = "worker-drain"
METRICS = "metrics"


def token_path(data_dir: Path, name: str) -> Path:
    return data_dir / "keys" / f"{name}.token"


def read_token(data_dir: Path, name: str) -> str | None:
    try:
        return token_path(data_dir, name).read_text().strip() or None
    except FileNotFoundError:
        return None


def load_or_create_token(data_dir: Path, name: str) -> str:
    if (found := read_token(data_dir, name)) is not None:
        return found
    path = token_path(data_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32))
    try:
        os.link(tmp, path)  # the first writer wins; a concurrent one reads its token
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
