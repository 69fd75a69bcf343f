"""What a tenant template costs per render: in the worker's own process, compiled every
time (how Lodestone rendered before the template pool) and compiled once (what is left is
the pool's own overhead), through the warm pool of capped children (now), and in a child
process started for the one render (the alternative the pool avoids).
Run: .venv/bin/python bench/template_eval.py [--renders 2000]"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lodestone.template_pool import TemplateLimits, TemplatePool  # noqa: E402
from lodestone.templating import _HTML, _TEXT, render  # noqa: E402

CASES = {  # the templates of tests/helpers.py's definition, with step-sized data
    "html template": (
        "<html><body><h1>{{ input.company }}</h1>{{ steps.write | paragraphs }}</body></html>",
        {"input": {"company": "Acme"}, "steps": {"write": "A paragraph of text.\n\n" * 40}, "job": {"id": "j"}},
        True,
    ),
    "step instructions": ("Write using {{ a }} and {{ o }}.", {"a": "x" * 2000, "o": "y" * 2000}, False),
}


def in_process(source: str, context: dict, html: bool, n: int) -> float:
    env = _HTML if html else _TEXT
    started = time.perf_counter()
    for _ in range(n):
        env.from_string(source).render(**context)
    return (time.perf_counter() - started) / n


def compiled_once(source: str, context: dict, html: bool, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        render(source, context, html=html)
    return (time.perf_counter() - started) / n


async def pooled(pool: TemplatePool, source: str, context: dict, html: bool, n: int) -> tuple[float, float]:
    """Wall time per render, and this process's CPU per render (what the event loop pays)."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await pool.render(source, context, html=html)
    return (time.perf_counter() - started) / n, (time.process_time() - cpu) / n


async def fresh_child(source: str, context: dict, html: bool, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        pool = TemplatePool(TemplateLimits(), size=1)
        await pool.render(source, context, html=html)
        times.append(time.perf_counter() - started)
        await pool.close()
    return statistics.median(times)


async def main(renders: int) -> None:
    pool = TemplatePool(TemplateLimits(), size=2)
    started = time.perf_counter()
    await pool.start()
    figures: dict[str, float] = {"pool_start_ms": (time.perf_counter() - started) * 1e3}
    print(
        f"{'template':<20}{'in process: compiled each time':>32}{'compiled once':>15}{'warm pool':>12}"
        f"{'(its loop CPU)':>16}{'child per render':>18}"
    )
    for name, (source, context, html) in CASES.items():
        await pooled(pool, source, context, html, 50)  # warm: the child's compile cache
        before = in_process(source, context, html, renders)
        once = compiled_once(source, context, html, renders)
        now, loop_cpu = await pooled(pool, source, context, html, renders)
        spawn = await fresh_child(source, context, html, 20)
        print(
            f"{name:<20}{before * 1e3:>29.3f} ms{once * 1e3:>12.3f} ms{now * 1e3:>9.3f} ms"
            f"{loop_cpu * 1e3:>13.3f} ms{spawn * 1e3:>15.1f} ms"
        )
        key = name.replace(" ", "_")
        figures |= {
            f"{key}_in_process_ms": before * 1e3,
            f"{key}_compiled_once_ms": once * 1e3,
            f"{key}_pool_ms": now * 1e3,
            f"{key}_pool_loop_cpu_ms": loop_cpu * 1e3,
            f"{key}_child_per_render_ms": spawn * 1e3,
        }
    await pool.close()
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--renders", type=int, default=2000)
    asyncio.run(main(parser.parse_args().renders))
