"""Intrinsic functions (``States.Format(...)`` and friends): a parser for the call syntax and
every function Step Functions defines. Failures are States.IntrinsicFailure.

Paths inside a call are resolved by a callback, so this module does not depend on paths.py.
Randomness and UUIDs come from the injected ``Sources``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from . import errors
from .functions import FUNCTIONS, Sources, fail

__all__ = ["Sources", "Call", "Literal", "PathArg", "parse", "evaluate", "looks_like_call", "FUNCTIONS"]

_NAME = re.compile(r"States\.[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPABLE = "'{}\\"


@dataclass(frozen=True)
class Literal:
    value: Any
    raw: str | None = None  # a string literal's text with its escapes, for States.Format


@dataclass(frozen=True)
class PathArg:
    path: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...] = field(default_factory=tuple)


class IntrinsicSyntaxError(ValueError):
    pass


def looks_like_call(text: str) -> bool:
    return isinstance(text, str) and text.lstrip().startswith("States.")


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def error(self, msg: str) -> IntrinsicSyntaxError:
        return IntrinsicSyntaxError(f"{msg} at position {self.i} in {self.s!r}")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def call(self) -> Call:
        self.ws()
        m = _NAME.match(self.s, self.i)
        if not m:
            raise self.error("expected an intrinsic function name")
        name = m.group(0)
        self.i = m.end()
        self.ws()
        if self.s[self.i : self.i + 1] != "(":
            raise self.error("expected '('")
        self.i += 1
        args: list[Any] = []
        self.ws()
        if self.s[self.i : self.i + 1] == ")":
            self.i += 1
            return Call(name, ())
        while True:
            args.append(self.arg())
            self.ws()
            ch = self.s[self.i : self.i + 1]
            self.i += 1
            if ch == ")":
                return Call(name, tuple(args))
            if ch != ",":
                self.i -= 1
                raise self.error("expected ',' or ')'")

    def arg(self) -> Any:
        self.ws()
        rest = self.s[self.i :]
        if rest.startswith("'"):
            return self.string()
        if rest.startswith("States."):
            return self.call()
        if rest.startswith("$"):
            return self.path()
        for word, value in (("null", None), ("true", True), ("false", False)):
            if rest.startswith(word) and not rest[len(word) : len(word) + 1].isalnum():
                self.i += len(word)
                return Literal(value)
        m = _NUMBER.match(self.s, self.i)
        if m:
            self.i = m.end()
            text = m.group(0)
            return Literal(float(text) if any(c in text for c in ".eE") else int(text))
        raise self.error("expected an argument")

    def string(self) -> Literal:
        start = self.i
        self.i += 1
        out: list[str] = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s):
                nxt = self.s[self.i + 1]
                out.append(nxt if nxt in _ESCAPABLE else ch + nxt)
                self.i += 2
                continue
            if ch == "'":
                self.i += 1
                return Literal("".join(out), self.s[start + 1 : self.i - 1])
            out.append(ch)
            self.i += 1
        raise self.error("unterminated string literal")

    def path(self) -> PathArg:
        start, depth, quote = self.i, 0, None
        while self.i < len(self.s):
            ch = self.s[self.i]
            if quote:
                if ch == "\\":
                    self.i += 1
                elif ch == quote:
                    quote = None
            elif ch in "'\"" and depth:
                quote = ch
            elif ch in "[(":
                depth += 1
            elif ch in "])":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                break
            self.i += 1
        return PathArg(self.s[start : self.i].strip())


@lru_cache(maxsize=4096)
def parse(text: str) -> Call:
    """Parse an intrinsic function call; IntrinsicSyntaxError when it is malformed."""
    p = _Parser(text)
    call = p.call()
    p.ws()
    if p.i != len(text):
        raise p.error("unexpected text after the call")
    _check(call)
    return call


def _check(call: Call) -> None:
    if call.name not in FUNCTIONS:
        raise IntrinsicSyntaxError(f"unknown intrinsic function {call.name}")
    lo, hi = FUNCTIONS[call.name][1]
    if not lo <= len(call.args) <= hi:
        raise IntrinsicSyntaxError(f"{call.name} takes {lo}..{hi} arguments, got {len(call.args)}")
    for arg in call.args:
        if isinstance(arg, Call):
            _check(arg)


def evaluate(text: str | Call, resolve: Callable[[str], Any], sources: Sources | None = None) -> Any:
    """Evaluate a call; ``resolve`` maps a path argument to its value."""
    try:
        call = parse(text) if isinstance(text, str) else text
    except IntrinsicSyntaxError as exc:
        raise errors.ASLError(errors.INTRINSIC_FAILURE, str(exc)) from None
    return _eval(call, resolve, sources or Sources())


def _eval(call: Call, resolve: Callable[[str], Any], sources: Sources) -> Any:
    args: list[Any] = []
    raws: list[str | None] = []
    for arg in call.args:
        if isinstance(arg, Call):
            args.append(_eval(arg, resolve, sources))
            raws.append(None)
        elif isinstance(arg, PathArg):
            args.append(resolve(arg.path))
            raws.append(None)
        else:
            args.append(arg.value)
            raws.append(arg.raw)
    impl = FUNCTIONS[call.name][0]
    try:
        return impl(args, raws, sources)
    except errors.ASLError:
        raise
    except (TypeError, ValueError, OverflowError, IndexError) as exc:
        fail(call.name, str(exc))
