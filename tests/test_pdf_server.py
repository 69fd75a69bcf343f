"""The warm PDF renderer: renders forked from lodestone.pdf_server give the text a fresh
WeasyPrint process gives, keep their caps and fetcher, and fail alone; a killed server is
started again, and a job whose render it took down succeeds on the activity's retry."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import psutil
import pytest

from activities.summary import summary_html
from devstack.receiver import WebhookReceiver
from lodestone.pdf import PdfRenderer, PdfRendererUnavailable, PdfRenderFailed, default_renderer
from tests.helpers import create_workflow, definition, submit, wait_job, worker_api
from tests.standins.file_source import FileSource
from tests.test_cancel import until

MB = 1024 * 1024
TEXT = "<html><body><h1>Quarterly report</h1>{}</body></html>"
# A document WeasyPrint takes seconds over: long enough to act on its child mid-render.
SLOW = TEXT.format("".join(f"<p>Paragraph {i} of the long report.</p>" for i in range(4000)))
# What lodestone.pdf ran for every render before the fork server.
COLD = "import sys; from lodestone.pdf_server import render; sys.stdout.buffer.write(render(sys.stdin.read()))"


def pdftotext(pdf: bytes) -> str:
    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode()


def children(renderer: PdfRenderer) -> list[psutil.Process]:
    """The render children its fork server runs now."""
    pid = renderer.server_pid
    return psutil.Process(pid).children() if pid else []


def capped_at(renderer: PdfRenderer, memory_mb: int) -> list[psutil.Process]:
    """Its children rendering under this memory cap (a child sets it once it has the document)."""
    found = []
    for child in children(renderer):
        try:
            if child.rlimit(psutil.RLIMIT_AS)[0] == memory_mb * MB:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.fixture
async def renderer():
    r = PdfRenderer()
    await r.start()
    yield r
    await r.close()


async def test_a_warm_render_has_the_text_a_fresh_process_gives(renderer):
    html = TEXT.format(
        "<table style='table-layout: fixed; width: 100%'><tr><th>When</th><th>Who</th></tr>"
        "<tr><td>2026-11-01 09:30</td><td>customer: é, ß, 東京</td></tr></table><p>Signed off.</p>"
    )
    fresh = subprocess.run([sys.executable, "-c", COLD], input=html.encode(), capture_output=True, check=True).stdout
    warm = await renderer.render(html.encode(), timeout=60, memory_mb=1024)
    assert warm.startswith(b"%PDF") and "customer: é, ß, 東京" in pdftotext(warm)
    assert pdftotext(warm) == pdftotext(fresh)


async def test_a_render_past_its_time_cap_is_killed_and_the_next_one_works(renderer):
    server = renderer.server_pid
    with pytest.raises(PdfRenderFailed, match="longer than 1s and was killed"):
        await renderer.render(SLOW.encode(), timeout=1, memory_mb=1024)
    await until(lambda: not children(renderer), 30, "the timed-out child gone")
    pdf = await renderer.render(TEXT.format("after").encode(), timeout=60, memory_mb=1024)
    assert "after" in pdftotext(pdf) and renderer.server_pid == server


async def test_a_crashed_child_leaves_a_concurrent_render_whole(renderer):
    server = renderer.server_pid
    survivor = asyncio.create_task(renderer.render(SLOW.encode(), timeout=120, memory_mb=1024))
    crashing = asyncio.create_task(renderer.render(SLOW.encode(), timeout=120, memory_mb=1100))
    [doomed] = await until(lambda: capped_at(renderer, 1100), 60, "the second render under way")
    await until(lambda: capped_at(renderer, 1024), 60, "the first render under way")
    doomed.send_signal(signal.SIGSEGV)
    with pytest.raises(PdfRenderFailed, match="no result"):
        await crashing
    text = pdftotext(await survivor)
    assert "Paragraph 0 of" in text and "Paragraph 3999 of" in text
    assert renderer.server_pid == server


async def test_a_memory_cap_fails_that_render_only(renderer):
    """The cap is on the child's whole address space, as it was on a fresh process's: 40 MiB
    is less than the server has already, so the long document cannot grow the child's heap."""
    with pytest.raises(PdfRenderFailed, match="exited with"):
        await renderer.render(SLOW.encode(), timeout=60, memory_mb=40)
    assert "after" in pdftotext(await renderer.render(TEXT.format("after").encode(), timeout=60, memory_mb=1024))


async def test_a_killed_server_takes_its_render_down_and_is_started_again(renderer):
    first = renderer.server_pid
    render = asyncio.create_task(renderer.render(SLOW.encode(), timeout=120, memory_mb=1024))
    [child] = await until(lambda: capped_at(renderer, 1024), 60, "the render under way")
    os.kill(first, signal.SIGKILL)
    with pytest.raises(PdfRendererUnavailable):
        await render
    await until(lambda: not child.is_running(), 30, "the render child gone with its server")
    assert "again" in pdftotext(await renderer.render(TEXT.format("again").encode(), timeout=60, memory_mb=1024))
    assert renderer.server_pid not in (None, first)


async def test_closing_ends_the_server_and_its_children():
    renderer = PdfRenderer()
    render = asyncio.create_task(renderer.render(SLOW.encode(), timeout=120, memory_mb=1024))
    [child] = await until(lambda: capped_at(renderer, 1024), 60, "the render under way")
    server = psutil.Process(renderer.server_pid)
    await renderer.close()
    await until(lambda: not child.is_running() and not server.is_running(), 30, "server and child gone")
    with pytest.raises((PdfRendererUnavailable, PdfRenderFailed)):
        await render


async def test_the_fetcher_refuses_http_and_files(renderer, tmp_path):
    source = FileSource(b"body::before { content: 'FROM-HTTP'; }")
    (tmp_path / "leak.css").write_text("body::before { content: 'FROM-FILE'; }")
    html = (
        f"<html><head><link rel=stylesheet href='{source.url('/leak.css')}'>"
        f"<link rel=stylesheet href='file://{tmp_path}/leak.css'></head><body>x</body></html>"
    )
    try:
        text = pdftotext(await renderer.render(html.encode(), timeout=60, memory_mb=1024))
    finally:
        source.close()
    assert "FROM-HTTP" not in text and "FROM-FILE" not in text
    assert source.ranges == []  # not one request reached it


async def test_a_job_whose_renderer_was_killed_gets_its_pdf_on_the_retry(settings, temporal, engine, tenant_a):
    s = settings.model_copy(update={"temporal_task_queue": f"pdf-server-{uuid.uuid4()}"})
    pdf = default_renderer()
    with WebhookReceiver(tenant_a.webhook_secret) as hook:
        body = definition(hook.url, outputs=["html", "pdf"])
        body["steps"] = body["steps"][:1]
        body["template"] = SLOW.replace("Quarterly report", "{{ input.company }}")
        async with worker_api(s, temporal, engine, tenant_a) as api:
            await create_workflow(api, body)
            resp = await submit(api, body["key"], {"company": "Killco"})
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["job_id"]
            await until(lambda: pdf.server_pid and children(pdf), 120, "the job's PDF render under way")
            first = pdf.server_pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            job = await wait_job(api, job_id, timeout=180)
    assert job["status"] == "delivered", job
    assert sorted(a["kind"] for a in job["artifacts"]) == ["html", "pdf"]
    assert pdf.server_pid not in (None, first)
    history = await temporal.get_workflow_handle(job_id).fetch_history()
    retried = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes") and e.activity_task_started_event_attributes.attempt > 1
    ]
    assert retried == [2], retried  # the render, once


async def test_the_summary_table_in_fixed_layout_shows_the_text_automatic_layout_showed(renderer):
    lines = [
        {
            "when": f"2026-11-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}",
            "who": "customer" if i % 3 else "us",
            "text": f"Message {i}: could we move order {1000 + i} to Friday?" + " Thanks, and sorry." * (i % 7),
        }
        for i in range(90)
    ]
    fixed = summary_html("Dana", lines, "2026-11-01", "2026-11-16", "Moved deliveries.", "Delivery changes.")
    assert b"table-layout: fixed" in fixed
    auto = fixed.replace(b"table-layout: fixed", b"table-layout: auto").replace(b"overflow-wrap: anywhere", b"")
    pdfs = [await renderer.render(html, timeout=120, memory_mb=1024) for html in (fixed, auto)]
    texts = [pdftotext(pdf) for pdf in pdfs]
    assert "Message 89: could we move order 1089" in texts[0]
    assert texts[0] == texts[1]
