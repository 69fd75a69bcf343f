"""Jinja2 in a SandboxedEnvironment, for HTML templates and step instructions."""

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import Markup, escape


class TemplateInvalid(ValueError):
    """The template does not compile."""


class TemplateRenderError(ValueError):
    """The template compiled but failed on this data (a missing variable, say)."""


class TemplateSecurityViolation(ValueError):
    """The template tried to leave the sandbox."""


def _paragraphs(text: object) -> Markup:
    parts = [p.strip() for p in str(text).split("\n\n") if p.strip()]
    return Markup("\n").join(Markup("<p>{}</p>").format(escape(p)) for p in parts)


def _env(html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=html, undefined=StrictUndefined)
    env.filters["paragraphs"] = _paragraphs
    return env


_HTML = _env(html=True)
_TEXT = _env(html=False)


def check_template(source: str, *, html: bool) -> None:
    try:
        (_HTML if html else _TEXT).parse(source)
    except TemplateError as e:
        raise TemplateInvalid(f"line {getattr(e, 'lineno', '?')}: {e}") from e


def render(source: str, context: dict[str, Any], *, html: bool) -> str:
    env = _HTML if html else _TEXT
    try:
        return env.from_string(source).render(**context)
    except SecurityError as e:
        raise TemplateSecurityViolation(f"template tried to leave the sandbox: {e}") from e
    except OverflowError as e:
        raise TemplateSecurityViolation(f"template exceeded a sandbox limit: {e}") from e
    except TemplateError as e:
        raise TemplateRenderError(str(e)) from e
