"""A bounded fault run inside `make test` (`make faults` runs the full one): 10 pipelines
with a webhook and an email target, two worker kill -9s, an API kill and restart, a short LLM
outage, a stretch of 503s and 451s from the receivers, and a PostgreSQL restart, on a stack
of the suite's own. Every job must be delivered exactly once per target, nothing stuck, the
database agreeing with Temporal, no row lost. A failure names the seed that replays its plan."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BOUNDED = [
    "--pipelines",
    "10",
    "--kills",
    "2",
    "--api-restarts",
    "1",
    "--pg-restarts",
    "1",
    "--pg-down",
    "3",
    "--llm-outage",
    "8",
    "--receiver-outage",
    "10",
    "--settle-timeout",
    "300",
]


@pytest.mark.timeout(900)
def test_bounded_fault_run_loses_nothing_and_duplicates_nothing():
    proc = subprocess.run(
        [sys.executable, "-m", "tests.faults", *BOUNDED], cwd=ROOT, capture_output=True, text=True, timeout=840
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    fig = json.loads(lines[-1])
    why = f"seed {fig['seed']}: {fig['problems']}\n{proc.stderr[-3000:]}"
    assert (fig["kills"], fig["api_restarts"], fig["pg_restarts"]) == (2, 1, 1), why
    assert fig["delivered"] == 10 and fig["deliveries"] == fig["expected_deliveries"] == 20, why
    assert (fig["duplicates"], fig["stuck"], fig["mismatches"], fig["rows_lost"], fig["extra_jobs"]) == (0,) * 5, why
    assert fig["webhook_503s"] + fig["smtp_451s"] > 0, why  # the receivers' outage met deliveries
    assert proc.returncode == 0 and fig["ok"], why
