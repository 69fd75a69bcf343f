"""Validation of workflow definitions and submission input: the JSON Schema, the step
DAG, and the templates. Every problem is a DefinitionInvalid with a code and a path. A
pipeline stops at its first problem; a state machine (schema/machine_definition.py) is
checked whole, and its DefinitionInvalid lists every problem found."""

from typing import Any, cast

import jsonschema

from lodestone.templating import TemplateInvalid, check_template
from schema.dag import DagError, step_dependencies
from schema.definition_kinds import STATE_MACHINE, DefinitionInvalid, definition_schema
from schema.machine_definition import machine_problems

__all__ = ["DefinitionInvalid", "InputInvalid", "definition_schema", "validate_definition", "validate_input"]


class InputInvalid(ValueError):
    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message, self.path = message, path


def _where(error: jsonschema.ValidationError) -> str:
    return "/" + "/".join(str(p) for p in error.absolute_path)


def validate_definition(definition: Any, max_webhook_timeout: float | None = None) -> dict[str, Any]:
    """`max_webhook_timeout`: the most a webhook target's timeout_seconds may be (the API passes
    WEBHOOK_TIMEOUT_MAX_SECONDS)."""
    if isinstance(definition, dict) and definition.get("kind") == STATE_MACHINE:
        if problems := machine_problems(definition):
            first = problems[0]
            raise DefinitionInvalid(first.code, first.message, first.pointer, problems)
        return definition
    validator = jsonschema.Draft202012Validator(definition_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(definition))
    if error is not None:
        raise DefinitionInvalid("schema_violation", error.message, _where(error))
    for i, target in enumerate(definition.get("delivery", [])):
        asked = target.get("timeout_seconds")
        if max_webhook_timeout is not None and asked is not None and asked > max_webhook_timeout:
            raise DefinitionInvalid(
                "schema_violation",
                f"timeout_seconds {asked} is above this deployment's maximum of {max_webhook_timeout:g} seconds",
                f"/delivery/{i}/timeout_seconds",
            )
    if "input_schema" in definition:
        try:
            jsonschema.Draft202012Validator.check_schema(definition["input_schema"])
        except jsonschema.SchemaError as e:
            raise DefinitionInvalid("schema_violation", f"input_schema: {e.message}", "/input_schema") from e
    for i, step in enumerate(definition["steps"]):
        try:
            jsonschema.Draft202012Validator.check_schema(step.get("output_schema", {}))
        except jsonschema.SchemaError as e:
            raise DefinitionInvalid(
                "schema_violation", f"output_schema: {e.message}", f"/steps/{i}/output_schema"
            ) from e
    try:
        step_dependencies(definition["steps"])
    except DagError as e:
        raise DefinitionInvalid(e.code, str(e), "/steps") from e
    known_fields = definition.get("input_schema", {}).get("properties")
    for i, step in enumerate(definition["steps"]):
        for name, ref in step.get("inputs", {}).items():
            kind, _, field = ref.partition(".")
            if kind == "input" and known_fields is not None and field not in known_fields:
                raise DefinitionInvalid(
                    "unknown_ref",
                    f"step {step['id']!r} input {name!r} refers to unknown field {field!r}",
                    f"/steps/{i}/inputs/{name}",
                )
        try:
            check_template(step["instructions"], html=False)
        except TemplateInvalid as e:
            raise DefinitionInvalid(
                "bad_template", f"step {step['id']!r} instructions: {e}", f"/steps/{i}/instructions"
            ) from e
    try:
        check_template(definition["template"], html=True)
    except TemplateInvalid as e:
        raise DefinitionInvalid("bad_template", f"template: {e}", "/template") from e
    return cast(dict[str, Any], definition)  # the definition schema makes it an object


def validate_input(definition: dict[str, Any], data: Any) -> None:
    schema = definition.get("input_schema", {"type": "object"})
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        raise InputInvalid(error.message, _where(error))
