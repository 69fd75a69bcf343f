"""The import over every state-machine file of the three public sample collections
(tests/asl/collection/corpus.json.gz, built by tests/asl/collection/build.py): each machine
imported with the bindings `lodestone bindings suggest` drafts and no mapping. The counts are
the ones measured at the collections' commits; a change in what Lodestone reads, validates or
runs shows here. "ran" counts the imported machines that tests/asl/test_realworld.py runs to
their expected end."""

import json
from collections import Counter
from pathlib import Path

from tests.asl.collection.importer import Outcome, outcomes, table

REALWORLD = Path(__file__).parent / "realworld"

MEASURED = {
    "imported": 400,
    "unreadable": 8,
    "invalid ASL": 16,
    "uses $$.Task.Token": 3,
    "uses Map.ItemReader": 12,
    "uses Map.JSONata": 1,
    "uses http:invoke.Authentication": 3,
}


def _run_cases() -> set[tuple[str, str, str | None]]:
    out = set()
    for path in REALWORLD.glob("*/case.json"):
        case = json.loads(path.read_text())
        out.add((case["source"]["repo"], case["source"]["path"], case.get("machine")))
    return out


def _ran(found: list[Outcome]) -> int:
    cases = _run_cases()
    return sum(
        1
        for o in found
        if o.reason is None and ((o.repo, o.path, o.machine) in cases or (o.repo, o.path, None) in cases)
    )


def test_every_collected_file_imports_or_is_refused_for_a_named_reason() -> None:
    found = outcomes()
    ran = _ran(found)
    print("\n" + table(found) + f"\nran to their expected end (tests/asl/test_realworld.py)  {ran:>4}")  # noqa: T201 (the counts, shown with -s)
    assert dict(Counter(o.reason or "imported" for o in found)) == MEASURED
    assert ran == len(_run_cases())
