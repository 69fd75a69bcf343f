"""Pass, Choice, Wait, Succeed and Fail in both query languages: no Task call, only data flow
(dataflow.py / jsonata_dataflow.py), Choice rules and, for Wait, one timer."""

from __future__ import annotations

from typing import Any

from . import choice, dataflow, errors, jsonata, paths
from . import jsonata_dataflow as jdf
from .errors import ASLError
from .machine_exec import StateRun, Step
from .payload import evaluate_payload

_PASS_FIELDS = frozenset({"InputPath", "Parameters", "Result", "ResultPath", "OutputPath", "Assign"})
_NO_MATCH = "No Matches!"


def path_scope(run: StateRun, value: Any, retry_count: int = 0) -> paths.Scope:
    return paths.Scope(value, run.context(retry_count), run.frame.vars, run.ex.sources)


def data_scope(run: StateRun, retry_count: int = 0, **phase: Any) -> jsonata.Scope:
    return jsonata.Scope(run.input, run.context(retry_count), run.frame.vars, run.ex.sources, **phase)


def filtered_input(run: StateRun, scope: paths.Scope) -> Any:
    """The input after InputPath (``$``, the default, is the input itself)."""
    state = run.state
    if "InputPath" not in state:
        return run.input
    return paths.apply_input_path(state["InputPath"], scope, present=True)


def output_path(run: StateRun, value: Any, scope: paths.Scope) -> Any:
    state = run.state
    if "OutputPath" not in state:
        return value
    return paths.apply_output_path(state["OutputPath"], value, scope, present=True)


def assign_jsonpath(run: StateRun, holder: Any, scope: paths.Scope, exposed: Any) -> None:
    """A JSONPath Assign: ``$`` is what the state exposes (its result, or its input)."""
    if "Assign" in holder:
        merged = dataflow.assign(holder, scope.with_input(exposed), run.frame.vars)
        run.frame.assign(holder, merged, jsonpath=True)


def assign_jsonata(run: StateRun, holder: Any, scope: jsonata.Scope) -> None:
    if "Assign" in holder:
        run.frame.assign(holder, jdf.assign(holder, scope, run.frame.vars), jsonpath=False)


def jsonata_output(holder: Any, scope: jsonata.Scope, default: Any) -> Any:
    if "Output" in holder:
        return jsonata.evaluate_template(holder["Output"], scope, "Output")
    return default


async def run_pass(run: StateRun) -> Step:
    state = run.state
    if run.jsonpath:
        if _PASS_FIELDS.isdisjoint(state):
            return run.input, state.get("Next"), False
        scope = path_scope(run, run.input)
        if "Result" in state:
            result = state["Result"]
        else:
            result = filtered_input(run, scope)
            if "Parameters" in state:
                result = evaluate_payload(state["Parameters"], scope.with_input(result), "Parameters")
        output = dataflow.state_output(state, run.input, result, scope)
        assign_jsonpath(run, state, scope, result)
        return output, state.get("Next"), False
    jscope = data_scope(run)
    output = jsonata_output(state, jscope, run.input)
    assign_jsonata(run, state, jscope)
    return output, state.get("Next"), False


async def run_choice(run: StateRun) -> Step:
    state = run.state
    if run.jsonpath:
        scope = path_scope(run, run.input)
        value = filtered_input(run, scope)
        rule_scope = scope.with_input(value)
        holder: Any = None
        for rule in state["Choices"]:
            if choice.evaluate_rule(rule, rule_scope):
                holder = rule
                break
        if holder is None:
            if "Default" not in state:
                raise ASLError(errors.NO_CHOICE_MATCHED, _NO_MATCH)
            holder, target = state, state["Default"]
        else:
            target = holder["Next"]
        output = output_path(run, value, scope)
        assign_jsonpath(run, holder, scope, value)
        return output, target, False
    jscope = data_scope(run)
    target, rule = jsonata.choose(state, jscope)
    # The matched rule's Output and Assign, or the state's own when Default is taken.
    holder = rule if rule is not None else state
    output = jsonata_output(holder, jscope, run.input)
    assign_jsonata(run, holder, jscope)
    return output, target, False


async def run_wait(run: StateRun) -> Step:
    state = run.state
    if run.jsonpath:
        scope = path_scope(run, run.input)
        value = filtered_input(run, scope)
        kind, target = dataflow.wait_target(state, scope.with_input(value))
    else:
        jscope = data_scope(run)
        kind, target = jdf.wait_target(state, jscope)
    seconds = float(target) if kind == "seconds" else dataflow.seconds_until(target, run.ex.runtime.now())
    if seconds > 0:
        await run.ex.sleep(seconds)
    if run.jsonpath:
        output = output_path(run, value, scope)
        assign_jsonpath(run, state, scope, value)
    else:
        output = jsonata_output(state, jscope, run.input)
        assign_jsonata(run, state, jscope)
    return output, state.get("Next"), False


async def run_succeed(run: StateRun) -> Step:
    state = run.state
    if run.jsonpath:
        if "InputPath" not in state and "OutputPath" not in state:
            return run.input, None, False
        scope = path_scope(run, run.input)
        return output_path(run, filtered_input(run, scope), scope), None, False
    return jsonata_output(state, data_scope(run), run.input), None, False


async def run_fail(run: StateRun) -> Step:
    if run.jsonpath:
        error, cause = dataflow.fail_error_cause(run.state, path_scope(run, run.input))
    else:
        error, cause = jdf.fail_error_cause(run.state, data_scope(run))
    raise ASLError(error or "", cause or "")
