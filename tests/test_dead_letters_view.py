"""`lodestone ops dead-letters` on an 80-column terminal: no line past column 80, the job id
whole on its own line, and nothing of the dead letter cut (its message included)."""

import asyncio
import errno
import os
import pty
import re
import subprocess
import sys
import uuid

from tests.helpers import create_workflow, definition, submit, wait_job
from tests.test_ops import ops_env

# Colours, cursor moves and hyperlinks (OSC 8) a terminal gets and does not show as text.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;[^\x1b\x07]*(?:\x1b\\|\x07)")


def run_on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """argv with a pseudo-terminal as its stdout (so it draws for a person), its output as shown."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError as e:  # EIO: the child closed its end
            if e.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err.decode()
    return proc.returncode, ESCAPES.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


async def test_dead_letters_fit_an_80_column_terminal(settings, tenant_a, llm_standin):
    tag = uuid.uuid4().hex[:8]
    body = definition("https://example.com/hook", key=f"dead-letters-on-a-narrow-terminal-{tag}-{'x' * 20}")
    model = f"broken-width-{tag}"
    body["steps"][1]["model"] = model
    llm_standin.broken.add(model)  # the provider answers this model with nothing
    try:
        wf = await create_workflow(tenant_a.api, body)
        job = await wait_job(tenant_a.api, (await submit(tenant_a.api, wf["key"])).json()["job_id"])
    finally:
        llm_standin.broken.discard(model)
    assert job["status"] == "failed", job

    env = {**ops_env(settings), "COLUMNS": "80", "LINES": "50", "TERM": "xterm-256color"}
    argv = [sys.executable, "-m", "cli.main", "ops", "dead-letters", "--tenant", str(tenant_a.id), "--limit", "3"]
    _, shown = await asyncio.to_thread(run_on_terminal, argv, env)
    lines = shown.splitlines()
    assert "\t" not in shown and max(len(line) for line in lines) <= 80, shown
    (first,) = [i for i, line in enumerate(lines) if line.startswith(job["id"])]  # whole, on its own line
    # The other column of this dead letter, as one text: its parts wrap, none is cut.
    right = "".join(line[39:] for line in lines[first:] if line.strip()).split(lines[first][:36])[0]
    row = "".join(right.split())
    for part in ("Tenant A", wf["key"], job["error"]["failed_step"], job["error"]["code"], job["error"]["message"]):
        assert "".join(part.split()) in row, (part, shown)
