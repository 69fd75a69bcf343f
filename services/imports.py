"""Importing Step Functions state machines: read them out of an exported ASL document or a
CloudFormation / SAM template (lodestone.asl.templates), bind their resources, report what
each uses (lodestone.asl.inventory) and what would stop it, and store the ones nothing stops.

A machine is refused when it cannot be read, when the definition check finds problems (invalid
ASL, bad bindings, a Task no binding handles: the same 422 problems POST /v1/workflows
answers), or when it uses a feature Lodestone does not run yet, unless that is allowed.
Storing is all or nothing: one refused machine stores none.
"""

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from lodestone.asl.inventory import Inventory, inventory
from lodestone.asl.templates import Found, ImportSourceError, Value, key_of, parse_document, state_machines
from lodestone.settings import Settings
from schema.machine_definition import machine_problems
from schema.machine_run_checks import machine_run_problems
from schema.run_checks import RunTimeFacts
from schema.tables import WorkflowDefinition
from services import definitions
from services.errors import Invalid

UNREADABLE = "unreadable_state_machine"
UNSUPPORTED_FEATURE = "unsupported_feature"


@dataclass
class MachineImport:
    name: str  # logical id in the template, or the file's name
    key: str
    origin: str
    definition: dict[str, Any] | None
    inventory: Inventory
    unresolved: list[str]  # ${...} placeholders left in the definition
    problems: list[dict[str, str]] = field(default_factory=list)  # {pointer, message, code}
    stored: WorkflowDefinition | None = None

    @property
    def refused(self) -> bool:
        return bool(self.problems)

    def report(self) -> dict[str, Any]:
        inv = self.inventory
        return {
            "name": self.name,
            "key": self.key,
            "origin": self.origin,
            "states": inv.states,
            "resources": [
                {"pointer": r.pointer, "resource": r.resource, "status": r.status, "handler": r.handler}
                | ({"function": r.function} if r.function else {})
                for r in inv.resources
            ],
            "unsupported": [{"feature": f.name, "pointer": f.pointer, "why": f.why} for f in inv.unsupported],
            "unresolved_placeholders": self.unresolved,
            "refused": self.refused,
            "problems": self.problems,
            "stored_version": self.stored.version if self.stored else None,
        }


def read_mapping(document: Any) -> dict[str, Value]:
    """A mapping file: an object of placeholder name -> value (a string, number or boolean)."""
    if not isinstance(document, Mapping):
        raise Invalid("invalid_mapping", "the mapping must be an object of placeholder name to value")
    for name, value in document.items():
        if not isinstance(value, str | int | float | bool):
            raise Invalid("invalid_mapping", f"the mapping's value for {name!r} is not a string, number or boolean")
    return {str(k): v for k, v in document.items()}


def read_bindings(document: Any) -> list[dict[str, Any]]:
    """A bindings file: the definition's ``resources`` list, or an object holding it."""
    if isinstance(document, Mapping) and "resources" in document:
        document = document["resources"]
    if not isinstance(document, list):
        raise Invalid("invalid_binding", "the bindings must be a list (a definition's resources) or {resources: [...]}")
    return document


def _one(
    found: Found,
    key: str,
    bindings: list[dict[str, Any]],
    allow_unsupported: bool,
    source: str,
    facts: RunTimeFacts | None,
) -> MachineImport:
    if found.problem is not None or not isinstance(found.state_machine, dict):
        problem = found.problem or "the state machine is not a JSON object"
        done = MachineImport(found.name, key, found.origin, None, Inventory(), found.unresolved)
        done.problems = [{"pointer": "", "message": problem, "code": UNREADABLE}]
        return done
    definition: dict[str, Any] = {
        "key": key,
        "kind": "state_machine",
        "description": f"imported from {source} ({found.name})"[:2000],
        "state_machine": found.state_machine,
        "resources": bindings,
    }
    inv = inventory(found.state_machine, bindings)
    done = MachineImport(found.name, key, found.origin, definition, inv, found.unresolved)
    found_problems = machine_problems(definition)
    if not found_problems and facts is not None:  # what storing it would refuse too
        found_problems = machine_run_problems(definition, facts)
    done.problems = [{"pointer": p.pointer, "message": p.message, "code": p.code} for p in found_problems]
    if not allow_unsupported:
        done.problems += [
            {"pointer": "/state_machine" + f.pointer, "message": f"{f.name}: {f.why}", "code": UNSUPPORTED_FEATURE}
            for f in inv.unsupported
        ]
    return done


def plan(
    text: str,
    source: str,
    *,
    bindings: list[dict[str, Any]] | None = None,
    mapping: Mapping[str, Value] | None = None,
    key: str | None = None,
    machine: str | None = None,
    read: Callable[[str], str] | None = None,
    allow_unsupported: bool = False,
    facts: RunTimeFacts | None = None,
) -> list[MachineImport]:
    """What importing `text` (an ASL document or a template, named `source`) would store:
    each machine's definition, report and problems. `key` names the definition when there is
    one machine (else each takes its logical id's); `machine` picks one logical id. With `facts`
    (the worker's settings), the problems include what would certainly fail when it runs."""
    try:
        found = state_machines(parse_document(text), source.rsplit("/", 1)[-1].split(".")[0], mapping, read)
    except ImportSourceError as e:
        raise Invalid(UNREADABLE, f"{source}: {e}") from e
    if machine is not None:
        found = [f for f in found if f.name == machine]
        if not found:
            raise Invalid(UNREADABLE, f"{source} has no state machine {machine!r}")
    if key is not None and len(found) > 1:
        raise Invalid("ambiguous_key", f"{source} holds {len(found)} state machines: pick one to name it")
    return [_one(f, key or key_of(f.name), list(bindings or []), allow_unsupported, source, facts) for f in found]


def refusal(imports: list[MachineImport]) -> Invalid | None:
    """The 422 for a refused import: every problem of every machine, the first one named."""
    every = [p | {"machine": m.name} if len(imports) > 1 else p for m in imports for p in m.problems]
    if not every:
        return None
    first = every[0]
    return Invalid(first["code"], first["message"], pointer=first["pointer"] or None, errors=every)


async def store(session: AsyncSession, tenant_id: uuid.UUID, imports: list[MachineImport], settings: Settings) -> None:
    """Each machine's definition as the next version under its key; raises the refusal first."""
    if (refused := refusal(imports)) is not None:
        raise refused
    for m in imports:
        assert m.definition is not None
        m.stored = await definitions.create(session, tenant_id=tenant_id, definition=m.definition, settings=settings)
