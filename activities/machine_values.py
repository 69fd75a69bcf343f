"""What a state-machine job's path keeps of a value: JSON PostgreSQL can store, and no more
than MACHINE_PATH_VALUE_MAX_BYTES of it.

A value whose compact JSON (UTF-8) is longer than the limit is kept as
`{"truncated": true, "bytes": N, "preview": "<the first bytes of that JSON>"}`: N is the
whole JSON's length in bytes, and the preview is its first `limit` bytes, cut at a character
boundary. PostgreSQL's jsonb holds neither a NUL character (U+0000) nor a non-finite
number: each NUL in a string is kept as U+FFFD, and NaN or an infinity as the string
"NaN", "Infinity" or "-Infinity"."""

import json
import math
import re
from typing import Any

# A \u0000 escape in JSON text, not the tail of an escaped backslash followed by "u0000".
_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def storable(value: Any) -> Any:
    """The value as jsonb can hold it (see above); the value itself when it already can."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        value = _finite(value)
        text = json.dumps(value, separators=(",", ":"))
    return json.loads(_NUL.sub(r"\1\\ufffd", text)) if "\\u0000" in text else value


def clip(value: Any, max_bytes: int) -> Any:
    """The value (storable, and a copy of its own) when its JSON fits in max_bytes, else a
    truncation record. One serialization when the value is already storable: a state's value
    may be megabytes, and this runs in workflow code for every state entered and exited.
    A truncation record made with this limit is kept as it is, so clipping again (the workflow
    clips, then record_machine_events) keeps the whole value's size."""
    if _clipped(value, max_bytes):
        return value
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = None
    if text is None or "\\u0000" in text:
        text = json.dumps(storable(value), ensure_ascii=False, separators=(",", ":"))
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return json.loads(text)
    return {"truncated": True, "bytes": len(encoded), "preview": encoded[:max_bytes].decode(errors="ignore")}


def _clipped(value: Any, max_bytes: int) -> bool:
    return (
        isinstance(value, dict)
        and value.keys() == {"truncated", "bytes", "preview"}
        and value["truncated"] is True
        and isinstance(value["preview"], str)
        and len(value["preview"].encode()) <= max_bytes
    )


def clip_text(text: str | None, max_bytes: int) -> str | None:
    """A string (an error's cause) as text can hold it, cut to max_bytes of UTF-8 (and "…")."""
    if text is None:
        return None
    text = text.replace("\x00", "\ufffd")
    encoded = text.encode()
    return text if len(encoded) <= max_bytes else encoded[:max_bytes].decode(errors="ignore") + "…"
