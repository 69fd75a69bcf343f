"""What a state-machine job's path keeps of a value: JSON PostgreSQL can store, and no more
than MACHINE_PATH_VALUE_MAX_BYTES of it.

A value whose compact JSON (UTF-8) is longer than the limit is kept as
`{"truncated": true, "preview": "<the first bytes of that JSON>"}`, the preview being its first
`limit` bytes, cut at a character boundary. Only those bytes are ever encoded: clipping runs in
workflow code for every state entered and exited, and a state's value may be megabytes, so its
cost is bounded by the limit, never by the value (the whole value's size is not measured, as
Step Functions' history gives only `truncated` too). Rows written before kept `"bytes": N`.
PostgreSQL's jsonb holds neither a NUL character (U+0000) nor a non-finite number: each NUL
in a string is kept as U+FFFD, and NaN or an infinity as the string "NaN", "Infinity" or "-Infinity"."""

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
    truncation record. The JSON is produced lazily and no further than max_bytes + 1 bytes
    (see above). A truncation record is kept as it is, so clipping again (the workflow clips,
    then record_machine_events) changes nothing."""
    if _clipped(value, max_bytes):
        return value
    try:
        text, whole = _head(value, max_bytes, allow_nan=False)
    except ValueError:  # NaN or an infinity: as storable() keeps it
        text, whole = _head(_finite(value), max_bytes, allow_nan=True)
    if "\\u0000" in text:
        text = _NUL.sub(r"\1\\ufffd", text)
    if whole:
        return json.loads(text)
    return {"truncated": True, "preview": text.encode()[:max_bytes].decode(errors="ignore")}


def _head(value: Any, max_bytes: int, *, allow_nan: bool) -> tuple[str, bool]:
    """The value's compact JSON up to just past max_bytes of UTF-8, and whether that is all of it.
    JSONEncoder.iterencode without _one_shot yields the text piece by piece, so a large value
    is encoded only as far as the limit."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=allow_nan)
    parts, size = [], 0
    for part in encoder.iterencode(value):
        parts.append(part)
        size += len(part.encode())
        if size > max_bytes:
            return "".join(parts), False
    return "".join(parts), True


def _clipped(value: Any, max_bytes: int) -> bool:
    return (
        isinstance(value, dict)
        and value.keys() in ({"truncated", "preview"}, {"truncated", "bytes", "preview"})
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
