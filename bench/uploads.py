"""Issue 22's upload target (P4) in one run, on the filesystem store:

- server CPU seconds per uploaded GB for the API path (POST /v1/uploads, and a resumable
  upload sent in one tus PATCH), the direct write (FilesystemStore.put_stream in this
  process, no HTTP) and the bare transport's floor (bench/asgi_sink.py: the same uvicorn
  reading the body and dropping it). Target: the API path ≤ 1.5× the direct write.
- the API's resident memory: idle, and its peak while uploads of SIZE/8 and SIZE stream in
  (reset before each through /proc/PID/clear_refs). Target: peak ≤ 150 MB, flat.
- a resumable upload of SIZE cut off at 50% (the connection dropped mid-PATCH), HEAD, then
  resumed: the body bytes on the wire for each PATCH. Target: the resumed PATCH sends only
  what HEAD says is missing, and the bytes sent in all stay within 1% of SIZE.

Each CPU figure is the median of --rounds rounds, in rotating order, each from a settled
disk (bench/uploading.py). The load average is printed with the results.

usage: python bench/uploads.py [--size 1GB] [--rounds 2]
The last line of output is one JSON object with every figure.
"""

import argparse
import hashlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uploading import (  # noqa: E402
    BLOCKS,
    MB,
    clean,
    cpu_seconds,
    direct,
    parse_size,
    reset_peak,
    rss_mb,
    settle_disk,
    start_api,
    start_database,
    start_sink,
    upload,
)

from devstack.processes import ProcessGroup, free_port  # noqa: E402
from lodestone.settings import Settings  # noqa: E402

err = Console(stderr=True)
TUS = {"Tus-Resumable": "1.0.0"}
BLOCK = len(BLOCKS[0])
CPU_TARGET, RSS_TARGET_MB, WIRE_SLACK = 1.5, 150.0, 0.01


def body(start: int, end: int):
    """The bytes start..end of the generated stream bench/uploading.py sends (so any range
    of it can be re-sent), as views into its blocks."""
    pos = start
    while pos < end:
        block, at = BLOCKS[pos // BLOCK % len(BLOCKS)], pos % BLOCK
        chunk = memoryview(block)[at : min(BLOCK, at + end - pos)]
        pos += len(chunk)
        yield chunk


def patch(api_url: str, token: str, path: str, start: int, end: int, cut: bool = False) -> tuple[int, bytes]:
    """PATCH bytes start..end at offset start; with cut, the PATCH declares the rest of the
    upload but the connection drops after `end`. Body bytes sent, and the answer."""
    host, port = api_url.removeprefix("http://").split(":")
    declared = (2**62 if cut else end) - start
    sent = 0
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
                f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {start}\r\n"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
        )
        for chunk in body(start, end):
            sock.sendall(chunk)
            sent += len(chunk)
        if cut:
            return sent, b""
        answer = sock.recv(65536)
    if not answer.startswith(b"HTTP/1.1 204"):
        raise RuntimeError(f"PATCH failed: {answer[:300]!r}")
    return sent, answer


def create(api: httpx.Client, total: int) -> str:
    resp = api.post("/v1/uploads/resumable", headers={**TUS, "Upload-Length": str(total)})
    resp.raise_for_status()
    return resp.headers["location"]


def tus_once(api: httpx.Client, api_url: str, token: str, total: int) -> None:
    location = create(api, total)
    patch(api_url, token, location, 0, total)
    api.delete(location, headers=TUS)  # published already: the DELETE finds no unfinished upload
    api_upload = api.get(location).json()["upload"]
    if api_upload["size"] != total:
        raise RuntimeError(f"resumable upload stored {api_upload['size']} of {total}")


def stored_offset(api: httpx.Client, location: str) -> int:
    """The offset once the cut PATCH is over on the server: the same answer twice, 0.2 s apart,
    and a PATCH no longer holding the upload."""
    last = -1
    while True:
        offset = int(api.head(location, headers=TUS).headers["upload-offset"])
        if offset == last:
            probe = api.patch(
                location,
                content=b"",
                headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)},
            )
            if probe.status_code == 204:
                return offset
        last = offset
        time.sleep(0.2)


def resumed(api: httpx.Client, api_url: str, token: str, total: int) -> dict:
    location = create(api, total)
    half = total // 2
    first, _ = patch(api_url, token, location, 0, half, cut=True)
    offset = stored_offset(api, location)
    rest, _ = patch(api_url, token, location, offset, total)
    done = api.get(location).json()["upload"]
    expected = hashlib.sha256()
    for chunk in body(0, total):
        expected.update(chunk)
    return {
        "bytes": total,
        "sent_before_cut": first,
        "offset_after_cut": offset,
        "sent_resumed": rest,
        "sent_total": first + rest,
        "resent": first + rest - total,
        "whole": done["size"] == total and done["sha256"] == expected.hexdigest(),
    }


def measure(which: str, run, pid: int | None) -> float:  # type: ignore[no-untyped-def]
    settle_disk()
    before = cpu_seconds(pid)
    run()
    return cpu_seconds(pid) - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1GB")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    total = parse_size(args.size)
    gb = total / 1e9
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp, ProcessGroup() as group:
        data = Path(tmp)
        settings = Settings(**start_database(group, data), api_port=free_port())
        proc, token = start_api("uploads", settings, group)
        sink, sink_url = start_sink("drop", group, data)
        upload(sink_url, "-", 20 * MB, "/")
        api = httpx.Client(base_url=settings.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=600)
        tus_once(api, settings.api_url, token, 20 * MB)  # warm-up
        clean(settings)
        idle = rss_mb(proc.pid, "VmRSS")
        runs = {
            "api_post": (lambda: upload(settings.api_url, token, total), proc.pid),
            "api_tus_patch": (lambda: tus_once(api, settings.api_url, token, total), proc.pid),
            "direct": (lambda: direct(settings, total), None),
            "bare": (lambda: upload(sink_url, "-", total, "/"), sink.pid),
        }
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        order = list(runs)
        for n in range(args.rounds):
            for name in order[n % len(order) :] + order[: n % len(order)]:
                err.log(f"{name}, round {n + 1}")
                run, pid = runs[name]
                cpu[name].append(measure(name, run, pid) / gb)
                clean(settings)
        peaks = {}
        for size in (total // 8, total):
            reset_peak(proc.pid)
            upload(settings.api_url, token, size)
            tus_once(api, settings.api_url, token, size)
            peaks[size] = rss_mb(proc.pid)
            clean(settings)
        err.log("resumable upload cut at 50%")
        resume = resumed(api, settings.api_url, token, total)
        load = os.getloadavg()
    cpu_gb = {name: statistics.median(v) for name, v in cpu.items()}
    worst_api = max(cpu_gb["api_post"], cpu_gb["api_tus_patch"])
    targets = {
        "cpu_per_gb": {
            "value": round(worst_api / cpu_gb["direct"], 3),
            "target": f"<= {CPU_TARGET}x direct",
            "met": worst_api <= CPU_TARGET * cpu_gb["direct"],
        },
        "rss_peak_mb": {
            "value": round(max(peaks.values()), 1),
            "target": f"<= {RSS_TARGET_MB} MB",
            "met": max(peaks.values()) <= RSS_TARGET_MB,
        },
        "resume_sends_only_the_rest": {
            "value": resume["sent_total"],
            "target": f"resumed = size - offset, total <= size x {1 + WIRE_SLACK}, whole",
            "met": resume["whole"]
            and resume["sent_resumed"] == total - resume["offset_after_cut"]
            and resume["sent_total"] <= total * (1 + WIRE_SLACK),
        },
    }
    table = Table(title=f"P4: uploads of {total / MB:.0f} MB, filesystem store (load average {load[0]:.2f})")
    for col in ("figure", "value", "target", "met"):
        table.add_column(col)
    for name, value in cpu_gb.items():
        table.add_row(f"server CPU s/GB, {name}", f"{value:.2f}", "", "")
    table.add_row("API idle RSS MB", f"{idle:.1f}", "", "")
    for size, peak in peaks.items():
        table.add_row(f"API peak RSS MB, {size / MB:.0f} MB uploads", f"{peak:.1f}", "", "")
    for key in ("sent_before_cut", "offset_after_cut", "sent_resumed", "sent_total", "resent"):
        table.add_row(f"resume: {key.replace('_', ' ')} (bytes)", str(resume[key]), "", "")
    for name, t in targets.items():
        table.add_row(f"P4 {name}", str(t["value"]), t["target"], "met" if t["met"] else "NOT MET")
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    print(
        json.dumps(
            {
                "bytes": total,
                "rounds": args.rounds,
                "load_average": load,
                "cpu_s_per_gb": cpu_gb,
                "cpu_s_per_gb_rounds": cpu,
                "api_idle_rss_mb": idle,
                "api_peak_rss_mb": {str(k): v for k, v in peaks.items()},
                "resume": resume,
                "targets": targets,
            }
        )
    )


if __name__ == "__main__":
    main()
