"""JSON bodies hold only what JSON (RFC 8259) allows, on every route.

Python's json module accepts NaN, Infinity and -Infinity, turns 1e400 into inf, and keeps
an escaped unpaired UTF-16 surrogate ("\\ud800") as a lone code point. None of them can be
stored (PostgreSQL refuses them in jsonb and text) or encoded back as UTF-8, so they would
fail deep inside a route. This middleware refuses them with one 422 before any route
reads the body. It sees every body FastAPI decodes as JSON (no Content-Type, or
application/json, or application/*+json) and the WhatsApp webhook's, which is JSON too.

Every JSON body is decoded once here with a float hook that refuses overflow; one that
holds NaN, Infinity or a surrogate (escaped or encoded), or overflows, is decoded again and walked
to point at the value. A body that is not JSON at all passes through, for the route's own
422 or 400.
"""

import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from api.limits import OWN_LIMIT
from api.problems import problem_response

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# How a JSON text holds a surrogate: escaped, or (json.loads decodes with surrogatepass)
# encoded in UTF-8, or in a UTF-16 or UTF-32 text, which json.loads also takes.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_UTF8 = re.compile(rb"\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Overflow(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Overflow(text)
    return value


class NotJson(ValueError):
    """A value JSON cannot hold; `pointer` (RFC 6901) says where."""

    def __init__(self, what: str, pointer: str) -> None:
        super().__init__(what)
        self.what, self.pointer = what, pointer


def _token(part: str | int) -> str:
    text = str(part).encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate shows as \udXXX
    return text.replace("~", "~0").replace("/", "~1")


def _pointer(path: tuple[str | int, ...]) -> str:
    return "".join("/" + _token(p) for p in path)


def find_not_json(value: Any) -> NotJson | None:
    """The first value in a decoded document that JSON cannot hold, walked without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            what = "NaN" if math.isnan(node) else "a number too large for a double (or Infinity)"
            return NotJson(f"{what}: JSON allows only finite numbers", _pointer(path))
        if isinstance(node, str) and _SURROGATE.search(node):
            return NotJson("a string with an unpaired UTF-16 surrogate", _pointer(path))
        if isinstance(node, dict):
            for key, child in reversed(node.items()):
                if _SURROGATE.search(key):
                    return NotJson("a member name with an unpaired UTF-16 surrogate", _pointer((*path, key)))
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in reversed(list(enumerate(node))))
    return None


def check_json_text(body: bytes) -> NotJson | None:
    """What in this JSON text JSON does not allow, if anything; None too for text that is not JSON."""
    try:
        if not (
            b"NaN" in body
            or b"Infinity" in body
            or _SURROGATE_ESCAPE.search(body)
            or _SURROGATE_UTF8.search(body)
            or json.detect_encoding(body) != "utf-8"
        ):
            json.loads(body, parse_float=_finite)  # only an overflowing number can be wrong
            return None
    except _Overflow:
        pass
    except (ValueError, RecursionError):
        return None  # not JSON: the route answers that as it always does
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return find_not_json(decoded)


def is_json_request(headers: dict[bytes, bytes]) -> bool:
    """FastAPI's rule: no Content-Type, or application/json, or application/*+json."""
    content_type = headers.get(b"content-type")
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    main, _, sub = media.partition(b"/")
    return main == b"application" and (sub == b"json" or sub.endswith(b"+json"))


class StrictJson:
    """Reads a JSON request's body (already capped by BodyLimit), answers 422 problem+json
    for a value JSON does not allow, and otherwise hands the same bytes to the app."""

    def __init__(self, app: Callable[[Message, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or scope["path"].startswith(OWN_LIMIT)
            or not is_json_request(dict(scope.get("headers", [])))
        ):
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left, or BodyLimit has answered 413
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if (bad := check_json_text(body)) is not None:
            response = problem_response(422, "invalid_json", f"the JSON body holds {bad.what}", pointer=bad.pointer)
            return await response(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
