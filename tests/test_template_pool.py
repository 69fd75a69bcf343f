"""The template evaluator: tenant templates in child processes, under CPU, memory and
output caps, with a pool that survives every way an evaluation can end."""

import asyncio
import os
import time

import pytest

from lodestone.settings import Settings
from lodestone.template_pool import TemplateEvaluatorFailed, TemplateLimits, TemplatePool
from lodestone.template_turns import FairTurns, TemplatePoolBusy
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
        "<html><body><h1>Acme &amp; &lt;Co&gt;</h1><p>one</p>\n<p>two &lt;b&gt;</p></body></html>"
    )
    assert await pool.render("Write using {{ a }} and {{ o }}.", {"a": "<x>", "o": "é"}, html=False) == (
        "Write using <x> and é."
    )
    loops = "{% for k, v in input | dictsort %}{{ loop.index }}:{{ k }}={{ v }};{% endfor %}"
    assert await pool.render(loops, {"input": {"b": 2, "a": 1}}, html=False) == "1:a=1;2:b=2;"


async def test_template_errors_keep_their_types(pool):
    with pytest.raises(TemplateRenderError, match="'nope' is undefined"):
        await pool.render("{{ nope }}", {}, html=False)
    with pytest.raises(TemplateSecurityViolation, match="unsafe"):
        await pool.render("{{ ''.__class__.__mro__ }}", {}, html=True)
    with pytest.raises(TemplateRenderError, match="ZeroDivisionError"):
        await pool.render("{{ 1 / 0 }}", {}, html=False)


@pytest.mark.parametrize(
    "source",
    [
        "{% include 'other.html' %}",
        "{% import 'macros.html' as m %}{{ m.x() }}",
        "{% from 'macros.html' import x %}{{ x() }}",
        "{% extends 'base.html' %}",
    ],
)
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


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 300000000 }}",
        "{{ (range(100000) | list * 1000) | join }}",
        "{{ '{:>300000000}'.format('') }}",
        "{{ '%300000000s' % '' }}",
        "{{ 'x' | center(300000000) }}",
    ],
)
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
    pool = TemplatePool(TemplateLimits(cpu_seconds=3.0), size=2, wait_seconds=30)  # a's 2nd bomb waits its turn
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


async def test_a_flooding_tenant_fails_fast_while_others_render():
    """Tenant a's bombs past its share give their activity slots back within about the
    wait (TemplatePoolBusy) instead of queueing for a bomb's CPU time each; tenants b and c
    render at once meanwhile."""
    pool = TemplatePool(TemplateLimits(cpu_seconds=4.0), size=2)  # the default wait: about 1 s
    await pool.start()
    try:
        bombs = [asyncio.create_task(pool.render(LOOP, {}, html=True, tenant="a")) for _ in range(12)]
        await asyncio.sleep(0.3)

        async def renders(tenant: str) -> float:
            started = time.monotonic()
            for i in range(10):
                assert await pool.render("{{ t }}{{ n }}", {"t": tenant, "n": i}, html=False, tenant=tenant) == (
                    f"{tenant}{i}"
                )
            return time.monotonic() - started

        b, c = await asyncio.gather(renders("b"), renders("c"))
        assert max(b, c) < 3.0, (b, c)  # behind one of a's bombs, either would wait ~4 s

        # Within a few seconds every bomb but the one a's share runs has answered: busy.
        done, _ = await asyncio.wait(bombs, timeout=6.0)
        busy = [t.exception() for t in done if isinstance(t.exception(), TemplatePoolBusy)]
        assert len(busy) >= len(bombs) - 2, [t.exception() for t in done]
        assert all(1.0 * 0.8 <= e.retry_after <= 30 * 1.2 for e in busy), [e.retry_after for e in busy]
        assert "share of the template evaluators" in str(busy[0])
        results = await asyncio.gather(*bombs, return_exceptions=True)
        assert all(isinstance(r, (TemplatePoolBusy, TemplateLimitExceeded)) for r in results), results
        assert any(isinstance(r, TemplateLimitExceeded) for r in results)
    finally:
        await pool.close()


class Turns:
    """FairTurns with plain integers for children, and 10 s waits: the order is the test."""

    def __init__(self, size: int) -> None:
        self.turns: FairTurns[int] = FairTurns(size, wait_seconds=10, render_seconds=2, dead=lambda _: False)
        for i in range(size):
            self.turns.put(i)

    def take(self, tenant: str) -> asyncio.Task[int]:
        return asyncio.create_task(self.turns.take(tenant))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_free_child_goes_to_the_waiting_tenant_holding_fewest():
    t = Turns(size=4)
    a = [t.take("a") for _ in range(6)]
    await settle()
    assert sum(x.done() for x in a) == 3  # alone: all but one child
    b1, c1, c2 = t.take("b"), t.take("c"), t.take("c")
    await settle()
    assert b1.done() and not c1.done()  # b gets the child a could not take; c waits
    # a's first render ends: its child goes to c (holding none), not to a's next render.
    t.turns.release("a")
    t.turns.put(a[0].result())
    await settle()
    assert c1.done() and not c2.done() and sum(x.done() for x in a) == 3
    # a and c now hold 2 and 1, both waiting: the next child goes to c, holding fewer;
    # a gets a third only once no one else waits.
    t.turns.release("b")
    t.turns.put(b1.result())
    await settle()
    assert c2.done() and sum(x.done() for x in a) == 3
    t.turns.release("c")
    t.turns.put(c1.result())
    await settle()
    assert sum(x.done() for x in a) == 4
    for x in a:
        x.cancel()


async def test_tenants_are_served_in_turn_not_in_arrival_order():
    t = Turns(size=2)
    a = [t.take("a") for _ in range(5)]  # a arrives first, with many
    await settle()
    b, c = t.take("b"), t.take("c")
    await settle()
    assert a[0].done() and b.done() and not c.done()
    # a's render ends: a and c hold none; c, never served, goes before a's queue.
    t.turns.release("a")
    t.turns.put(a[0].result())
    await settle()
    assert c.done() and not a[1].done()
    for x in a:
        x.cancel()


async def test_a_render_waits_at_most_the_wait_then_is_busy():
    turns: FairTurns[int] = FairTurns(2, wait_seconds=0.2, render_seconds=2, dead=lambda _: False)
    turns.put(0)
    turns.put(1)
    first = await turns.take("a")
    started = time.monotonic()
    with pytest.raises(TemplatePoolBusy, match=r"1 rendering, 0 more waiting") as busy:
        await turns.take("a")  # a's share (all but one child) is in use
    assert 0.2 <= time.monotonic() - started < 2
    assert 0.8 <= busy.value.retry_after <= 2.4
    assert await turns.take("b") == 1  # the child a could not have was free all along
    turns.release("a")
    turns.put(first)
    assert await turns.take("a") == first
    assert not turns._waiting  # the busy render left no turn behind


async def test_the_render_next_in_line_waits_for_a_child_instead_of_being_busy():
    # a and b hold both children (say with bombs); c holds none: its first render waits for
    # the next free child, past the wait, while its second is busy after the wait.
    turns: FairTurns[int] = FairTurns(
        2, wait_seconds=0.2, render_seconds=2, dead=lambda _: False, next_in_line_seconds=10
    )
    turns.put(0)
    turns.put(1)
    a, b = await turns.take("a"), await turns.take("b")
    first, second = asyncio.create_task(turns.take("c")), asyncio.create_task(turns.take("c"))
    with pytest.raises(TemplatePoolBusy, match=r"0 rendering, 1 more waiting"):
        await second
    await asyncio.sleep(0.5)
    assert not first.done()  # past the wait: still in line
    turns.release("b")
    turns.put(b)
    assert await asyncio.wait_for(first, 1) == b
    assert turns.held == {"a": 1, "c": 1} and a == 0


def test_one_template_worker_is_refused():
    # With one child, one tenant's bombs would hold it: no other tenant's render could run.
    with pytest.raises(ValueError, match="TEMPLATE_WORKERS must be at least 2"):
        Settings(_env_file=None, template_workers=1)
    assert Settings(_env_file=None, template_workers=2).template_workers == 2
