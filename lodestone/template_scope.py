"""Which variables a template reads that its context will not hold: each one fails the
render (the sandbox's StrictUndefined), so a definition that has one is refused when stored.

A scope maps each name the renderer provides to the keys it is known to hold, or to None when
they are not known (any key may be there). Names a template binds itself ({% set %}, {% for %},
macro arguments) are never reported, and neither are the keys read from such a name."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from jinja2 import Environment, meta, nodes
from jinja2.compiler import CodeGenerator

from lodestone.templating import GLOBALS, template_ast

# What a mapping offers besides its keys: `input.items()` is the dict method, not a missing field.
_MAPPING_METHODS = frozenset(name for name in dir(dict) if not name.startswith("_"))


class _Undeclared(meta.TrackingCodeGenerator):
    """meta.find_undeclared_variables without the optimizer: optimizing re-walks each
    expression's subtree, which made a 200-link attribute chain take seconds to check."""

    def __init__(self, environment: Environment) -> None:
        CodeGenerator.__init__(self, environment, "<introspection>", "<introspection>", optimized=False)
        self.undeclared_identifiers: set[str] = set()


def _undeclared(ast: nodes.Template) -> set[str]:
    assert ast.environment is not None  # Environment.parse sets it
    tracker = _Undeclared(ast.environment)
    tracker.visit(ast)
    return tracker.undeclared_identifiers


@dataclass(frozen=True)
class OutOfScope:
    line: int
    message: str


def _bound_here(ast: nodes.Template) -> set[str]:
    """Every name the template assigns anywhere, in any block."""
    return {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}


def _key_reads(ast: nodes.Template) -> Iterator[tuple[nodes.Name, str, int]]:
    """(root name, key, line) of `name.key` and `name['key']` reads."""
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.ctx == "load":
            yield node.node, node.attr, node.lineno
    for item in ast.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.ctx == "load" and isinstance(item.arg, nodes.Const):
            if isinstance(item.arg.value, str):
                yield item.node, item.arg.value, item.lineno


def _first_line(ast: nodes.Template, name: str) -> int:
    return min((n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"), default=1)


def out_of_scope(source: str, *, html: bool, scope: Mapping[str, frozenset[str] | None]) -> list[OutOfScope]:
    """The template's reads that `scope` does not provide, in line order. The template must
    already have passed check_template; RecursionError: it nests too deeply to analyse (and
    to compile)."""
    ast = template_ast(source, html=html)
    found = [
        OutOfScope(_first_line(ast, name), f"{name!r} is not defined here (defined: {', '.join(sorted(scope))})")
        for name in _undeclared(ast)
        if name not in scope and name not in GLOBALS
    ]
    bound = _bound_here(ast)
    for root, key, line in _key_reads(ast):
        known = scope.get(root.name)
        if root.name in bound or known is None or key in known or key in _MAPPING_METHODS:
            continue
        listed = ", ".join(sorted(known)) or "none"
        found.append(OutOfScope(line, f"{root.name}.{key}: {root.name} has no {key!r} (it has: {listed})"))
    first: dict[str, OutOfScope] = {}  # a read repeated is reported once, at its first line
    for p in sorted(found, key=lambda p: (p.line, p.message)):
        first.setdefault(p.message, p)
    return list(first.values())
