"""The two kinds of workflow definition, the JSON Schema that tells them apart, and the error
every definition check raises.

A definition is a pipeline (`kind` absent or `pipeline`: steps, template, outputs, delivery)
or a state machine (`kind: state_machine`: an Amazon States Language document and the
bindings of its Task resources)."""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parent / "workflow_definition.schema.json"
PIPELINE = "pipeline"
STATE_MACHINE = "state_machine"


def kind_of(definition: dict[str, Any]) -> str:
    """A stored definition's kind: `state_machine`, or `pipeline` (also when it names none)."""
    return STATE_MACHINE if definition.get("kind") == STATE_MACHINE else PIPELINE


@lru_cache
def definition_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


@dataclass(frozen=True)
class FieldProblem:
    pointer: str  # JSON pointer (RFC 6901) into the definition
    message: str
    code: str


class DefinitionInvalid(ValueError):
    """The definition's problem (the first one, for a state machine checked whole); `problems`
    lists every one found, this one first."""

    def __init__(self, code: str, message: str, path: str = "", problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.path = code, message, path
        self.problems = problems if problems is not None else [FieldProblem(path, message, code)]
