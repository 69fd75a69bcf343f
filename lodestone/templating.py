"""Jinja2 in a SandboxedEnvironment, for HTML templates and step instructions.

The sandbox keeps a template from reaching Python's internals; it does not bound what a
template costs. Tenant templates are therefore evaluated by lodestone.template_pool, in
child processes with CPU, memory and output caps; evaluate() is what such a child runs.
render() is for Lodestone's own templates only (the summary PDF).
"""

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, Template, TemplateError, TemplateNotFound, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

NO_OTHER_TEMPLATES = "a template cannot include, import or extend other templates"
TOO_DEEP = "the template nests expressions or blocks too deeply"
# What reaches other templates; a definition that uses one is refused when it is saved.
_LOADING_NODES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)


class TemplateInvalid(ValueError):
    """The template does not compile."""


class TemplateRenderError(ValueError):
    """The template compiled but failed on this data (a missing variable, say)."""


class TemplateSecurityViolation(ValueError):
    """The template tried to leave the sandbox."""


class TemplateLimitExceeded(ValueError):
    """The template used more CPU time, memory, output or recursion than it may; the
    message names the limit (the setting, where one sets it)."""


class _NoLoader(BaseLoader):
    """{% include %}, {% import %}, {% from %} and {% extends %} fail as template errors
    (without a loader, Jinja raises TypeError)."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Any]:
        raise TemplateNotFound(template, NO_OTHER_TEMPLATES)


def _paragraphs(text: object) -> Markup:
    parts = [p.strip() for p in str(text).split("\n\n") if p.strip()]
    return Markup("\n").join(Markup("<p>{}</p>").format(escape(p)) for p in parts)


def _env(html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=html, undefined=StrictUndefined, loader=_NoLoader())
    env.filters["paragraphs"] = _paragraphs
    return env


_HTML = _env(html=True)
_TEXT = _env(html=False)
# Names every template may read without its context providing them (range, dict, namespace, ...).
GLOBALS = frozenset(_HTML.globals)


def template_ast(source: str, *, html: bool) -> nodes.Template:
    """The parsed template; raises TemplateError as parsing does."""
    return (_HTML if html else _TEXT).parse(source)


def check_template(source: str, *, html: bool) -> None:
    try:
        loading = next(template_ast(source, html=html).find_all(_LOADING_NODES), None)
    except TemplateError as e:
        raise TemplateInvalid(f"line {getattr(e, 'lineno', '?')}: {e}") from e
    except (RecursionError, MemoryError) as e:  # parsing and walking the tree recurse once per level
        raise TemplateInvalid(TOO_DEEP) from e
    if loading is not None:
        raise TemplateInvalid(f"line {loading.lineno}: {NO_OTHER_TEMPLATES}")


@lru_cache(maxsize=128)
def _compiled(source: str, html: bool) -> Template:
    """Compiling costs more than rendering a typical template, and one definition's
    templates are rendered for every job."""
    return (_HTML if html else _TEXT).from_string(source)


def _chunks(source: str, context: dict[str, Any], html: bool) -> Iterator[str]:
    try:
        yield from _compiled(source, html).generate(**context)
    except SecurityError as e:
        raise TemplateSecurityViolation(f"template tried to leave the sandbox: {e}") from e
    except OverflowError as e:
        raise TemplateSecurityViolation(f"template exceeded a sandbox limit: {e}") from e
    except TemplateError as e:
        raise TemplateRenderError(str(e)) from e
    except RecursionError as e:
        raise TemplateLimitExceeded("template exceeded the recursion depth limit (a macro calling itself?)") from e
    except MemoryError:
        raise
    except Exception as e:  # the template's own arithmetic or calls failed on this data
        raise TemplateRenderError(f"{type(e).__name__}: {e}") from e


def evaluate(source: str, context: dict[str, Any], *, html: bool, max_bytes: int) -> bytes:
    """The rendered template as UTF-8, generated chunk by chunk so that output past
    max_bytes stops the template instead of being built first."""
    out, size = [], 0
    for chunk in _chunks(source, context, html):
        data = chunk.encode(errors="replace")  # a lone surrogate from the data becomes "?"
        size += len(data)
        if size > max_bytes:
            raise TemplateLimitExceeded(f"template output exceeded TEMPLATE_OUTPUT_MAX_BYTES ({max_bytes} bytes)")
        out.append(data)
    return b"".join(out)


def render(source: str, context: dict[str, Any], *, html: bool) -> str:
    """Render one of Lodestone's own templates in this process (never a tenant's)."""
    return "".join(_chunks(source, context, html))
