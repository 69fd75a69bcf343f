"""The fault suite: `python -m tests.faults [--pipelines N] [--kills K] [--seed S] ...`
(`make faults` runs it in full). It starts its own stack in a temporary directory on free
ports, runs the pipelines through the planned faults, and prints progress to stderr, then a
table and, last, one JSON line with every figure to stdout. Exit status 0 means: every job
delivered, no duplicate and no missing delivery, nothing stuck, the database agreeing with
Temporal, and no row lost.

Sizes come from the command line, or else from FAULT_PIPELINES, FAULT_KILLS, FAULT_SEED and
FAULT_ROUNDS (the suite's own parameters, not Lodestone settings). `--rounds N` runs the whole
suite N times in a row, each on a fresh stack with the next seed, prints a table with one row
per round, and ends with one JSON line of every round's figures; it exits 0 only when every
round passed."""

import argparse
import asyncio
import dataclasses
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from lodestone.db import make_engine
from tests.faults.driver import Run, drive
from tests.faults.plan import FaultConfig
from tests.faults.stack import FaultStack, fault_settings
from tests.faults.verify import Outcome, budgets, verify
from tests.standins.smtp_sink import SMTPSink
from tests.standins.switchable_llm import SwitchableOpenAIStandIn
from tests.standins.webhook_counter import CountingWebhookReceiver

err = Console(stderr=True)
LLM_LATENCY = 1.5  # seconds per answer, so steps are in flight long enough for faults to meet them


def parse(argv: list[str] | None) -> tuple[FaultConfig, Path | None, int]:
    env = os.environ  # the suite's own knobs, read here only
    p = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--pipelines", type=int, default=int(env.get("FAULT_PIPELINES") or 50))
    p.add_argument("--kills", type=int, default=int(env.get("FAULT_KILLS") or 5), help="worker kill -9s")
    p.add_argument("--seed", type=int, default=int(env.get("FAULT_SEED") or random.randrange(1, 10**9)))
    p.add_argument("--api-restarts", type=int, default=1)
    p.add_argument("--pg-restarts", type=int, default=1)
    p.add_argument("--pg-down", type=float, default=5.0, help="seconds PostgreSQL stays down per restart")
    p.add_argument("--llm-outage", type=float, default=30.0, help="seconds the LLM endpoint is down")
    p.add_argument(
        "--receiver-outage",
        type=float,
        default=45.0,
        help="seconds the webhook receiver answers 503 and the SMTP sink 451",
    )
    p.add_argument("--window", type=float, default=0.0, help="seconds the faults and arrivals spread over")
    p.add_argument("--settle-timeout", type=float, default=600.0)
    p.add_argument("--data-dir", type=Path, help="keep the stack's data and logs here (else a temporary dir)")
    p.add_argument(
        "--rounds",
        type=int,
        default=int(env.get("FAULT_ROUNDS") or 1),
        help="whole runs in a row, each on a fresh stack with the next seed",
    )
    a = p.parse_args(argv)
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    return (
        FaultConfig(
            a.pipelines,
            a.kills,
            a.api_restarts,
            a.pg_restarts,
            a.pg_down,
            a.llm_outage,
            a.receiver_outage,
            a.seed,
            a.window,
            a.settle_timeout,
        ),
        a.data_dir,
        a.rounds,
    )


async def run_faults(
    cfg: FaultConfig, stack: FaultStack, llm: SwitchableOpenAIStandIn, hook: CountingWebhookReceiver, sink: SMTPSink
) -> tuple[Run, Outcome]:
    engine = make_engine(stack.settings.app_database_url, 4)
    run = Run(cfg, stack, llm, hook, sink, err.log, engine, await Client.connect(stack.settings.temporal_target))
    try:
        await drive(run)
        return run, await verify(run)
    finally:
        if run.api is not None:
            await run.api.aclose()
        await engine.dispose()


def figures(cfg: FaultConfig, run: Run, outcome: Outcome, duration: float) -> dict[str, object]:
    done = [f["kind"] for f in run.faults]
    return {
        "runs": cfg.pipelines,
        "delivered": outcome.delivered,
        "failed": outcome.failed,
        "kills": done.count("kill-worker"),
        "api_restarts": done.count("restart-api"),
        "pg_restarts": done.count("restart-postgres"),
        "pg_mid_delivery": sum(1 for f in run.faults if f.get("mid_delivery")),
        "llm_outage_s": cfg.llm_outage,
        "receiver_outage_s": cfg.receiver_outage,
        "deliveries": outcome.deliveries,
        "expected_deliveries": outcome.expected_deliveries,
        "duplicates": outcome.duplicates,
        "stuck": outcome.stuck,
        "mismatches": outcome.mismatches,
        "rows_lost": outcome.rows_lost,
        "extra_jobs": outcome.extra_jobs,
        "max_step_attempts": outcome.max_step_attempts,
        "max_delivery_attempts": outcome.max_delivery_attempts,
        "budgets": budgets(),
        "submit_retries": run.submit_retries,
        "webhook_503s": run.hook.refused,
        "smtp_451s": sum(1 for _, code in run.sink.rcpt_answers if code == 451),
        "llm_dropped": run.llm.dropped,
        "seed": cfg.seed,
        "duration_s": round(duration, 1),
        "ok": outcome.ok,
        "config": cfg.as_dict(),
        "faults": run.faults,
        "problems": outcome.problems[:50],
    }


COLS = [
    "runs",
    "delivered",
    "kills",
    "api_restarts",
    "pg_restarts",
    "pg_mid_delivery",
    "llm_outage_s",
    "receiver_outage_s",
    "deliveries",
    "duplicates",
    "stuck",
    "mismatches",
    "rows_lost",
    "seed",
    "duration_s",
    "ok",
]


def summary_table(title: str, figs: list[dict[str, object]]) -> Table:
    table = Table(title=title)
    for c in COLS:
        table.add_column(c.replace("_", " "), justify="right")
    for fig in figs:
        table.add_row(
            *[f"{fig['deliveries']}/{fig['expected_deliveries']}" if c == "deliveries" else str(fig[c]) for c in COLS]
        )
    return table


def report(fig: dict[str, object]) -> None:
    out = Console(width=200)
    out.print(summary_table("fault run", [fig]))
    faults = Table(title="faults, in order")
    for c in ("at s", "fault", "took s", "activities in flight when it began"):
        faults.add_column(c)
    for f in sorted(fig["faults"], key=lambda f: f["at"]):  # type: ignore[arg-type]
        faults.add_row(str(f["at"]), f["kind"], str(f["took"]), json.dumps(f.get("in_flight", "")))
    out.print(faults)
    for problem in fig["problems"]:  # type: ignore[attr-defined]
        out.print(f"[red]problem:[/red] {problem}", markup=True, soft_wrap=True)
    sys.stdout.write(json.dumps(fig) + "\n")


def one_round(cfg: FaultConfig, data_dir: Path | None) -> dict[str, object]:
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="lodestone-faults-") as tmp,
        SwitchableOpenAIStandIn(latency=LLM_LATENCY) as llm,
        SMTPSink() as sink,
        CountingWebhookReceiver(secret="") as hook,
    ):
        root = data_dir or Path(tmp)
        stack = FaultStack(fault_settings(root, llm.base_url, sink.port))
        err.log(f"fault run, seed {cfg.seed}: stack in {root}")
        try:
            stack.start()
            run, outcome = asyncio.run(run_faults(cfg, stack, llm, hook, sink))
        finally:
            stack.stop()
    fig = figures(cfg, run, outcome, time.monotonic() - started)
    report(fig)
    if not outcome.ok:
        err.print(f"[red]fault run failed[/red]: rerun with --seed {cfg.seed} --data-dir DIR to keep the logs")
    return fig


def main(argv: list[str] | None = None) -> int:
    cfg, data_dir, rounds = parse(argv)
    figs = []
    for i in range(rounds):
        if rounds > 1:
            err.rule(f"round {i + 1} of {rounds}")
        figs.append(
            one_round(
                dataclasses.replace(cfg, seed=cfg.seed + i),
                data_dir / f"round-{i + 1}" if data_dir and rounds > 1 else data_dir,
            )
        )
    ok = all(f["ok"] for f in figs)
    if rounds > 1:
        Console(width=200).print(summary_table(f"{rounds} fault runs in a row", figs))
        keep = [*COLS, "failed", "extra_jobs", "max_step_attempts", "max_delivery_attempts", "problems"]
        sys.stdout.write(json.dumps({"rounds": [{k: f[k] for k in keep} for f in figs], "ok": ok}) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
