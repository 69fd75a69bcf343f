"""`lodestone import stepfunctions` and `lodestone bindings suggest`: Step Functions state
machines into Lodestone (services/imports.py). The report goes to stdout (``--json`` for the
reports as JSON); storing talks to the database as the tenant (``--tenant``), as
`lodestone tenant create` does. Refusals print the report and every problem, and exit 1."""

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.ops.runner import fail, note
from lodestone.settings import Settings, get_settings

if TYPE_CHECKING:
    from services.imports import MachineImport

import_app = typer.Typer(help="Import state machines from other engines.", no_args_is_help=True)
bindings_app = typer.Typer(help="Resource bindings of state machines.", no_args_is_help=True)

Source = Annotated[Path, typer.Argument(help="an exported ASL document, or a CloudFormation / SAM template")]
MappingFile = Annotated[
    Path | None, typer.Option("--mapping", help="JSON or YAML object: a value for each ${...} placeholder")
]
Machine = Annotated[str | None, typer.Option("--machine", help="only this state machine of a template (logical id)")]


def _document(path: Path) -> Any:
    from lodestone.asl.templates import ImportSourceError, parse_document

    try:
        return parse_document(path.read_text())
    except (OSError, UnicodeDecodeError, ImportSourceError) as e:
        raise fail(f"{path}: {e}") from e


def _plan(source: Path, bindings: Path | None, mapping: Path | None, **options: Any) -> "list[MachineImport]":
    from services.errors import Invalid
    from services.imports import plan, read_bindings, read_mapping

    def read(uri: str) -> str:
        return (source.parent / uri).read_text()

    try:
        text = source.read_text()
        return plan(
            text,
            str(source),
            bindings=read_bindings(_document(bindings)) if bindings else [],
            mapping=read_mapping(_document(mapping)) if mapping else {},
            read=read,
            **options,
        )
    except (OSError, UnicodeDecodeError) as e:
        raise fail(f"{source}: {e}") from e
    except Invalid as e:
        raise fail(e.detail) from e


def _print_report(m: "MachineImport") -> None:
    r = m.report()
    out = [f"machine {r['name']} -> key {r['key']} (from {r['origin']})"]
    out.append("states: " + (", ".join(f"{t} {n}" for t, n in r["states"].items()) or "none"))
    counts = {
        s: sum(1 for x in r["resources"] if x["status"] == s) for s in ("bound", "native", "at_run_time", "unbound")
    }
    out.append("resources: " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items()))
    for x in r["resources"]:
        named = f" function {x['function']}" if x.get("function") else ""
        handler = f" -> {x['handler']}" if x["handler"] else ""
        out.append(f"  {x['status']:<11} {x['pointer']}  {x['resource']}{named}{handler}")
    out.append(f"unsupported features: {len(r['unsupported'])}")
    out += [f"  {f['feature']}  {f['pointer']}  ({f['why']})" for f in r["unsupported"]]
    if r["unresolved_placeholders"]:
        out.append("unresolved placeholders: " + ", ".join("${" + p + "}" for p in r["unresolved_placeholders"]))
    if r["problems"]:
        out.append(f"problems: {len(r['problems'])}")
        out += [f"  {p['code']}  {p['pointer'] or '-'}  {p['message']}" for p in r["problems"]]
    if r["stored_version"] is not None:
        out.append(f"stored: {r['key']} version {r['stored_version']}")
    sys.stdout.write("\n".join(out) + "\n\n")


async def _store(tenant: uuid.UUID, planned: "list[MachineImport]") -> None:
    from lodestone.db import make_engine, tenant_session
    from services.imports import store

    settings = get_settings()
    engine = make_engine(settings.app_database_url, 1)
    try:
        async with tenant_session(engine, tenant) as session:
            await store(session, tenant, planned, settings)
    finally:
        await engine.dispose()


async def _providers(settings: Settings, tenant: uuid.UUID) -> dict[str, Any]:
    """The tenant's stored LLM providers, for the run-time checks of a dry run too."""
    from lodestone.db import make_engine
    from services.tenants import llm_providers_stored

    engine = make_engine(settings.app_database_url, 1)
    try:
        return await llm_providers_stored(engine, tenant)
    finally:
        await engine.dispose()


@import_app.command("stepfunctions")
def stepfunctions(
    source: Source,
    bindings: Annotated[Path | None, typer.Option("--bindings", help="JSON or YAML: the resources list")] = None,
    name: Annotated[str | None, typer.Option("--name", help="the definition's key (one machine only)")] = None,
    mapping: MappingFile = None,
    machine: Machine = None,
    tenant: Annotated[uuid.UUID | None, typer.Option("--tenant", help="store as this tenant (a UUID)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report only, store nothing")] = False,
    allow_unsupported: Annotated[
        bool, typer.Option("--allow-unsupported", help="store machines that use features Lodestone does not run yet")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the reports as JSON")] = False,
) -> None:
    """Read a Step Functions state machine, bind its resources, report, and store it."""
    from schema.run_checks import RunTimeFacts
    from services.errors import Invalid
    from services.imports import refusal

    if not dry_run and tenant is None:
        raise fail("give --tenant to store the definition, or --dry-run to only report", exit_code=2)
    settings = get_settings()
    # What the worker refuses, as storing it would: with --tenant, for that tenant's LLM providers too.
    facts = RunTimeFacts.of(settings, asyncio.run(_providers(settings, tenant)) if tenant is not None else None)
    planned = _plan(
        source, bindings, mapping, key=name, machine=machine, allow_unsupported=allow_unsupported, facts=facts
    )
    refused = refusal(planned)
    if not dry_run and refused is None and tenant is not None:
        try:
            asyncio.run(_store(tenant, planned))
        except Invalid as e:
            raise fail(e.detail) from e
        except (OSError, RuntimeError) as e:
            raise fail(f"storing failed: {e}") from e
    if as_json:
        sys.stdout.write(json.dumps([m.report() for m in planned], indent=2) + "\n")
    else:
        for m in planned:
            _print_report(m)
    if dry_run:
        note("dry run: nothing stored")
    elif refused is not None:
        raise fail(f"refused, nothing stored: {refused.detail}")


@bindings_app.command("suggest")
def suggest_cmd(source: Source, mapping: MappingFile = None, machine: Machine = None) -> None:
    """Draft a bindings file: every resource the machines use, each to an http endpoint
    placeholder (none for those that need no binding). The draft goes to stdout, the list of
    resources to stderr."""
    from lodestone.asl.suggest import suggest

    drafts: list[dict[str, Any]] = []
    for m in _plan(source, None, mapping, machine=machine):
        if m.definition is None:
            note(f"{m.name}: {m.problems[0]['message']}")
            continue
        for r in m.inventory.resources:
            note(f"{m.name}  {r.pointer}  {r.resource}" + (f"  function {r.function}" if r.function else ""))
        drafts += [d for d in suggest(m.definition["state_machine"]) if d not in drafts]
    sys.stdout.write(json.dumps(drafts, indent=2) + "\n")
