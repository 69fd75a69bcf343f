"""Render time of a summary PDF from the real template, in the capped child process.

usage: python bench/summary_pdf.py [--pages 20] [--runs 3]
It grows the transcript until the PDF has the asked number of pages, then times renders
of that document. The last line is one JSON object with every figure.
"""

import argparse
import asyncio
import io
import json
import sys
import time
from pathlib import Path

import pypdf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.summary import TEMPLATE  # noqa: E402
from lodestone.pdf import render_pdf  # noqa: E402
from lodestone.templating import render  # noqa: E402


def html_for(messages: int) -> bytes:
    rows = [
        {
            "when": f"2026-11-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}",
            "who": "customer" if i % 3 else "us",
            "text": f"Message {i}: could we move the delivery of order {1000 + i} to Friday morning, please?",
        }
        for i in range(messages)
    ]
    context = {
        "contact": "Dana Tester",
        "messages": rows,
        "message_count": messages,
        "window_start": "2026-11-01",
        "window_end": "2026-11-16",
        "summary": "Dana asked to move several deliveries.\n\nAll were confirmed.",
        "themes": "Delivery changes.\n\nOrder follow-ups.",
    }
    return render(TEMPLATE, context, html=True).encode()


async def pages_of(messages: int) -> tuple[int, bytes]:
    pdf = await render_pdf(html_for(messages), timeout=120, memory_mb=2048)
    return len(pypdf.PdfReader(io.BytesIO(pdf)).pages), pdf


async def main(pages: int, runs: int) -> None:
    messages = 40
    count, _ = await pages_of(messages)
    while count < pages:
        messages = int(messages * pages / max(count, 1)) + 5
        count, _ = await pages_of(messages)
    while count > pages and messages > 1:
        messages -= 10
        count, _ = await pages_of(messages)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        count, pdf = await pages_of(messages)
        times.append(time.perf_counter() - started)
    print(
        f"{count} pages ({messages} messages, {len(pdf) / 1024:.0f} KiB): "
        f"best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s over {runs} renders"
    )
    print(
        json.dumps(
            {
                "pages": count,
                "messages": messages,
                "pdf_bytes": len(pdf),
                "runs": runs,
                "best_s": round(min(times), 3),
                "median_s": round(sorted(times)[len(times) // 2], 3),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.pages, args.runs))
