"""The template evaluator: tenant templates in child processes, under CPU, memory and
output caps, with a pool that survives every way an evaluation can end."""

import asyncio
import os
import time

import pytest

from lodestone.template_pool import TemplateEvaluatorFailed, TemplateLimits, TemplatePool
from lodestone.templating import (
    TemplateInvalid,
    TemplateLimitExceeded,
    TemplateRenderError,
    TemplateSecurityViolation,
    check_template,
)

LOOP = "{% for i in range(100000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"  # 1e9 iterations
LIMITS = TemplateLimits(cpu_seconds=1.0, memory_mb=128, output_max_bytes=64 * 1024)


@pytest.fixture
async def pool():
    p = TemplatePool(LIMITS, size=2)
    await p.start()
    yield p
    await p.close()


async def test_normal_templates_render_as_before(pool):
    html = "<html><body><h1>{{ input.company }}</h1>{{ steps.write | paragraphs }}</body></html>"
    ctx = {"input": {"company": "Acme & <Co>"}, "steps": {"write": "one\n\ntwo <b>"}}
    assert await pool.render(html, ctx, html=True) == (
        "<html><body><h1>Acme &amp; &lt;Co&gt;</h1><p>one</p>\n<p>two &lt;b&gt;</p></body></html>")
    assert await pool.render("Write using {{ a }} and {{ o }}.", {"a": "<x>", "o": "é"}, html=False) == (
        "Write using <x> and é.")
    loops = "{% for k, v in input | dictsort %}{{ loop.index }}:{{ k }}={{ v }};{% endfor %}"
    assert await pool.render(loops, {"input": {"b": 2, "a": 1}}, html=False) == "1:a=1;2:b=2;"


async def test_template_errors_keep_their_types(pool):
    with pytest.raises(TemplateRenderError, match="'nope' is undefined"):
        await pool.render("{{ nope }}", {}, html=False)
    with pytest.raises(TemplateSecurityViolation, match="unsafe"):
        await pool.render("{{ ''.__class__.__mro__ }}", {}, html=True)
    with pytest.raises(TemplateRenderError, match="ZeroDivisionError"):
        await pool.render("{{ 1 / 0 }}", {}, html=False)


@pytest.mark.parametrize("source", [
    "{% include 'other.html' %}", "{% import 'macros.html' as m %}{{ m.x() }}",
    "{% from 'macros.html' import x %}{{ x() }}", "{% extends 'base.html' %}",
])
async def test_loading_other_templates_is_a_template_error(pool, source):
    with pytest.raises(TemplateRenderError, match="cannot include, import or extend"):
        await pool.render(source, {}, html=True)
    with pytest.raises(TemplateInvalid, match="cannot include, import or extend"):
        check_template(source, html=True)


async def test_cpu_limit_ends_a_runaway_loop(pool):
    started = time.monotonic()
    with pytest.raises(TemplateLimitExceeded, match=r"TEMPLATE_CPU_SECONDS \(1 s\)"):
        await pool.render(LOOP, {}, html=True)
    assert time.monotonic() - started < 15  # 1 s of CPU, on a machine shared with other tests
    assert await pool.render("{{ 1 + 1 }}", {}, html=False) == "2"


@pytest.mark.parametrize("source", [
    "{{ 'x' * 300000000 }}",
    "{{ (range(100000) | list * 1000) | join }}",
    "{{ '{:>300000000}'.format('') }}",
    "{{ '%300000000s' % '' }}",
    "{{ 'x' | center(300000000) }}",
])
async def test_memory_limit_stops_what_one_expression_builds(pool, source):
    with pytest.raises(TemplateLimitExceeded, match=r"TEMPLATE_MEMORY_MB \(128 MiB\)"):
        await pool.render(source, {}, html=True)
    assert await pool.render("{{ 2 * 3 }}", {}, html=False) == "6"


async def test_output_cap_stops_the_template_while_it_generates(pool):
    # Small chunks, 1e9 of them: built first, this would run into the CPU limit instead.
    many = "{% for i in range(100000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(TemplateLimitExceeded, match=r"TEMPLATE_OUTPUT_MAX_BYTES \(65536 bytes\)"):
        await pool.render(many, {}, html=False)
    assert time.monotonic() - started < 5
    assert len(await pool.render("{{ 'y' * 65536 }}", {}, html=False)) == 65536


async def test_macro_recursion_is_a_limit(pool):
    with pytest.raises(TemplateLimitExceeded, match="recursion"):
        await pool.render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {}, html=False)
    assert await pool.render("ok", {}, html=False) == "ok"


async def test_a_cancelled_or_killed_evaluation_leaves_the_pool_whole():
    pool = TemplatePool(LIMITS, size=1)
    await pool.start()
    try:
        render = asyncio.create_task(pool.render(LOOP, {}, html=True))
        await asyncio.sleep(0.3)
        render.cancel()
        with pytest.raises(asyncio.CancelledError):
            await render
        assert await asyncio.wait_for(pool.render("{{ 'after cancel' }}", {}, html=False), 10) == "after cancel"

        render = asyncio.create_task(pool.render(LOOP, {}, html=True))
        await asyncio.sleep(0.3)
        (child,) = pool._children
        os.kill(child.proc.pid, 9)  # as the OOM killer would
        with pytest.raises(TemplateEvaluatorFailed, match="exited with -9"):
            await render
        assert await asyncio.wait_for(pool.render("{{ 'after kill' }}", {}, html=False), 10) == "after kill"

        (idle,) = pool._children
        os.kill(idle.proc.pid, 9)  # between renders
        await idle.proc.wait()
        assert await asyncio.wait_for(pool.render("{{ 'after idle kill' }}", {}, html=False), 10) == "after idle kill"
    finally:
        await pool.close()


async def test_another_tenant_does_not_wait_behind_bombs():
    pool = TemplatePool(TemplateLimits(cpu_seconds=3.0), size=2)
    await pool.start()
    try:
        bombs = [asyncio.create_task(pool.render(LOOP, {}, html=True, tenant="a")) for _ in range(2)]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        for i in range(20):
            assert await pool.render("{{ n }}", {"n": i}, html=False, tenant="b") == str(i)
        # Tenant a holds one of the two slots at a time; had it both, b would wait ~3 s.
        assert time.monotonic() - started < 1.0
        results = await asyncio.gather(*bombs, return_exceptions=True)
        assert all(isinstance(r, TemplateLimitExceeded) for r in results), results
    finally:
        await pool.close()
