"""State machines against a hello-world workflow, in one run on one dev server.

(1) The interpreter inside StateMachineWorkflow, on an in-process worker whose bookkeeping
activities are in-memory stand-ins (no database): a 1-state and a 50-state Pass/Choice machine,
run one at a time, give the time each state adds; many 50-state machines at once give the
transitions per second one worker sustains. A hello-world workflow (one activity) runs in the
same loop as the yardstick. (2) The embedded stack: a 3-Task machine (http Tasks to a local
service stand-in) from POST /v1/submissions to `succeeded`; and from a task token's success
POST to the next state starting.

Progress goes to stderr; a table and then one JSON line (the last) go to stdout."""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from hello import HelloWorkflow, say_hello
    from machine_distributed import run_distributed
    from machine_stack import ms, run_on_stack, sequential, workflow_task_ms
    from rich.console import Console
    from rich.table import Table
    from temporalio.client import Client
    from temporalio.worker import Worker

    from activities.jobs import JobRef, JobStatusInput
    from activities.machine_jobs import MachineEventsInput, MachineFinishInput, MachinePlan
    from devstack.processes import ProcessGroup, free_port
    from devstack.temporal import start_temporal
    from workflows.state_machine import StateMachineWorkflow
    from workflows.types import SubmissionInput

TARGET_TPS, TARGET_MS_PER_STATE = 500.0, 5.0
err = Console(stderr=True)


def pass_choice_machine(states: int) -> dict[str, Any]:
    """`states` states alternating Pass (counting) and Choice (checking the count), then Succeed."""
    body: dict[str, Any] = {"Init": {"Type": "Pass", "Result": 0, "ResultPath": "$.n", "Next": "S1"}}
    for i in range(1, states - 1):
        nxt = f"S{i + 1}" if i < states - 2 else "Done"
        if i % 2:
            body[f"S{i}"] = {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": nxt}
        else:
            rule = {"Variable": "$.n", "NumericGreaterThanEquals": 0, "Next": nxt}
            body[f"S{i}"] = {"Type": "Choice", "Choices": [rule], "Default": "Done"}
    body["Done"] = {"Type": "Succeed"}
    if states == 1:
        return {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    return {"StartAt": "Init", "States": body}


class Bookkeeping:
    """In-memory stand-ins for the database activities, the same for every machine size."""

    def __init__(self, machines: dict[str, dict[str, Any]]) -> None:
        self.machines = machines

    @activity.defn(name="load_machine")
    async def load_machine(self, ref: JobRef) -> MachinePlan:
        return MachinePlan(self.machines[ref.job_id.split("/")[0]], [], {}, {"Execution": {"Id": ref.job_id}}, 4096)

    @activity.defn(name="set_status")
    async def set_status(self, inp: JobStatusInput) -> None:
        return None

    @activity.defn(name="record_machine_events")
    async def record_machine_events(self, inp: MachineEventsInput) -> None:
        return None

    @activity.defn(name="finish_machine")
    async def finish_machine(self, inp: MachineFinishInput) -> None:
        return None

    @activity.defn(name="save_machine_checkpoint")
    async def save_machine_checkpoint(self, inp: Any) -> None:
        return None


async def bench_interpreter(target: str, args: argparse.Namespace) -> dict[str, Any]:
    client = await Client.connect(target)
    queue, run = f"bench-sm-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    sizes = {"m1": pass_choice_machine(1), f"m{args.states}": pass_choice_machine(args.states)}
    books = Bookkeeping(sizes)
    acts = [
        books.load_machine,
        books.set_status,
        books.record_machine_events,
        books.finish_machine,
        books.save_machine_checkpoint,
        say_hello,
    ]
    async with Worker(client, task_queue=queue, workflows=[StateMachineWorkflow, HelloWorkflow], activities=acts):
        task_ms: dict[str, list[float]] = {}

        async def machine(size: str, i: int) -> None:
            job = f"{size}/{run}-{i}-{uuid.uuid4().hex[:6]}"
            await client.execute_workflow(StateMachineWorkflow.run, SubmissionInput("t", job), id=job, task_queue=queue)
            if i >= 0 and i < 10_000:  # the sequential runs: how long the worker spent on workflow tasks
                task_ms.setdefault(size, []).append(await workflow_task_ms(client, job))

        async def hello(i: int) -> None:
            await client.execute_workflow(HelloWorkflow.run, "x", id=f"hello-{run}-{i}", task_queue=queue)

        for warm in range(3):
            await machine("m1", -warm - 1)
            await hello(-warm - 1)
        big = f"m{args.states}"
        err.print(f"sequential: hello, 1-state and {args.states}-state machines x{args.n}, interleaved")
        t_hello, t_one, t_big = [], [], []
        for i in range(args.n):  # interleaved so drift in load hits all three alike
            t_hello += await sequential(1, lambda _, i=i: hello(i))
            t_one += await sequential(1, lambda _, i=i: machine("m1", i))
            t_big += await sequential(1, lambda _, i=i: machine(big, i))
        c = args.concurrent
        err.print(
            f"concurrent: batches of {c} hello, 1-state and {args.states}-state runs, x{args.rounds}, interleaved"
        )

        async def batch(one: Any) -> float:
            t0 = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(c)))
            return time.monotonic() - t0

        w_hello, w_one, w_big = [], [], []
        for r in range(args.rounds):
            base = 10_000 * (r + 1)
            w_hello.append(await batch(lambda i, base=base: hello(base + i)))
            w_one.append(await batch(lambda i, base=base: machine("m1", base + i)))
            w_big.append(await batch(lambda i, base=base: machine(big, base + i)))
    # Each workflow task's start to completion, summed over the run, from its history: the time
    # the worker spent running the workflow's code. A 50-state run and a 1-state run have the
    # same activities, so the difference is what the 49 states cost.
    per_state_ms = (statistics.median(task_ms[big]) - statistics.median(task_ms["m1"])) / (args.states - 1)
    wall_per_state_ms = (statistics.median(t_big) - statistics.median(t_one)) * 1000 / (args.states - 1)
    added_wall = statistics.median(w_big) - statistics.median(w_one)
    return {
        "hello_ms": ms(t_hello),
        "machine_1_state_ms": ms(t_one),
        f"machine_{args.states}_states_ms": ms(t_big),
        "workflow_task_ms_1_state": round(statistics.median(task_ms["m1"]), 2),
        f"workflow_task_ms_{args.states}_states": round(statistics.median(task_ms[big]), 2),
        "added_ms_per_state": round(per_state_ms, 3),
        "added_ms_per_state_wall": round(wall_per_state_ms, 3),
        # The states a batch of machines adds over a batch of 1-state machines, per second of the
        # time they add: the interpreter's rate on one worker, its bookkeeping activities set aside.
        "transitions_per_s_concurrent": round(c * (args.states - 1) / added_wall, 1) if added_wall > 0 else None,
        # Whole runs, bookkeeping activities and all, and hello-world's rate in the same loop.
        "transitions_per_s_end_to_end": round(c * args.states / statistics.median(w_big), 1),
        "machines_per_s": round(c / statistics.median(w_big), 2),
        "hello_per_s": round(c / statistics.median(w_hello), 2),
        "concurrent_machines": c,
    }


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    table = Table(title=f"State machines ({os.cpu_count()} cores, load average {r['loadavg']})")
    for col in ("measure", "value", "target", "met"):
        table.add_column(col)
    per_state, tps = r["added_ms_per_state"], r["transitions_per_s_concurrent"]
    table.add_row("hello-world, start to result (p50)", f"{r['hello_ms']} ms", "", "")
    table.add_row("1-state machine, start to result (p50)", f"{r['machine_1_state_ms']} ms", "", "")
    table.add_row(
        f"{args.states}-state Pass/Choice machine (p50)", f"{r[f'machine_{args.states}_states_ms']} ms", "", ""
    )
    met = {True: "met", False: "NOT met"}
    table.add_row(
        "time added per Pass/Choice state", f"{per_state} ms", f"<= {TARGET_MS_PER_STATE} ms", met[r["per_state_met"]]
    )
    table.add_row(
        f"Pass/Choice transitions/s, {r['concurrent_machines']} machines at once",
        f"{tps}",
        f">= {TARGET_TPS:.0f}",
        met[r["tps_met"]],
    )
    table.add_row(
        f"  whole runs: transitions/s (machines/s), {r['concurrent_machines']} at once",
        f"{r['transitions_per_s_end_to_end']} ({r['machines_per_s']})",
        "",
        "",
    )
    table.add_row(f"  hello-world workflows/s, {r['concurrent_machines']} at once", f"{r['hello_per_s']}", "", "")
    table.add_row(
        f"  workflow-task time of a run: 1 state / {args.states} states",
        f"{r['workflow_task_ms_1_state']} / {r[f'workflow_task_ms_{args.states}_states']} ms",
        "",
        "",
    )
    table.add_row("  time added per state, from start-to-result medians", f"{r['added_ms_per_state_wall']} ms", "", "")
    if "three_task_ms_p50" in r:
        table.add_row("3-Task machine, POST to succeeded (p50)", f"{r['three_task_ms_p50']} ms", "", "")
    if "token_to_next_state_ms_p50" in r:
        table.add_row("task token success POST to next state (p50)", f"{r['token_to_next_state_ms_p50']} ms", "", "")
    if "distributed_items_per_s" in r:
        rate, rss = r["distributed_items_per_s"], r["worker_peak_rss_mib"]
        table.add_row(
            f"distributed Map, {r['distributed_items']} items: items/s, worker peak RSS", f"{rate}, {rss} MiB", "", ""
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="runs of each sequential measure")
    parser.add_argument("--states", type=int, default=50)
    parser.add_argument("--concurrent", type=int, default=20, help="runs at once for the throughput")
    parser.add_argument("--rounds", type=int, default=3, help="batches of each concurrent measure")
    parser.add_argument("--no-stack", action="store_true", help="skip the embedded stack's 3-Task latency")
    parser.add_argument("--items", type=int, default=10_000, help="items of the distributed Map")
    parser.add_argument("--skip-distributed", action="store_true", help="skip the distributed Map")
    args = parser.parse_args()
    out: dict[str, Any] = {"config": vars(args)}
    with tempfile.TemporaryDirectory(prefix="lodestone-bench-sm-", ignore_cleanup_errors=True) as tmp:
        group = ProcessGroup()
        try:
            target = start_temporal(group, Path(tmp) / "t", free_port(), None, free_port(), free_port())
            out |= asyncio.run(bench_interpreter(target, args))
        finally:
            group.stop()
        if not args.no_stack:
            out |= run_on_stack(Path(tmp) / "stack", args.n)
        if not args.skip_distributed:
            out |= run_distributed(Path(tmp) / "dmap", args.items)
    out["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out["per_state_met"] = out["added_ms_per_state"] <= TARGET_MS_PER_STATE
    out["tps_met"] = (out["transitions_per_s_concurrent"] or 0) >= TARGET_TPS
    report(out, args)
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
