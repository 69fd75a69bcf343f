"""`lodestone jobs watch` against a stand-in event stream (tests/standins/job_events_server.py):
what it prints, its exit codes, and its reconnects with Last-Event-ID after cut connections,
printing nothing twice. The same command on the real stack: tests/test_cli_jobs.py."""

import os
import subprocess
import uuid
from typing import Any

import httpx
import pytest

from cli.sse import StreamLost, follow
from devstack.processes import venv_bin
from tests.standins.job_events_server import JobEventsStandIn

JOB = str(uuid.uuid4())
ART = str(uuid.uuid4())


def script(end: str = "delivered") -> list[tuple[str, dict[str, Any]]]:
    tok = [("token", {"step": "research", "attempt": 2, "text": t}) for t in ("Acme ", "makes\nanvils", ".")]
    events: list[tuple[str, dict[str, Any]]] = [
        ("status", {"status": "processing", "error": None}),
        ("step", {"step": "research", "status": "started", "attempt": 1, "error": None, "next_attempt_at": None}),
        ("token", {"step": "research", "attempt": 1, "text": "Acme"}),
        (
            "step",
            {
                "step": "research",
                "status": "retrying",
                "attempt": 1,
                "error": "llm_unavailable",
                "next_attempt_at": "2026-12-07T16:00:05+00:00",
            },
        ),
        *tok,
        ("step", {"step": "research", "status": "completed", "attempt": 2, "error": None, "next_attempt_at": None}),
        ("artifact", {"artifact_id": ART, "kind": "html", "url": f"/v1/artifacts/{ART}"}),
        (
            "delivery",
            {
                "delivery_id": None,
                "target": "http://hooks.test/x",
                "attempt": 1,
                "status": "delivered",
                "http_status": 200,
                "error": None,
            },
        ),
    ]
    status_error = None if end == "delivered" else "step research failed"
    return events + [("status", {"status": end, "error": status_error}), ("end", {"status": end, "error": None})]


def lodestone(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LODESTONE_")}
    return subprocess.run(
        [venv_bin("lodestone"), *args], env=base | env, capture_output=True, text=True, timeout=60, check=False
    )


def watch(server: JobEventsStandIn) -> subprocess.CompletedProcess[str]:
    return lodestone("jobs", "watch", JOB, env={"LODESTONE_API_URL": server.url, "LODESTONE_TOKEN": "t"})


def test_watch_prints_each_event_and_exits_0_when_delivered():
    with JobEventsStandIn(script()) as server:
        run = watch(server)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "status processing",
        "step research started",
        "  research › Acme",
        "step research retrying (attempt 1): llm_unavailable; next attempt at "
        + run.stdout.split("next attempt at ")[1][:8],
        "  research (attempt 2) › Acme makes",
        "                         anvils.",
        "step research completed",
        f"artifact {ART} html {server.url}/v1/artifacts/{ART}",
        "delivery http://hooks.test/x attempt 1 delivered (HTTP 200)",
        "status delivered",
        "job delivered",
    ]


def test_watch_resumes_after_cut_connections_and_prints_nothing_twice():
    with JobEventsStandIn(script()) as whole_server:
        whole = watch(whole_server).stdout.replace(whole_server.url, "API")
    with JobEventsStandIn(script(), drops=2, drop_after=4) as server:
        server.overlap = 1  # each resume also resends the last event the client saw
        resumed = watch(server)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.replace(server.url, "API") == whole
    # Events 1-4 on the first connection; the second starts at 4 (resent), gets 4-7; the third 7-end.
    assert server.last_event_ids == [None, "4", "7"]
    assert "reconnecting after event 4" in resumed.stderr and "reconnecting after event 7" in resumed.stderr


def test_watch_exits_1_when_the_job_failed():
    with JobEventsStandIn(script(end="failed")) as server:
        run = watch(server)
    assert run.returncode == 1, run.stderr
    assert run.stdout.splitlines()[-1] == "job failed"


def test_a_refused_stream_is_an_error_not_a_reconnect():
    with JobEventsStandIn(script()) as server:
        run = lodestone(
            "jobs", "watch", JOB, env={"LODESTONE_API_URL": server.url + "/nowhere", "LODESTONE_TOKEN": "t"}
        )
        assert len(server.last_event_ids) == 0  # the 404 came before any stream was opened
    assert run.returncode == 2 and "HTTP 404" in run.stderr


def test_missing_token_says_how_to_get_one():
    run = lodestone("jobs", "list", env={"LODESTONE_API_URL": "http://127.0.0.1:9"})
    assert run.returncode == 2
    assert "LODESTONE_TOKEN is not set" in run.stderr and "lodestone token" in run.stderr


def test_follow_gives_up_when_reconnects_bring_nothing_new():
    with JobEventsStandIn(script(), drops=100, drop_after=0) as server, httpx.Client(base_url=server.url) as http:
        with pytest.raises(StreamLost, match="2 reconnects gave up"):
            list(follow(http, f"/v1/jobs/{JOB}/events", until=lambda e: e.type == "end", attempts=2, backoff=0.01))
        assert server.last_event_ids == [None, None, None]
