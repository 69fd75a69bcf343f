"""The implementations of the intrinsic functions, each ``(args, raws, sources) -> value``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random as _random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from . import errors
from .jsonvalues import json_equal, to_java_string

_LIMIT = 10_000  # Base64Encode/Decode and Hash input, in characters (developer guide)
_RANGE_LIMIT = 1000  # ArrayRange result length


@dataclass
class Sources:
    """The caller's deterministic sources: ``random()`` in [0, 1), ``uuid()`` a v4 UUID string and
    ``now_millis()`` the current time in epoch milliseconds (JSONata's ``$now``/``$millis``)."""

    random: Callable[[], float] | None = None
    uuid: Callable[[], str] | None = None
    now_millis: Callable[[], int] | None = None


def fail(name: str, message: str) -> NoReturn:
    raise errors.ASLError(errors.INTRINSIC_FAILURE, f"{name}: {message}")


def _int(name: str, v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or (isinstance(v, float) and not v.is_integer()):
        fail(name, f"{what} must be an integer, got {json.dumps(v)}")
    return int(v)


def _str(name: str, v: Any, what: str = "argument") -> str:
    if not isinstance(v, str):
        fail(name, f"{what} must be a string, got {json.dumps(v)}")
    return v


def _list(name: str, v: Any) -> list:
    if not isinstance(v, list):
        fail(name, f"the first argument must be an array, got {json.dumps(v)}")
    return v


def _format(args, raws, sources):
    template = _str("States.Format", args[0], "the template")
    raw = raws[0]
    values = args[1:]
    out: list[str] = []
    n = 0
    text = raw if raw is not None else template
    i = 0
    while i < len(text):
        ch = text[i]
        if raw is not None and ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if text.startswith("{}", i):
            if n >= len(values):
                fail("States.Format", "more '{}' placeholders than arguments")
            out.append(to_java_string(values[n]))
            n += 1
            i += 2
            continue
        out.append(ch)
        i += 1
    if n != len(values):
        fail("States.Format", "more arguments than '{}' placeholders")
    return "".join(out)


def _string_to_json(args, raws, sources):
    text = _str("States.StringToJson", args[0])
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail("States.StringToJson", f"not valid JSON: {exc}")


def _json_to_string(args, raws, sources):
    return json.dumps(args[0], separators=(",", ":"), ensure_ascii=False)


def _array_partition(args, raws, sources):
    arr = _list("States.ArrayPartition", args[0])
    size = _int("States.ArrayPartition", args[1], "the chunk size")
    if size <= 0:
        fail("States.ArrayPartition", "the chunk size must be positive")
    return [arr[i : i + size] for i in range(0, len(arr), size)]


def _array_contains(args, raws, sources):
    return any(json_equal(item, args[1]) for item in _list("States.ArrayContains", args[0]))


def _array_range(args, raws, sources):
    start, end, step = (_int("States.ArrayRange", a, "every argument") for a in args)
    if step == 0:
        fail("States.ArrayRange", "the step must not be 0")
    result = list(range(start, end + (1 if step > 0 else -1), step))
    if len(result) > _RANGE_LIMIT:
        fail("States.ArrayRange", f"the result has more than {_RANGE_LIMIT} items")
    return result


def _array_get_item(args, raws, sources):
    arr = _list("States.ArrayGetItem", args[0])
    index = _int("States.ArrayGetItem", args[1], "the index")
    if not 0 <= index < len(arr):
        fail("States.ArrayGetItem", f"index {index} is out of bounds for an array of {len(arr)}")
    return arr[index]


def _array_unique(args, raws, sources):
    out: list[Any] = []
    for item in _list("States.ArrayUnique", args[0]):
        if not any(json_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _base64_encode(args, raws, sources):
    text = _str("States.Base64Encode", args[0])
    if len(text) > _LIMIT:
        fail("States.Base64Encode", f"the input is longer than {_LIMIT} characters")
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _base64_decode(args, raws, sources):
    text = _str("States.Base64Decode", args[0])
    if len(text) > _LIMIT:
        fail("States.Base64Decode", f"the input is longer than {_LIMIT} characters")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError) as exc:
        fail("States.Base64Decode", f"not valid base64 of UTF-8 text: {exc}")


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _hash(args, raws, sources):
    data = args[0] if isinstance(args[0], str) else json.dumps(args[0], separators=(",", ":"))
    algorithm = _str("States.Hash", args[1], "the algorithm")
    if algorithm not in _HASHES:
        fail("States.Hash", f"unsupported algorithm {algorithm!r}; one of {', '.join(_HASHES)}")
    if len(data) > _LIMIT:
        fail("States.Hash", f"the input is longer than {_LIMIT} characters")
    return hashlib.new(_HASHES[algorithm], data.encode("utf-8")).hexdigest()


def _json_merge(args, raws, sources):
    left, right, deep = args
    if not isinstance(left, dict) or not isinstance(right, dict):
        fail("States.JsonMerge", "both arguments must be objects")
    if deep is not False:
        fail("States.JsonMerge", "only the shallow merge (third argument false) is supported")
    return {**left, **right}


def _java_round(x: float) -> int:
    return math.floor(x + 0.5)


def _math_random(args, raws, sources):
    start = _int("States.MathRandom", args[0], "the start")
    end = _int("States.MathRandom", args[1], "the end")
    if end <= start:
        fail("States.MathRandom", "the end must be greater than the start")
    if len(args) == 3:
        seed = _int("States.MathRandom", args[2], "the seed")
        return _random.Random(seed).randrange(start, end)
    if sources.random is None:
        fail("States.MathRandom", "no random source")
    return start + min(int(sources.random() * (end - start)), end - start - 1)


def _math_add(args, raws, sources):
    total = 0
    for v in args:
        if isinstance(v, bool) or not isinstance(v, int | float):
            fail("States.MathAdd", f"arguments must be numbers, got {json.dumps(v)}")
        total += v if isinstance(v, int) else _java_round(v)
    return total


def _string_split(args, raws, sources):
    text = _str("States.StringSplit", args[0])
    delimiters = _str("States.StringSplit", args[1], "the delimiter")
    parts, current = [], []
    for ch in text:
        if ch in delimiters:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p]


def _uuid(args, raws, sources):
    if sources.uuid is None:
        fail("States.UUID", "no UUID source")
    return str(sources.uuid())


FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[int, int]]] = {
    "States.Format": (_format, (1, 10_000)),
    "States.StringToJson": (_string_to_json, (1, 1)),
    "States.JsonToString": (_json_to_string, (1, 1)),
    "States.Array": (lambda a, r, s: list(a), (0, 10_000)),
    "States.ArrayPartition": (_array_partition, (2, 2)),
    "States.ArrayContains": (_array_contains, (2, 2)),
    "States.ArrayRange": (_array_range, (3, 3)),
    "States.ArrayGetItem": (_array_get_item, (2, 2)),
    "States.ArrayLength": (lambda a, r, s: len(_list("States.ArrayLength", a[0])), (1, 1)),
    "States.ArrayUnique": (_array_unique, (1, 1)),
    "States.Base64Encode": (_base64_encode, (1, 1)),
    "States.Base64Decode": (_base64_decode, (1, 1)),
    "States.Hash": (_hash, (2, 2)),
    "States.JsonMerge": (_json_merge, (3, 3)),
    "States.MathRandom": (_math_random, (2, 3)),
    "States.MathAdd": (_math_add, (2, 2)),
    "States.StringSplit": (_string_split, (2, 2)),
    "States.UUID": (_uuid, (0, 0)),
}
