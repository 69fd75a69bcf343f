"""Imports every file of corpus.json.gz as `lodestone import stepfunctions` does, each machine
with the bindings `lodestone bindings suggest` drafts for it and no mapping, and sorts the
outcomes: imported, or refused with one reason (the first that applies, in the order of
REASONS)."""

import gzip
import json
import posixpath
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lodestone.asl.inventory import UNSUPPORTED
from lodestone.asl.suggest import suggest
from services.errors import Invalid
from services.imports import UNREADABLE, MachineImport, plan

CORPUS = Path(__file__).parent / "corpus.json.gz"
# Refusal reasons, in the order a refused machine is sorted by.
REASONS = [
    "unreadable",
    "invalid ASL",
    *(f"uses {name}" for name in UNSUPPORTED),
    "unbound resource",
]


@dataclass(frozen=True)
class Outcome:
    repo: str
    path: str
    machine: str  # the logical id for a template's machine, else the file's stem; "" when none was read
    reason: str | None  # None: imported
    detail: str = ""


def corpus() -> dict[str, Any]:
    return json.loads(gzip.decompress(CORPUS.read_bytes()))  # type: ignore[no-any-return]


def _reader(files: dict[str, str], path: str) -> Any:
    def read(uri: str) -> str:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), uri))
        if target not in files:
            raise OSError("not in the repository")
        return files[target]

    return read


def _reason(m: MachineImport) -> tuple[str | None, str]:
    codes = [p["code"] for p in m.problems]
    if not codes:
        return None, ""
    first = m.problems[0]["message"]
    if UNREADABLE in codes:
        return "unreadable", first
    if {"invalid_state_machine", "schema_violation", "invalid_binding"} & set(codes):
        bad = next(p for p in m.problems if p["code"] != "unsupported_feature")
        return "invalid ASL", f"{bad['pointer']}: {bad['message']}"
    features = {f.name for f in m.inventory.unsupported}
    for name in UNSUPPORTED:
        if name in features:
            return f"uses {name}", ""
    return "unbound resource", first


def outcomes() -> list[Outcome]:
    out = []
    for repo, part in corpus().items():
        files = part["files"]
        for path, text in files.items():
            read = _reader(files, path)
            try:
                drafts = [m for m in plan(text, path, read=read)]
            except Invalid as e:
                out.append(Outcome(repo, path, "", "unreadable", e.detail))
                continue
            bindings = [b for m in drafts if m.definition for b in suggest(m.definition["state_machine"])]
            for m in plan(text, path, read=read, bindings=bindings):
                reason, detail = _reason(m)
                out.append(Outcome(repo, path, m.name, reason, detail))
    return out


def table(found: list[Outcome]) -> str:
    counts = Counter(o.reason or "imported" for o in found)
    rows = [("machines read from the collection's files", len(found)), ("imported", counts["imported"])]
    rows += [(f"refused: {r}", counts[r]) for r in REASONS if counts[r]]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {n:>4}" for name, n in rows)
