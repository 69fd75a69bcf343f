"""What a definition that is well formed would still certainly fail on when it runs, found
when it is stored: a template or instruction variable nothing provides, a model no
provider of the tenant or of the deployment serves, a delivery URL the outbound guard refuses. Checked against the same
settings the worker runs with, so the answer agrees with run time; every problem is listed,
each with its JSON pointer.

What a renderer provides (activities/steps.py, activities/render.py):
- step instructions: `input` (the submission), `input_file` (an uploaded input's excerpt),
  and the step's own `inputs` names;
- the HTML template: `input`, `steps` (every step's output, by id) and `job`.
The keys of `input` are the input schema's `properties` when it declares them; without them
any `input.*` is accepted, as any input may then be submitted."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lodestone.llm import OFFLINE_MODEL
from lodestone.llm_providers import model_configured
from lodestone.message_text import E164, PLACEHOLDER, placeholder_problems
from lodestone.netguard import Allowed, parse_allow, refused_before_sending
from lodestone.settings import Settings
from lodestone.template_scope import out_of_scope
from lodestone.templating import TOO_DEEP
from schema.definition_kinds import FieldProblem

UNDEFINED_VARIABLE = "undefined_variable"
BAD_TEMPLATE = "bad_template"  # as schema/definitions.py names a template that does not compile
MODEL_UNAVAILABLE = "model_unavailable"
URL_REFUSED = "url_refused"
INVALID_PHONE_NUMBER = "invalid_phone_number"
INPUT_FILE_KEYS = frozenset({"excerpt", "size", "truncated"})
JOB_KEYS = frozenset({"id", "workflow_key", "created_at"})


@dataclass(frozen=True)
class RunTimeFacts:
    """What the worker can do for a tenant, from its settings and the tenant's LLM providers."""

    settings: Settings
    allow: tuple[Allowed, ...]
    providers: dict[str, Any] = field(default_factory=dict, hash=False)  # the tenant's stored llm_providers

    @classmethod
    def of(cls, settings: Settings, providers: dict[str, Any] | None = None) -> "RunTimeFacts":
        return cls(settings, tuple(parse_allow(settings.outbound_allow_cidrs)), dict(providers or {}))

    def model_problem(self, model: Any, pointer: str) -> FieldProblem | None:
        name = model if isinstance(model, str) else self.settings.llm_model
        if model_configured(self.settings, self.providers, name):
            return None
        why = "" if isinstance(model, str) else " (LLM_MODEL, the default when none is named)"
        return FieldProblem(
            pointer,
            f"model {name!r}{why} is not configured for this tenant: none of its LLM providers lists it, and "
            f"the deployment's default provider does not serve it (LLM_BASE_URL, LLM_MODELS); {OFFLINE_MODEL!r} "
            "always runs",
            MODEL_UNAVAILABLE,
        )

    def url_problem(self, url: Any, pointer: str) -> FieldProblem | None:
        if not isinstance(url, str) or (why := refused_before_sending(url, self.allow)) is None:
            return None
        return FieldProblem(pointer, f"the outbound guard refuses this URL: {why}", URL_REFUSED)


def _template(
    source: str, pointer: str, html: bool, scope: Mapping[str, frozenset[str] | None]
) -> Iterator[FieldProblem]:
    try:
        found = out_of_scope(source, html=html, scope=scope)
    except RecursionError:  # the analysis recurses deeper than the parser did
        yield FieldProblem(pointer, TOO_DEEP, BAD_TEMPLATE)
        return
    for p in found:
        yield FieldProblem(pointer, f"line {p.line}: {p.message}", UNDEFINED_VARIABLE)


def pipeline_problems(definition: dict[str, Any], facts: RunTimeFacts) -> list[FieldProblem]:
    """Every run-time problem of a pipeline that passed validate_definition, in document order."""
    properties = definition.get("input_schema", {}).get("properties")
    input_keys = frozenset(properties) if isinstance(properties, dict) else None
    problems: list[FieldProblem] = []
    for i, step in enumerate(definition["steps"]):
        names: dict[str, frozenset[str] | None] = {"input": input_keys, "input_file": INPUT_FILE_KEYS}
        names |= {name: None for name in step.get("inputs", {})}
        problems += _template(step["instructions"], f"/steps/{i}/instructions", False, names)
        where = f"/steps/{i}/model" if "model" in step else f"/steps/{i}"
        if (p := facts.model_problem(step.get("model"), where)) is not None:
            problems.append(p)
    step_ids = frozenset(s["id"] for s in definition["steps"])
    problems += _template(
        definition["template"], "/template", True, {"input": input_keys, "steps": step_ids, "job": JOB_KEYS}
    )
    for i, target in enumerate(definition.get("delivery", [])):
        if target["type"] == "webhook" and (p := facts.url_problem(target["url"], f"/delivery/{i}/url")):
            problems.append(p)
        if target["type"] in ("sms", "whatsapp"):
            problems += message_problems(target, f"/delivery/{i}", input_keys)
    return problems


def message_problems(target: dict[str, Any], pointer: str, input_keys: frozenset[str] | None) -> list[FieldProblem]:
    """An sms or whatsapp target's `to` is an E.164 number or placeholders that fill one at run
    time; `to` and `text` hold no template syntax but placeholders, naming fields that exist."""
    problems = [
        FieldProblem(f"{pointer}/{name}", why, BAD_TEMPLATE)
        for name in ("to", "text")
        if name in target
        for why in placeholder_problems(target[name], input_keys)
    ]
    to = target["to"]
    if not PLACEHOLDER.search(to) and not E164.fullmatch(to):
        problems.append(
            FieldProblem(
                f"{pointer}/to",
                f"{to[:40]!r} is not an E.164 phone number: + and a country calling code, 7 to 15 digits in all",
                INVALID_PHONE_NUMBER,
            )
        )
    return problems
