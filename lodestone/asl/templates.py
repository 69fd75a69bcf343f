"""Reading the state machines out of what a Step Functions team has: an exported ASL document
(JSON, or YAML as SAM's ``.asl.yaml``), or a CloudFormation / SAM template (JSON or YAML) with
``AWS::StepFunctions::StateMachine`` / ``AWS::Serverless::StateMachine`` resources.

A template's machine comes from ``Definition`` (an object), ``DefinitionString`` (a string,
``Fn::Sub`` or ``Fn::Join``) or ``DefinitionUri`` (a local file, read through ``read``).
``${Name}`` placeholders are replaced from the mapping first, then from the resource's
``DefinitionSubstitutions`` / ``Fn::Sub`` variables where those are literal values; an
intrinsic in a ``Fn::Join`` reads as ``${Name}`` (``Ref``) or ``${Name.Attr}`` (``GetAtt``) so
the mapping can give it. What stays unresolved is reported, not guessed.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Found", "ImportSourceError", "Value", "key_of", "parse_document", "state_machines", "substitute"]

MACHINE_TYPES = ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine")
_PLACEHOLDER = re.compile(r"\$\{(?!!)([^}]+)\}")


class ImportSourceError(ValueError):
    """The file is not an ASL document or a template with a state machine one can read."""


@dataclass
class Found:
    name: str  # the template's logical id, or the file's stem for an ASL document
    state_machine: Any = None  # the ASL document, placeholders replaced; None when unreadable
    origin: str = "asl"  # asl | Definition | DefinitionString | DefinitionUri
    unresolved: list[str] = field(default_factory=list)  # ${...} names nothing gave a value
    problem: str | None = None  # why the machine could not be read


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML with CloudFormation's short forms (!Sub, !Ref, !GetAtt, ...) as their long forms."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def _plain(value: Any) -> Any:
    """YAML's dates and times as the strings they were written as."""
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_document(text: str) -> Any:
    """JSON, else YAML (CloudFormation's tags included)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return _plain(yaml.load(text, Loader=_Loader))  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        raise ImportSourceError(f"neither JSON nor YAML: {e}") from e


def key_of(name: str) -> str:
    """A definition key from a logical id or file name: ``OrderStateMachine`` -> ``order-state-machine``."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", name)
    key = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")[:63]
    return key or "state-machine"


Value = str | int | float | bool


def _literal(value: Any) -> Value | None:
    return value if isinstance(value, str | int | float | bool) else None


def _literals(values: Mapping[str, Any]) -> dict[str, Value]:
    """The entries that have a literal value (not an intrinsic only CloudFormation resolves)."""
    return {str(k): v for k, v in values.items() if _literal(v) is not None}


def _intrinsics_as_text(value: Any) -> Any:
    """A Definition object with each Ref / GetAtt / Fn::Sub / Fn::Join as the text it stands for."""
    if isinstance(value, Mapping):
        if len(value) == 1 and next(iter(value)) in ("Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join"):
            text = _intrinsic_text(value) if "Fn::Join" not in value else _definition_string(value)[0]
            if text is not None:
                return text
        return {k: _intrinsics_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_intrinsics_as_text(v) for v in value]
    return value


def _intrinsic_text(value: Any) -> str | None:
    """A string, or a Ref / GetAtt as the ${...} placeholder Fn::Sub would write for it."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        if isinstance(value.get("Ref"), str):
            return "${" + value["Ref"] + "}"
        att = value.get("Fn::GetAtt")
        if isinstance(att, list) and all(isinstance(a, str) for a in att):
            return "${" + ".".join(att) + "}"
        if isinstance(att, str):
            return "${" + att + "}"
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            return sub if isinstance(sub, str) else None
    return None


def _definition_string(value: Any) -> tuple[str | None, dict[str, Value]]:
    """The text of a DefinitionString and the literal Fn::Sub variables that come with it."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        if isinstance(sub, str):
            return sub, {}
        if isinstance(sub, list) and len(sub) == 2 and isinstance(sub[0], str) and isinstance(sub[1], Mapping):
            return sub[0], _literals(sub[1])
    if isinstance(value, Mapping) and isinstance(value.get("Fn::Join"), list) and len(value["Fn::Join"]) == 2:
        sep, parts = value["Fn::Join"]
        texts = [_intrinsic_text(p) for p in parts] if isinstance(parts, list) else [None]
        if isinstance(sep, str) and all(t is not None for t in texts):
            return sep.join(t for t in texts if t is not None), {}
    return None, {}


def substitute(text: str, values: Mapping[str, Value]) -> tuple[str, list[str]]:
    """Each ${name} with a value replaced, ``${!x}`` as ``${x}``; and the names left without
    one, in order of first use. A number or boolean that is a JSON string's whole text
    (``"Seconds": "${Timeout}"``) becomes that JSON value; anywhere else a value is text,
    escaped for the JSON string it lands in."""
    missing: list[str] = []

    def whole(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        return m.group(0) if value is None or isinstance(value, str) else json.dumps(value)

    text = re.sub(r'"\$\{(?!!)([^}"]+)\}"', whole, text)

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in values:
            value = values[name]
            return json.dumps(value if isinstance(value, str) else json.dumps(value))[1:-1]
        if name not in missing:
            missing.append(name)
        return m.group(0)

    return _PLACEHOLDER.sub(one, text).replace("${!", "${"), missing


def _from_text(found: Found, text: str, values: Mapping[str, Value]) -> Found:
    text, found.unresolved = substitute(text, values)
    try:
        found.state_machine = parse_document(text)
    except ImportSourceError as e:
        found.problem = f"{found.origin}: {e}"
    return found


def _machine(
    name: str, props: Mapping[str, Any], mapping: Mapping[str, Value], read: Callable[[str], str] | None
) -> Found:
    subs = props.get("DefinitionSubstitutions")
    values = (
        {k: v for k, v in ((k, _literal(v)) for k, v in subs.items()) if v is not None}
        if isinstance(subs, Mapping)
        else {}
    )
    if "Definition" in props:
        found = Found(name, origin="Definition")
        return _from_text(found, json.dumps(_intrinsics_as_text(props["Definition"])), {**values, **mapping})
    if "DefinitionString" in props:
        found = Found(name, origin="DefinitionString")
        text, variables = _definition_string(props["DefinitionString"])
        if text is None:
            found.problem = "DefinitionString: only a string, Fn::Sub or Fn::Join of strings, Ref and GetAtt is read"
            return found
        return _from_text(found, text, {**values, **variables, **mapping})
    uri = props.get("DefinitionUri")
    if "DefinitionUri" in props:
        found = Found(name, origin="DefinitionUri")
        if not isinstance(uri, str) or read is None:
            found.problem = "DefinitionUri: only a local file path is read (not an S3 location)"
            return found
        try:
            text = read(uri)
        except (OSError, ValueError) as e:
            found.problem = f"DefinitionUri: {uri} cannot be read: {e}"
            return found
        return _from_text(found, text, {**values, **mapping})
    return Found(name, origin="DefinitionS3Location", problem="no Definition, DefinitionString or local DefinitionUri")


def state_machines(
    document: Any, name: str, mapping: Mapping[str, Value] | None = None, read: Callable[[str], str] | None = None
) -> list[Found]:
    """Every state machine the parsed document holds. ``name``: the ASL document's name;
    ``read``: reads a DefinitionUri (relative to the template)."""
    mapping = dict(mapping or {})
    if isinstance(document, Mapping) and "States" in document and "StartAt" in document:
        return [_from_text(Found(name), json.dumps(document), mapping)]
    resources = document.get("Resources") if isinstance(document, Mapping) else None
    if not isinstance(resources, Mapping):
        raise ImportSourceError("neither an ASL document (StartAt, States) nor a template with Resources")
    out = []
    for logical_id, resource in resources.items():
        if isinstance(resource, Mapping) and resource.get("Type") in MACHINE_TYPES:
            props = resource.get("Properties")
            out.append(_machine(str(logical_id), props if isinstance(props, Mapping) else {}, mapping, read))
    if not out:
        raise ImportSourceError("the template has no AWS::StepFunctions::StateMachine or AWS::Serverless::StateMachine")
    return out
