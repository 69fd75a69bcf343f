"""The library is deterministic given its injected sources, draws on no global entropy or
clock of its own, and stays on its floor (imports nothing else from Lodestone, no I/O)."""

import ast
import os
import random
import time
import uuid
from pathlib import Path

import pytest

import lodestone.asl
from lodestone.asl import dataflow, errors, intrinsics, paths, payload
from lodestone.asl import jsonata as J
from lodestone.asl.functions import Sources


def make_sources(seed: int) -> Sources:
    rng = random.Random(seed)
    counter = iter(range(10**6))
    return Sources(
        random=rng.random,
        uuid=lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        now_millis=lambda: 1_700_000_000_000 + next(counter) * 1000,
    )


def battery(sources: Sources) -> list:
    scope = paths.Scope({"n": 3, "items": [3, 1, 3]}, {"Execution": {"Name": "run"}}, sources=sources)
    out = [
        payload.evaluate_payload(
            {
                "id.$": "States.UUID()",
                "roll.$": "States.MathRandom(1, 1000)",
                "seeded.$": "States.MathRandom(1, 1000, 42)",
                "unique.$": "States.ArrayUnique($.items)",
                "msg.$": "States.Format('{} {}', $$.Execution.Name, States.UUID())",
            },
            scope,
        )
    ]
    js = J.Scope({"n": 3}, sources=sources)
    out += [
        J.evaluate(e, js)
        for e in ("{% $uuid() %}", "{% $random() %}", "{% $now() %}", "{% $millis() %}", "{% $random(7) %}")
    ]
    retrier = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "JitterStrategy": "FULL"}
    out += [errors.retry_delay(retrier, n, sources.random) for n in (1, 2, 3)]
    out.append(dataflow.pass_output({"Type": "Pass", "Parameters": {"u.$": "States.UUID()"}}, {}, scope))
    return out


def test_same_sources_give_the_same_results_whatever_the_global_state(monkeypatch):
    first = battery(make_sources(1))
    random.seed(12345)  # disturb the global generator and the clock
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)
    second = battery(make_sources(1))
    assert first == second


def test_different_sources_give_different_results():
    assert battery(make_sources(1)) != battery(make_sources(2))


def test_no_global_entropy_is_drawn(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the ASL library drew on a global source")

    for module, name in [
        (random, "random"),
        (random, "randrange"),
        (random, "randint"),
        (random, "getrandbits"),
        (uuid, "uuid4"),
        (uuid, "uuid1"),
        (os, "urandom"),
    ]:
        monkeypatch.setattr(module, name, forbidden)
    sources = Sources(random=lambda: 0.5, uuid=lambda: "u", now_millis=lambda: 0)
    assert battery(sources)[0]["id"] == "u"


def test_without_sources_nothing_random_is_invented():
    with pytest.raises(errors.ASLError):
        intrinsics.evaluate("States.UUID()", lambda p: None)
    with pytest.raises(errors.ASLError):
        J.evaluate("{% $now() %}", J.Scope({}))


_ALLOWED_IMPORTS = {
    "__future__",
    "asyncio",
    "csv",
    "io",
    "yaml",
    "base64",
    "binascii",
    "collections",
    "collections.abc",
    "copy",
    "dataclasses",
    "datetime",
    "functools",
    "hashlib",
    "json",
    "marshal",  # jsonvalues.clone: a deterministic copy of JSON values
    "math",
    "operator",
    "random",
    "re",
    "typing",
    "jsonpath_ng",
    "jsonpath_ng.ext",
    "jsonpath_ng.ext.iterable",
    "jsonpath_ng.ext.parser",
    "jsonpath_ng.exceptions",
    "jsonpath_ng.jsonpath",
    "jsonata",
    "jsonata.functions",
    "jsonata.utils",
}


def test_the_library_imports_only_its_own_floor():
    package = Path(lodestone.asl.__file__).parent
    for source in sorted(package.glob("*.py")):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside lodestone/asl
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name in _ALLOWED_IMPORTS, f"{source.name} imports {name}"
