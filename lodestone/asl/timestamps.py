"""ASL timestamps: RFC 3339 with an uppercase ``T`` and ``Z`` (or a numeric offset)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$")


def parse_timestamp(text: object) -> datetime | None:
    """An aware datetime, or None when ``text`` is not an ASL timestamp. Fractions of a second
    beyond microseconds are truncated."""
    if not isinstance(text, str):
        return None
    m = _TS.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    if m.group(8) == "Z":
        tz = UTC
    else:
        sign = 1 if m.group(9) == "+" else -1
        hours, minutes = int(m.group(10)), int(m.group(11))
        if hours > 23 or minutes > 59:
            return None
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None
