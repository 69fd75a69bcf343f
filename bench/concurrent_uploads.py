"""Concurrent uploads into one API process on the filesystem store: the total rate and the
API's peak RSS with 1, 4 and 16 uploads at once, and the answer to one upload more than
UPLOADS_IN_FLIGHT allows.

The API runs with UPLOADS_IN_FLIGHT set to the largest count asked for, and
TENANT_UPLOADS_IN_FLIGHT one above it, so one tenant's uploads fill the process and the one
past them meets the process's cap (503), not the tenant's. Each count runs once, from
a settled disk; the peak is reset before it (/proc/PID/clear_refs).

usage: python bench/concurrent_uploads.py [--size 256MB] [--counts 1,4,16]
The last line of output is one JSON object with every figure.
"""

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uploading import (  # noqa: E402
    MB,
    clean,
    parse_size,
    reset_peak,
    rss_mb,
    settle_disk,
    start_api,
    start_database,
    upload,
    uploads_in_flight,
)

from devstack.processes import ProcessGroup, free_port  # noqa: E402
from lodestone.settings import Settings  # noqa: E402

err = Console(stderr=True)


def one_past_the_cap(settings: Settings, token: str, cap: int) -> str:
    """Hold `cap` uploads open (headers and a first 64 KiB sent), then send the headers of
    one more: the status line it gets, before any of its body is sent."""
    head = (
        f"POST /v1/uploads HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {100 * MB}\r\n\r\n"
    ).encode()
    held = []
    try:
        for _ in range(cap):
            sock = socket.create_connection(("127.0.0.1", settings.api_port), timeout=30)
            held.append(sock)
            sock.sendall(head + os.urandom(64 * 1024))
        deadline = time.monotonic() + 30
        while uploads_in_flight(settings) < cap:  # each held request reaches the route and takes its slot
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API never showed {cap} uploads in flight")
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", settings.api_port), timeout=30) as sock:
            sock.sendall(head)
            return sock.recv(65536).split(b"\r\n", 1)[0].decode()
    finally:
        for sock in held:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="256MB", help="bytes per upload")
    parser.add_argument("--counts", default="1,4,16", help="uploads at once")
    args = parser.parse_args()
    size, counts = parse_size(args.size), [int(n) for n in args.counts.split(",")]
    cap = max(counts)
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp, ProcessGroup() as group:
        settings = Settings(**start_database(group, Path(tmp)), api_port=free_port(), s3_endpoint=None)
        api, token = start_api(
            "filesystem", settings, group, UPLOADS_IN_FLIGHT=str(cap), TENANT_UPLOADS_IN_FLIGHT=str(cap + 1)
        )
        idle = rss_mb(api.pid, "VmRSS")
        for count in counts:
            err.log(f"{count} uploads of {size / MB:.0f} MB at once")
            clean(settings)
            settle_disk()
            reset_peak(api.pid)
            started = time.perf_counter()
            with ThreadPoolExecutor(count) as pool:
                list(pool.map(lambda _: upload(settings.api_url, token, size), range(count)))
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "uploads": count,
                    "bytes_each": size,
                    "total_mb_s": count * size / MB / seconds,
                    "api_idle_rss_mb": idle,
                    "api_peak_rss_mb": rss_mb(api.pid),
                }
            )
        clean(settings)
        past = one_past_the_cap(settings, token, cap)
    table = Table(title=f"Uploads of {size / MB:.0f} MB at once into one API process (filesystem store)")
    for col in ("uploads at once", "total MB/s", "API RSS MB idle/peak"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["uploads"]), f"{r['total_mb_s']:.0f}", f"{r['api_idle_rss_mb']:.1f}/{r['api_peak_rss_mb']:.1f}"
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    print(f"one upload past UPLOADS_IN_FLIGHT={cap}: {past}")
    print(json.dumps({"rows": rows, "uploads_in_flight": cap, "one_past_the_cap": past}))


if __name__ == "__main__":
    main()
