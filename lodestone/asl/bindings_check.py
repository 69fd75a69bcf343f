"""Static checks of a definition's ``resources`` (its bindings): every problem at once, each
with its JSON pointer under ``/resources``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .validate_expr import Sink, child

__all__ = ["MAX_BINDINGS", "check_bindings", "header_secret_name"]

MAX_BINDINGS = 200
MAX_TEXT = 2000
MAX_TIMEOUT_SECONDS = 3600
HANDLERS = ("http", "llm", "render", "deliver")
MATCHERS = ("function", "resource")
SYNC_MODES = ("answer", "callback")  # lodestone/asl/sync_mode.py
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Set by Lodestone on every request (the signature and the JSON body), or by HTTP itself.
RESERVED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host"}
    | {"lodestone-task-token"}  # a .sync callback Task's token (sync_mode.py)
    | {"connection", "transfer-encoding", "keep-alive", "upgrade", "te", "trailer", "proxy-authorization"}
)
# A tenant's own secrets for request headers. Lodestone's own (the signing secret, the LLM
# key, the WhatsApp token) never leave in a header.
SECRET_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
LODESTONE_SECRETS = frozenset({"webhook_secret", "whatsapp_token", "llm_api_key"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_URL = re.compile(r"https?://[^\s]+")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


def header_secret_name(name: Any) -> str | None:
    """Why `name` cannot be a header's secret, or None when it can."""
    if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
        return "a secret name is 1 to 64 of a-z, 0-9 and _, starting with a letter"
    if name in LODESTONE_SECRETS:
        return f"{name!r} is Lodestone's own secret: it is never sent in a header"
    return None


def check_bindings(bindings: Any) -> list[tuple[str, str]]:
    """(pointer under /resources, message) for every problem of the bindings."""
    out = Sink()
    root = "/resources"
    if bindings is None:
        return []
    if not isinstance(bindings, list):
        out.add(root, "resources must be a list of bindings")
    elif len(bindings) > MAX_BINDINGS:
        out.add(root, f"at most {MAX_BINDINGS} bindings")
    else:
        for i, binding in enumerate(bindings):
            _binding(binding, child(root, i), out)
    return [(p.pointer, p.message) for p in out]


def _binding(binding: Any, ptr: str, out: Sink) -> None:
    if not isinstance(binding, Mapping):
        out.add(ptr, "a binding must be an object")
        return
    for key in binding:
        if key not in MATCHERS and key not in HANDLERS:
            out.add(child(ptr, key), f"unknown field {key!r} in a binding")
    matchers = [m for m in MATCHERS if m in binding]
    if len(matchers) != 1:
        out.add(ptr, "a binding has exactly one of `function` (a Lambda function name) or `resource` (a Resource)")
    for m in matchers:
        _text(binding[m], child(ptr, m), out, "a name or pattern")
    handlers = [h for h in HANDLERS if h in binding]
    if len(handlers) != 1:
        out.add(ptr, "a binding has exactly one handler: http, llm, render or deliver")
    for h in handlers:
        hp = child(ptr, h)
        if not isinstance(binding[h], Mapping):
            out.add(hp, f"{h} must be an object")
            continue
        CHECKS[h](binding[h], hp, out)


def _text(value: Any, ptr: str, out: Sink, what: str) -> bool:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        out.add(ptr, f"must be {what}: a non-empty string of at most {MAX_TEXT} characters")
        return False
    return True


def _fields(
    obj: Mapping[str, Any], ptr: str, out: Sink, allowed: set[str], required: frozenset[str] = frozenset()
) -> None:
    for key in obj:
        if key not in allowed:
            out.add(child(ptr, key), f"unknown field {key!r}")
    for key in sorted(required - set(obj)):
        out.add(ptr, f"{key!r} is required")


def _timeout(obj: Mapping[str, Any], ptr: str, out: Sink) -> None:
    t = obj.get("timeout_seconds")
    if t is not None and (not isinstance(t, int | float) or isinstance(t, bool) or not 0 < t <= MAX_TIMEOUT_SECONDS):
        out.add(child(ptr, "timeout_seconds"), f"timeout_seconds is a number above 0, at most {MAX_TIMEOUT_SECONDS}")


def check_headers(headers: Any, ptr: str, out: Sink) -> None:
    if not isinstance(headers, Mapping):
        out.add(ptr, "headers must be an object")
        return
    for name, value in headers.items():
        hp = child(ptr, name)
        if not _TOKEN.fullmatch(name) or name.lower() in RESERVED_HEADERS:
            out.add(hp, f"{name!r} is not a header name a binding may set")
        if isinstance(value, Mapping):
            if set(value) != {"secret"}:
                out.add(hp, 'a secret header value is {"secret": "<name>"}')
            elif (why := header_secret_name(value["secret"])) is not None:
                out.add(child(hp, "secret"), why)
        elif not isinstance(value, str) or "\r" in value or "\n" in value or len(value) > 8192:
            out.add(hp, 'a header value is a string (one line) or {"secret": "<name>"}')


def _http(obj: Mapping[str, Any], ptr: str, out: Sink) -> None:
    _fields(obj, ptr, out, {"url", "method", "headers", "timeout_seconds", "sync"}, frozenset({"url"}))
    if "sync" in obj and obj["sync"] not in SYNC_MODES:
        out.add(child(ptr, "sync"), 'sync is "answer" or "callback" (how a .sync Resource learns the work ended)')
    url = obj.get("url")
    if "url" in obj and _text(url, child(ptr, "url"), out, "a URL") and not _URL.fullmatch(str(url)):
        out.add(child(ptr, "url"), "url must be an http or https URL")
    if "method" in obj and obj["method"] not in HTTP_METHODS:
        out.add(child(ptr, "method"), f"method is one of {', '.join(HTTP_METHODS)}")
    if "headers" in obj:
        check_headers(obj["headers"], child(ptr, "headers"), out)
    _timeout(obj, ptr, out)


def _llm(obj: Mapping[str, Any], ptr: str, out: Sink) -> None:
    _fields(obj, ptr, out, {"model", "system", "max_tokens", "temperature", "response_format"})
    for key in ("model", "system"):
        if key in obj:
            _text(obj[key], child(ptr, key), out, f"a {key}")
    mt = obj.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt <= 0):
        out.add(child(ptr, "max_tokens"), "max_tokens is a positive integer")
    t = obj.get("temperature")
    if t is not None and (not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t <= 2):
        out.add(child(ptr, "temperature"), "temperature is a number from 0 to 2")
    if obj.get("response_format", "text") not in ("json", "text"):
        out.add(child(ptr, "response_format"), "response_format is json or text")


def _render(obj: Mapping[str, Any], ptr: str, out: Sink) -> None:
    _fields(obj, ptr, out, {"template", "format"})
    if "template" in obj and not isinstance(obj["template"], str):
        out.add(child(ptr, "template"), "template is a Jinja2 template (a string)")
    if obj.get("format", "html") not in ("html", "pdf"):
        out.add(child(ptr, "format"), "format is html or pdf")


def check_target(target: Any, ptr: str, out: Sink) -> None:
    """A delivery target as in pipeline definitions: {type: webhook, url[, timeout_seconds]}
    or {type: email, to}."""
    if not isinstance(target, Mapping) or target.get("type") not in ("webhook", "email"):
        out.add(ptr, 'a target is {"type": "webhook", "url": ...} or {"type": "email", "to": ...}')
        return
    if target["type"] == "webhook":
        _fields(target, ptr, out, {"type", "url", "timeout_seconds"}, frozenset({"url"}))
        if "url" in target and (not isinstance(target["url"], str) or not _URL.fullmatch(target["url"])):
            out.add(child(ptr, "url"), "url must be an http or https URL")
        _timeout(target, ptr, out)
    else:
        _fields(target, ptr, out, {"type", "to"}, frozenset({"to"}))
        if "to" in target and (not isinstance(target["to"], str) or not _EMAIL.fullmatch(target["to"])):
            out.add(child(ptr, "to"), "to must be an email address")


def _deliver(obj: Mapping[str, Any], ptr: str, out: Sink) -> None:
    _fields(obj, ptr, out, {"target"})
    if "target" in obj:
        check_target(obj["target"], child(ptr, "target"), out)


CHECKS: dict[str, Callable[[Mapping[str, Any], str, Sink], None]] = {
    "http": _http,
    "llm": _llm,
    "render": _render,
    "deliver": _deliver,
}
