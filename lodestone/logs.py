"""Structured JSON logs on stderr. Messages never carry tokens, secrets or message bodies.

An exception's trace keeps its frames and its type, never its message: messages quote
input (a database error quotes the value it refused, a validation error the text it
parsed), so none is written. What is safe to name is kept: a SQLSTATE, an errno.

Each line carries, where known: request_id (the API request, or the one that started the
workflow), trace_id, tenant_id, job_id and workflow_id."""

import errno
import json
import logging
import sys
import traceback
from contextvars import ContextVar, Token
from datetime import UTC, datetime

from lodestone.tracing import current_trace_id, propagated_request_id

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
log_context: ContextVar[dict[str, str] | None] = ContextVar("log_context", default=None)

_EXTRA = ("tenant_id", "job_id", "workflow_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get() or propagated_request_id()
        if rid:
            entry["request_id"] = rid
        trace_id = current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        entry.update(log_context.get() or {})
        for key in _EXTRA:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info and record.exc_info[1] is not None:
            entry["exc"] = redacted_trace(record.exc_info[1])
        return json.dumps(entry, default=str)


def _describe(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    safe = []
    for source in (exc, getattr(exc, "orig", None)):  # SQLAlchemy wraps the driver's error in .orig
        if isinstance(sqlstate := getattr(source, "sqlstate", None), str):
            safe.append(f"sqlstate {sqlstate}")
            break
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno in errno.errorcode:
        safe.append(errno.errorcode[exc.errno])
    return f"{name} ({', '.join(safe)})" if safe else name


def redacted_trace(exc: BaseException) -> str:
    """The trace of exc and the exceptions that led to it: frames and types, no messages."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = [
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_list(traceback.extract_tb(e.__traceback__)))
        + _describe(e)
        for e in reversed(chain)
    ]
    return "\n\nwhich led to:\n\n".join(parts) + "\n(exception messages are not logged: they may quote input)"


def bind(**fields: str | None) -> Token[dict[str, str] | None]:
    """Add fields to every log line of the current task; returns a token for unbind()."""
    merged = {**(log_context.get() or {}), **{k: v for k, v in fields.items() if v}}
    return log_context.set(merged)


def unbind(token: Token[dict[str, str] | None]) -> None:
    log_context.reset(token)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
