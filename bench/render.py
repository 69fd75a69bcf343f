"""PDF render times: a one-page document in a Python process started for the render (how
Lodestone rendered before the fork server) against a child of the warm fork server (now);
the summary PDF from the real template at 1, 5, 10 and 20 pages through the fork server,
and the 20-page one with automatic table layout for comparison. Beside each summary's wall
time, the CPU time of the same render in a child forked from the bench itself, which other
load on the machine does not inflate.

usage: .venv/bin/python bench/render.py [--runs 20] [--summary-runs 7] [--pages 1,5,10,20]

Targets (issue 22, P5): the 20-page summary's p50 <= 2 s; linear in pages within 1.3x: the
time per page, p50(n) / n, of the largest and the smallest differ by at most 1.3x over the
sizes measured. A table and the load average go to stdout, the last line is one JSON object
with every figure.
"""

import argparse
import asyncio
import gc
import io
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pypdf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.summary import summary_html  # noqa: E402
from lodestone import pdf_server  # noqa: E402
from lodestone.pdf import default_renderer, render_pdf  # noqa: E402

ONE_PAGE = b"<html><body><h1>Quarterly report</h1><p>" + b"A paragraph of the report. " * 40 + b"</p></body></html>"
# What lodestone.pdf ran per render before the fork server: a fresh interpreter importing WeasyPrint.
COLD = (
    "import sys\n"
    "from weasyprint import HTML\n"
    "from weasyprint.urls import URLFetcher\n"
    "html = sys.stdin.buffer.read().decode()\n"
    "sys.stdout.buffer.write(HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={'data'})).write_pdf())\n"
)
TARGET_P50_S = 2.0
TARGET_LINEARITY = 1.3
TIMEOUT, MEMORY_MB = 120.0, 2048


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def transcript(messages: int) -> list[dict[str, str]]:
    return [
        {
            "when": f"2026-11-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}",
            "who": "customer" if i % 3 else "us",
            "text": f"Message {i}: could we move the delivery of order {1000 + i} to Friday morning, please?",
        }
        for i in range(messages)
    ]


def html_for(messages: int, layout: str = "fixed") -> bytes:
    """The summary of a transcript of `messages` lines; layout "auto" is the table as it was
    laid out before (automatic column sizing, long words not broken)."""
    summary = "Dana asked to move several deliveries.\n\nAll were confirmed."
    html = summary_html("Dana Tester", transcript(messages), "2026-11-01", "2026-11-16", summary, "Delivery changes.")
    if layout == "auto":
        html = html.replace(b"table-layout: fixed", b"table-layout: auto").replace(b"overflow-wrap: anywhere", b"")
    return html


def page_count(pdf: bytes) -> int:
    return len(pypdf.PdfReader(io.BytesIO(pdf)).pages)


def rows_per_page() -> float:
    """Transcript lines per page of the summary, from one 300-line render in this process."""
    return 300 / page_count(pdf_server.render(html_for(300).decode()))


def child_cpu_seconds(html: bytes, runs: int) -> float:
    """The median CPU time of a render in a child forked from this process, as the fork
    server forks them: what a render costs whatever else the machine runs at the time."""
    spent = []
    for _ in range(runs):
        pid = os.fork()
        if pid == 0:
            pdf_server.render(html.decode())
            os._exit(0)
        _, _, usage = os.wait4(pid, 0)
        spent.append(usage.ru_utime + usage.ru_stime)
    return round(statistics.median(spent), 4)


def cpu_phase(args: argparse.Namespace) -> dict:
    """Before any thread exists (the fork is safe): each summary size's transcript length,
    and its CPU time per render."""
    pdf_server.render(pdf_server.WARM_UP)
    gc.collect()
    gc.freeze()
    rows = rows_per_page()
    sizes = {}
    for pages in args.pages:
        messages = max(1, int(rows * (pages - 0.5)))  # the actual page count is measured
        sizes[pages] = {"messages": messages, "cpu_s": child_cpu_seconds(html_for(messages), args.summary_runs)}
    return sizes


async def cold(html: bytes) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", COLD, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    out, _ = await proc.communicate(html)
    assert out.startswith(b"%PDF"), "the cold renderer failed"
    return out


async def warm(html: bytes) -> bytes:
    return await render_pdf(html, timeout=TIMEOUT, memory_mb=MEMORY_MB)


async def times(runs: int, call: Callable[[], Awaitable[bytes]]) -> list[float]:
    spent = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        spent.append(time.perf_counter() - started)
    return spent


def figures(spent: list[float]) -> dict[str, float]:
    return {"p50_s": round(percentile(spent, 50), 4), "p99_s": round(percentile(spent, 99), 4), "runs": len(spent)}


async def main(args: argparse.Namespace, sizes: dict) -> dict:
    await default_renderer().start()
    result: dict = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    await warm(ONE_PAGE)  # the first child's own page faults, out of the figures
    result["one_page"] = {
        "cold": figures(await times(args.runs, lambda: cold(ONE_PAGE))),
        "warm": figures(await times(args.runs, lambda: warm(ONE_PAGE))),
    }
    result["one_page"]["speedup_p50"] = round(
        result["one_page"]["cold"]["p50_s"] / result["one_page"]["warm"]["p50_s"], 2
    )
    summary: dict[int, dict] = {}
    for pages, size in sizes.items():
        html = html_for(size["messages"])
        got = page_count(await warm(html))
        spent = await times(args.summary_runs, lambda html=html: warm(html))  # type: ignore[misc]
        summary[pages] = {"pages": got, **size, **figures(spent)}
    result["summary"] = summary
    largest = max(args.pages)
    auto = html_for(summary[largest]["messages"], layout="auto")
    result["summary_auto_layout"] = {"pages": largest, **figures(await times(args.summary_runs, lambda: warm(auto)))}
    per_page = {n: s["p50_s"] / s["pages"] for n, s in summary.items()}
    result["seconds_per_page"] = {n: round(v, 4) for n, v in per_page.items()}
    linearity = max(per_page.values()) / min(per_page.values())
    # For information: what each page past the smallest document adds (no fixed cost in it).
    small = summary[min(summary)]
    result["seconds_per_added_page"] = {
        n: round((s["p50_s"] - small["p50_s"]) / (s["pages"] - small["pages"]), 4)
        for n, s in summary.items()
        if s["pages"] > small["pages"]
    }
    cpu_per_page = {n: s["cpu_s"] / s["pages"] for n, s in summary.items()}
    result["cpu_seconds_per_page"] = {n: round(v, 4) for n, v in cpu_per_page.items()}
    result["cpu_linearity"] = round(max(cpu_per_page.values()) / min(cpu_per_page.values()), 3)
    p50 = summary[largest]["p50_s"]
    result["targets"] = {
        "P5_summary_p50_s": {"value": p50, "target": TARGET_P50_S, "pages": largest, "met": p50 <= TARGET_P50_S},
        "P5_linearity": {
            "value": round(linearity, 3),
            "target": TARGET_LINEARITY,
            "met": linearity <= TARGET_LINEARITY,
        },
    }
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    await default_renderer().close()
    return result


def report(r: dict) -> None:
    one = r["one_page"]
    print(f"load average before {r['load_average_before']}, after {r['load_average_after']}")
    for name in ("cold", "warm"):
        f = one[name]
        p50, p99 = f["p50_s"] * 1000, f["p99_s"] * 1000
        print(f"one page, {name:4}: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  ({f['runs']} runs)")
    print(f"one page: warm is {one['speedup_p50']}x faster at p50")
    for s in r["summary"].values():
        size = f"{s['pages']:2} pages ({s['messages']:4} messages)"
        print(f"summary {size}: p50 {s['p50_s']:.3f} s  p99 {s['p99_s']:.3f} s  CPU {s['cpu_s']:.3f} s")
    a = r["summary_auto_layout"]
    print(f"summary {a['pages']:2} pages, automatic table layout: p50 {a['p50_s']:.3f} s")
    print("seconds per page:", r["seconds_per_page"])
    print("seconds each page past the smallest adds:", r["seconds_per_added_page"])
    print("CPU seconds per page:", r["cpu_seconds_per_page"], f"(largest/smallest {r['cpu_linearity']})")
    for name, t in r["targets"].items():
        print(f"{name}: {t['value']} (target {t['target']}): {'met' if t['met'] else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="one-page renders, cold and warm each")
    parser.add_argument("--summary-runs", type=int, default=7, help="renders of each summary size")
    parser.add_argument("--pages", type=lambda s: [int(p) for p in s.split(",")], default=[1, 5, 10, 20])
    args = parser.parse_args()
    r = asyncio.run(main(args, cpu_phase(args)))
    report(r)
    print(json.dumps(r))
