"""JSONata: ``{% %}`` expressions with $states and variables, templates (Arguments, Output,
Assign), Condition, Items, Step Functions' added functions, and States.QueryEvaluationError.
Cases from the developer guide's "Transforming data with JSONata" and "Passing data between
states with variables" pages, and from outputs Step Functions recorded (literals in Output,
undefined results)."""

import hashlib

import pytest

from lodestone.asl import errors
from lodestone.asl import jsonata as J
from lodestone.asl.functions import Sources

INPUT = {"input_value": "string literal", "input_values": [1, 2, 3]}


def scope(**kw):
    kw.setdefault("input", INPUT)
    return J.Scope(**kw)


def query_error(fn):
    with pytest.raises(errors.ASLError) as exc:
        fn()
    assert exc.value.error == "States.QueryEvaluationError"
    return exc.value


def test_is_expression():
    assert J.is_expression("{% $states.input %}")
    assert J.is_expression("{%1%}")
    assert not J.is_expression(" {% $states.input %} ")  # not a whole-string expression
    assert not J.is_expression("$states.input")
    assert not J.is_expression(3)


def test_states_input_context_and_variables():
    s = scope(context={"Execution": {"Name": "run"}}, variables={"var_constant_1": 1, "var_input_value": "x"})
    assert J.evaluate("{% $states.input %}", s) == INPUT
    assert J.evaluate("{% $states.context.Execution.Name %}", s) == "run"
    assert J.evaluate("{% $var_input_value %}", s) == "x"
    # the recorded example: $sum of [1, 2, 3] plus a variable holding 1 is 7
    assert J.evaluate("{% $sum($states.input.input_values) + $var_constant_1 %}", s) == 7


def test_states_result_and_error_output_are_bound_in_their_phase():
    s = scope(result={"Payload": {"ok": True}})
    assert J.evaluate("{% $states.result.Payload.ok %}", s) is True
    e = scope(errorOutput={"Error": "E", "Cause": "c"})
    assert J.evaluate("{% $states.errorOutput.Error %}", e) == "E"
    query_error(lambda: J.evaluate("{% $states.result %}", scope()))  # no result before the task


def test_null_values_are_kept():
    assert J.evaluate("{% $states.input.n %}", scope(input={"n": None})) is None
    assert J.evaluate("{% $v %}", scope(variables={"v": None})) is None
    assert J.evaluate("{% {'k': null} %}", scope()) == {"k": None}


def test_output_template_evaluates_expressions_and_keeps_literals():
    template = {
        "constant_null": None,
        "constant_int": 0,
        "constant_float": 0.1,
        "constant_bool": True,
        "constant_str": "constant string",
        "constant_not_jsonata": " {% states.input %} ",
        "constant_varpath": "$states.input",
        "constant_jp.$": "$",
        "constant_if": "States.Format('Format:{}', 101)",
        "lst": [None, 0, "$.x", {"c": 0}, "{% 1 + 1 %}"],
        "obj": {"inner": "{% $states.input.input_value %}"},
        "expr": "{% $sum($states.input.input_values) %}",
    }
    out = J.evaluate_template(template, scope(), "Output")
    assert out == {
        **template,
        "lst": [None, 0, "$.x", {"c": 0}, 2],
        "obj": {"inner": "string literal"},
        "expr": 6,
    }


def test_output_as_a_whole_expression_can_be_any_json():
    assert J.evaluate_template("{% $string($sum($states.input.input_values) + 1) %}", scope(), "Output") == "7"
    assert J.evaluate_template("{% [] %}", scope(), "Output") == []


def test_arguments_undefined_field_is_an_error_naming_the_field():
    e = query_error(lambda: J.evaluate_template({"FunctionName": "{% $doesNotExist %}"}, scope(), "Arguments"))
    assert "'Arguments/FunctionName'" in e.cause and "returned nothing (undefined)" in e.cause


def test_function_result_is_unsupported():
    query_error(lambda: J.evaluate("{% function($x){$x} %}", scope()))


def test_syntax_and_runtime_errors_are_query_evaluation_errors():
    query_error(lambda: J.evaluate("{% 1 + %}", scope()))
    query_error(lambda: J.evaluate("{% $number('abc') %}", scope()))
    query_error(lambda: J.evaluate("{% 'a' + 1 %}", scope()))
    with pytest.raises(J.JSONataSyntaxError):
        J.compile_expression("{% ( %}")


def test_string_concatenation_and_conditionals():
    s = scope(input={"name": "Ada", "n": 12})
    assert J.evaluate("{% 'Hello ' & $states.input.name %}", s) == "Hello Ada"
    assert J.evaluate("{% $states.input.n > 10 ? 'big' : 'small' %}", s) == "big"


def test_assign_values_are_evaluated_with_the_previous_variables():
    # developer guide: every Assign expression sees the variables as they were when the state began
    new = J.evaluate_template({"a": "{% $b %}", "b": "{% $a %}"}, scope(variables={"a": 1, "b": 2}), "Assign")
    assert new == {"a": 2, "b": 1}


# --- Condition and Choice ------------------------------------------------------------------


def test_condition_must_be_boolean():
    assert J.condition("{% $states.input.n > 10 %}", scope(input={"n": 11})) is True
    assert J.condition("{% $states.input.n > 10 %}", scope(input={"n": 9})) is False
    query_error(lambda: J.condition("{% $states.input.n %}", scope(input={"n": 9})))
    assert J.condition(True, scope()) is True  # a literal boolean is allowed


def test_jsonata_choice():
    state = {
        "Choices": [
            {"Condition": "{% $states.input.type = 'Private' %}", "Next": "Private"},
            {"Condition": "{% $exists($states.input.value) %}", "Next": "HasValue", "Output": {"v": 1}},
        ],
        "Default": "Other",
    }
    assert J.choose(state, scope(input={"type": "Private"}))[0] == "Private"
    nxt, rule = J.choose(state, scope(input={"value": 1}))
    assert nxt == "HasValue" and rule["Output"] == {"v": 1}
    assert J.choose(state, scope(input={})) == ("Other", None)
    with pytest.raises(errors.ASLError) as exc:
        J.choose({"Choices": state["Choices"]}, scope(input={}))
    assert exc.value.error == "States.NoChoiceMatched"


# --- Items ---------------------------------------------------------------------------------


def test_items_must_be_an_array():
    assert J.evaluate_items("{% $states.input.input_values %}", scope()) == [1, 2, 3]
    assert J.evaluate_items([1], scope()) == [1]  # a literal array
    for bad, kind in [
        ("{% 'string' %}", "string"),
        ("{% 1 %}", "number"),
        ("{% null %}", "null"),
        ("{% true %}", "boolean"),
    ]:
        e = query_error(lambda bad=bad: J.evaluate_items(bad, scope()))
        assert f"Expected 'array', but was '{kind}'" in e.cause


# --- functions Step Functions adds, deterministic --------------------------------------------


def test_partition_range_hash_parse():
    s = scope()
    assert J.evaluate("{% $partition([1,2,3,4], 2) %}", s) == [[1, 2], [3, 4]]
    assert J.evaluate("{% $range(0, 10, 2) %}", s) == [0, 2, 4, 6, 8, 10]
    assert J.evaluate("{% $hash('Hello World', 'SHA-256') %}", s) == hashlib.sha256(b"Hello World").hexdigest()
    assert J.evaluate("{% $parse('{\"x\": [1]}') %}", s) == {"x": [1]}


def test_random_uuid_and_clock_come_from_sources():
    s = scope(sources=Sources(random=lambda: 0.5, uuid=lambda: "u-1", now_millis=lambda: 1_700_000_000_000))
    assert J.evaluate("{% $random() %}", s) == 0.5
    assert J.evaluate("{% $uuid() %}", s) == "u-1"
    assert J.evaluate("{% $millis() %}", s) == 1_700_000_000_000
    assert J.evaluate("{% $now() %}", s) == "2023-11-14T22:13:20.000Z"
    seeded = J.evaluate("{% $random(42) %}", scope())
    assert seeded == J.evaluate("{% $random(42) %}", scope()) and 0 <= seeded < 1


def test_without_sources_nondeterministic_functions_fail():
    for expr in ("{% $random() %}", "{% $uuid() %}", "{% $now() %}", "{% $millis() %}"):
        query_error(lambda expr=expr: J.evaluate(expr, scope()))
