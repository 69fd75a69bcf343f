"""Structured JSON logs on stderr. Messages never carry tokens, secrets or message bodies.

Each line carries, where known: request_id (the API request, or the one that started the
workflow), trace_id, tenant_id, job_id and workflow_id."""

import json
import logging
import sys
from contextvars import ContextVar
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
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def bind(**fields: str | None) -> object:
    """Add fields to every log line of the current task; returns a token for unbind()."""
    merged = {**(log_context.get() or {}), **{k: v for k, v in fields.items() if v}}
    return log_context.set(merged)


def unbind(token: object) -> None:
    log_context.reset(token)  # type: ignore[arg-type]


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
