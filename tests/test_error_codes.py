"""One name per error code: the retry policies (workflows/) and the raising code (activities/)
both take theirs from activities/errors.py. Every non-retryable code is raised somewhere,
every raised code is classified, and no code is spelled as a string anywhere else."""

import ast
import importlib
import pkgutil
from pathlib import Path

from temporalio.common import RetryPolicy

import activities
import workflows
from activities import errors

ROOT = Path(__file__).resolve().parent.parent
CODES = {name: value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)}
CODE_KWARGS = {"type", "error_type"}  # ApplicationError(type=...), SendOutcome(error_type=...)


def modules(package):
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "errors":
            yield importlib.import_module(f"{package.__name__}.{info.name}")


def tree(module) -> ast.Module:
    return ast.parse(Path(module.__file__).read_text())


def is_code_of(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "code_of"


def raised_codes() -> set[str]:
    """The codes activities raise: each errors.X they name, and the code of each library failure
    they catch and hand to errors.code_of."""
    found = set()
    for module in modules(activities):
        for node in ast.walk(tree(module)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "errors"
                and node.attr in CODES
            ):
                found.add(CODES[node.attr])
            if (
                isinstance(node, ast.ExceptHandler)
                and node.type is not None
                and any(is_code_of(n) for n in ast.walk(node))
            ):
                caught = eval(compile(ast.Expression(node.type), module.__file__, "eval"), vars(module))  # noqa: S307
                caught = caught if isinstance(caught, tuple) else (caught,)
                found |= {code for cls, code in errors.EXCEPTION_CODES.items() if issubclass(cls, caught)}
    return found


def policies() -> dict[str, RetryPolicy]:
    return {
        f"{m.__name__}.{name}": value
        for m in modules(workflows)
        for name, value in vars(m).items()
        if isinstance(value, RetryPolicy)
    }


def test_every_policy_names_classified_codes():
    assert policies(), "no retry policy found in workflows/"
    for name, policy in policies().items():
        unknown = set(policy.non_retryable_error_types or ()) - errors.NON_RETRYABLE
        assert not unknown, f"{name} names codes that are not non-retryable in activities/errors.py: {unknown}"


def test_every_non_retryable_code_is_raised_and_every_raised_code_classified():
    raised = raised_codes()
    assert errors.NON_RETRYABLE.isdisjoint(errors.RETRYABLE)
    assert errors.NON_RETRYABLE - raised == set(), "non-retryable codes no activity raises"
    assert errors.RETRYABLE - raised == set(), "retryable codes no activity raises"
    assert raised - (errors.NON_RETRYABLE | errors.RETRYABLE) == set(), "raised codes that are not classified"
    in_policies = set().union(*(p.non_retryable_error_types or () for p in policies().values()))
    assert in_policies <= raised


def test_no_code_is_spelled_as_a_string():
    spelled = []
    for module in [*modules(activities), *modules(workflows)]:
        for node in ast.walk(tree(module)):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            args = [kw.value for kw in node.keywords if kw.arg in CODE_KWARGS]
            if name == "fail" and node.args:
                args.append(node.args[0])
            for kw in node.keywords:
                if kw.arg == "non_retryable_error_types" and isinstance(kw.value, ast.List):
                    args.extend(kw.value.elts)
            for arg in args:
                literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                by_class_name = "__name__" in ast.unparse(arg)
                if literal or by_class_name:
                    spelled.append(f"{module.__name__}:{node.lineno}: {ast.unparse(arg)}")
    assert spelled == []
