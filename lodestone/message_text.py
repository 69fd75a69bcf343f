"""The short texts an sms or whatsapp delivery target sends, and the number it sends them to.

A target's `to` and `text` may hold placeholders, `{{ input.<field> }}` (the job's input) and
`{{ job.id }}` / `{{ job.workflow_key }}`, and nothing else of a template: they are filled in
by substitution, never evaluated. Phone numbers are E.164: `+`, a country calling code, at
most 15 digits in all."""

import re
from collections.abc import Iterator, Mapping
from typing import Any

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
PLACEHOLDER = re.compile(r"\{\{\s*(input|job)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
TEMPLATE_MARK = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
JOB_FIELDS = frozenset({"id", "workflow_key"})
# ITU-T E.164 country calling codes of one and two digits; every other code has three.
_SHORT_CODES = frozenset(
    {"1", "7"}
    | {"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49"}
    | {"51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66"}
    | {"81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"}
)


class TextInvalid(ValueError):
    """A placeholder that cannot be filled, or a number that is not E.164 once filled."""


def calling_code(number: str) -> str:
    """The country calling code of an E.164 number: '+447700900123' -> '44'."""
    digits = number.removeprefix("+")
    for size in (1, 2):
        if digits[:size] in _SHORT_CODES:
            return digits[:size]
    return digits[:3]


def placeholder_problems(source: str, input_fields: frozenset[str] | None) -> Iterator[str]:
    """Why `source` would not fill in: template syntax other than placeholders, or a field the
    input schema does not declare (`input_fields` None: any input field is accepted)."""
    for m in PLACEHOLDER.finditer(source):
        kind, name = m.groups()
        if kind == "job" and name not in JOB_FIELDS:
            yield f"{m.group(0)}: a job has only {', '.join(sorted(JOB_FIELDS))}"
        elif kind == "input" and input_fields is not None and name not in input_fields:
            yield f"{m.group(0)}: the input schema has no field {name!r}"
    if TEMPLATE_MARK.search(PLACEHOLDER.sub("", source)):
        yield "only {{ input.<field> }} and {{ job.<field> }} placeholders are allowed here"


def fill(source: str, data: Mapping[str, Any], job: Mapping[str, str]) -> str:
    """`source` with its placeholders replaced; an input field that is missing or not a string
    or number is a TextInvalid."""

    def value(m: re.Match[str]) -> str:
        kind, name = m.groups()
        got = (data if kind == "input" else job).get(name)
        if isinstance(got, bool) or not isinstance(got, str | int | float):
            raise TextInvalid(f"{m.group(0)} has no text or number to fill in (input field {name!r})")
        return str(got)

    return PLACEHOLDER.sub(value, source)


def recipient(source: str, data: Mapping[str, Any], job: Mapping[str, str]) -> str:
    """The E.164 number a target's `to` names for this job."""
    number = re.sub(r"[\s()-]", "", fill(source, data, job))
    if not E164.fullmatch(number):
        raise TextInvalid(f"recipient {number[:40]!r} is not an E.164 number (+ and 7 to 15 digits)")
    return number
