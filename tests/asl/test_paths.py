"""Paths, Reference Paths, InputPath/OutputPath/ResultPath/ItemsPath, the context object and
payload templates. Cases from the ASL specification ("Paths", "Reference Paths", "Payload
Template", "Input and Output Processing") and the developer guide's input/output pages."""

import pytest

from lodestone.asl import errors, paths, payload
from lodestone.asl.functions import Sources
from lodestone.asl.paths import Scope

SPEC_INPUT = {"foo": 123, "bar": ["a", "b", "c"], "car": {"cdr": True}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", SPEC_INPUT),
        ("$.foo", 123),
        ("$.bar", ["a", "b", "c"]),
        ("$.car.cdr", True),
        ("$.bar[0]", "a"),
        ("$['car']['cdr']", True),
    ],
)
def test_spec_paths_select_one_node(path, expected):
    assert paths.get(path, Scope(SPEC_INPUT)) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.bar[*]", ["a", "b", "c"]),
        ("$.bar[1:]", ["b", "c"]),
        ("$..cdr", [True]),
        ("$.items[?(@.price > 10)].name", ["b"]),
        ("$.items[?(@.price > 100)]", []),  # an indefinite path that selects nothing is []
    ],
)
def test_indefinite_paths_return_arrays(path, expected):
    data = {**SPEC_INPUT, "items": [{"name": "a", "price": 5}, {"name": "b", "price": 20}]}
    assert paths.get(path, Scope(data)) == expected


@pytest.mark.parametrize(
    ("path", "is_reference"),
    [
        ("$", True),
        ("$.foo", True),
        ("$.car.cdr", True),
        ("$.bar[0]", True),
        ("$['foo']", True),
        ("$.bar[*]", False),
        ("$..cdr", False),
        ("$.bar[0:1]", False),
        ("$.a[?(@.x == 1)]", False),
        ("$$.Execution.Id", False),
        ("foo", False),
        ("$.[", False),
    ],
)
def test_reference_paths(path, is_reference):
    assert paths.is_reference_path(path) is is_reference


def test_context_object_paths():
    context = {
        "Execution": {"Id": "arn:exec:1", "Input": {"x": 1}, "Name": "run-1", "StartTime": "2026-01-01T00:00:00Z"},
        "State": {"Name": "S", "EnteredTime": "2026-01-01T00:00:01Z", "RetryCount": 0},
        "StateMachine": {"Id": "arn:sm", "Name": "sm"},
        "Map": {"Item": {"Index": 2, "Value": {"id": "c"}}},
        "Task": {"Token": "tok"},
    }
    scope = Scope({"input": True}, context)
    assert paths.get("$$.Execution.Id", scope) == "arn:exec:1"
    assert paths.get("$$.Execution.Input.x", scope) == 1
    assert paths.get("$$.State.Name", scope) == "S"
    assert paths.get("$$.Map.Item.Index", scope) == 2
    assert paths.get("$$.Map.Item.Value", scope) == {"id": "c"}
    assert paths.get("$$.Task.Token", scope) == "tok"
    assert paths.get("$$", scope) == context
    assert paths.get("$", scope) == {"input": True}


def test_variables_are_read_with_dollar_name():
    scope = Scope({"a": 1}, variables={"order": {"id": 7}, "n": 3})
    assert paths.get("$order.id", scope) == 7
    assert paths.get("$n", scope) == 3
    assert not paths.is_present("$missing", scope)


# --- InputPath / OutputPath (developer guide "InputPath", "OutputPath") -------------------

GUIDE_INPUT = {
    "comment": "Example for InputPath.",
    "dataset1": {"val1": 1, "val2": 2, "val3": 3},
    "dataset2": {"val1": "a", "val2": "b", "val3": "c"},
}


def test_input_path_selects_part_of_the_input():
    assert paths.apply_input_path("$.dataset2", Scope(GUIDE_INPUT)) == {"val1": "a", "val2": "b", "val3": "c"}


def test_input_path_default_is_whole_input_and_null_is_empty_object():
    assert paths.apply_input_path("$", Scope(GUIDE_INPUT)) == GUIDE_INPUT
    assert paths.apply_input_path(None, Scope(GUIDE_INPUT), present=False) == GUIDE_INPUT
    assert paths.apply_input_path(None, Scope(GUIDE_INPUT)) == {}


def test_output_path_selects_and_null_is_empty_object():
    out = {"Payload": {"ok": True}, "StatusCode": 200}
    assert paths.apply_output_path("$.Payload", out, Scope({})) == {"ok": True}
    assert paths.apply_output_path(None, out, Scope({})) == {}
    assert paths.apply_output_path(None, out, Scope({}), present=False) == out


@pytest.mark.parametrize("field", ["InputPath", "OutputPath"])
def test_path_that_selects_nothing_is_states_runtime(field):
    with pytest.raises(errors.ASLError) as exc:
        if field == "InputPath":
            paths.apply_input_path("$.NoSuchInputPath", Scope({"a": 1}))
        else:
            paths.apply_output_path("$.NoSuchOutputPath", {"a": 1}, Scope({}))
    assert exc.value.error == "States.Runtime"
    # the cause Step Functions reports
    assert exc.value.cause == f"Invalid path '$.NoSuch{field}' : No results for path: $['NoSuch{field}']"


def test_length_function_on_an_array():
    # Step Functions' JSONPath (Jayway) has length(); real machines use it in Choice Variables
    assert paths.get("$.items.length()", Scope({"items": [1, 2, 3]})) == 3
    assert not paths.is_reference_path("$.items.length()")


# --- ResultPath (spec "ResultPath"; developer guide "ResultPath") -------------------------

GUIDE_RP_INPUT = {"comment": "This is a test", "details": "Default example", "who": "Step Functions"}
RESULT = "Hello, Step Functions!"


def test_result_path_default_dollar_replaces_input():
    assert paths.apply_result_path(GUIDE_RP_INPUT, RESULT, "$") == RESULT
    assert paths.apply_result_path(GUIDE_RP_INPUT, RESULT, None, present=False) == RESULT


def test_result_path_null_discards_result_and_keeps_input():
    assert paths.apply_result_path(GUIDE_RP_INPUT, RESULT, None) == GUIDE_RP_INPUT


def test_result_path_adds_a_field():
    assert paths.apply_result_path(GUIDE_RP_INPUT, RESULT, "$.taskresult") == {**GUIDE_RP_INPUT, "taskresult": RESULT}


def test_result_path_creates_intervening_objects():
    out = paths.apply_result_path(GUIDE_RP_INPUT, RESULT, "$.strings.lambdaresult")
    assert out == {**GUIDE_RP_INPUT, "strings": {"lambdaresult": RESULT}}


def test_result_path_overwrites_an_existing_field():
    assert paths.apply_result_path(GUIDE_RP_INPUT, RESULT, "$.details") == {**GUIDE_RP_INPUT, "details": RESULT}


def test_result_path_spec_example_sum_into_master():
    # spec: raw input {"master": {"detail": [1, 2, 3]}}, result 6, ResultPath "$.master.sum"
    raw = {"master": {"detail": [1, 2, 3]}}
    assert paths.apply_result_path(raw, 6, "$.master.sum") == {"master": {"detail": [1, 2, 3], "sum": 6}}
    assert raw == {"master": {"detail": [1, 2, 3]}}  # the raw input is not mutated


def test_guide_input_output_example():
    # developer guide "Example: Manipulating state data with paths": InputPath $.lambda,
    # ResultPath $.data.lambdaresult, OutputPath $.data
    raw = {
        "comment": "An input comment.",
        "data": {"val1": 23, "val2": 17},
        "extra": "foo",
        "lambda": {"who": "AWS Step Functions"},
    }
    assert paths.apply_input_path("$.lambda", Scope(raw)) == {"who": "AWS Step Functions"}
    combined = paths.apply_result_path(raw, "Hello, AWS Step Functions!", "$.data.lambdaresult")
    assert paths.apply_output_path("$.data", combined, Scope(raw)) == {
        "val1": 23,
        "val2": 17,
        "lambdaresult": "Hello, AWS Step Functions!",
    }


def test_result_path_into_an_array_index():
    assert paths.apply_result_path({"a": [1, 2]}, "x", "$.a[1]") == {"a": [1, "x"]}


def test_result_path_catch_error_output_example():
    out = paths.apply_result_path({"x": 1}, {"Error": "E", "Cause": "c"}, "$.error")
    assert out == {"x": 1, "error": {"Error": "E", "Cause": "c"}}


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("a string", "$.result"),  # raw input not an object
        ([1, 2], "$.result"),
        ({"a": [1]}, "$.a[5]"),  # index outside the array
        ({"a": [1]}, "$.a.b"),  # a field of an array
        ({"a": 3}, "$.a.b"),  # a value in the way is not replaced
    ],
)
def test_result_path_that_cannot_apply_is_result_path_match_failure(raw, path):
    with pytest.raises(errors.ASLError) as exc:
        paths.apply_result_path(raw, 1, path)
    assert exc.value.error == "States.ResultPathMatchFailure"


def test_result_path_must_be_a_reference_path():
    with pytest.raises(errors.ASLError) as exc:
        paths.apply_result_path({"a": [1]}, 1, "$.a[*]")
    assert exc.value.error == "States.ResultPathMatchFailure"


# --- Payload templates: Parameters, ItemSelector, ResultSelector ------------------------


def test_parameters_developer_guide_example():
    data = {
        "comment": "Example for Parameters.",
        "product": {
            "details": {"color": "blue", "size": "small", "material": "cotton"},
            "availability": "in stock",
            "sku": "2317",
            "cost": "$23",
        },
    }
    template = {
        "comment": "Selecting what I care about.",
        "MyDetails": {"size.$": "$.product.details.size", "exists.$": "$.product.availability", "StaticValue": "foo"},
    }
    assert payload.evaluate_payload(template, Scope(data)) == {
        "comment": "Selecting what I care about.",
        "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"},
    }


def test_spec_payload_template_example():
    # spec "Payload Template": flagged fields, a context field, arrays stay as they are
    data = {"flagged": 7, "vals": [0, 10, 20, 30, 40, 50]}
    template = {
        "flagged": True,
        "parts": {"first.$": "$.vals[0]", "last3.$": "$.vals[-3:]"},
        "weekday.$": "$$.DayOfWeek",
        "formattedOutput.$": "States.Format('Today is {}', $$.DayOfWeek)",
    }
    out = payload.evaluate_payload(template, Scope(data, {"DayOfWeek": "TUESDAY"}))
    assert out == {
        "flagged": True,
        "parts": {"first": 0, "last3": [30, 40, 50]},
        "weekday": "TUESDAY",
        "formattedOutput": "Today is TUESDAY",
    }


def test_result_selector_on_lambda_payload():
    result = {"ExecutedVersion": "$LATEST", "Payload": {"statusCode": 200, "body": "ok"}, "StatusCode": 200}
    assert payload.evaluate_payload({"body.$": "$.Payload.body", "code.$": "$.StatusCode"}, Scope(result)) == {
        "body": "ok",
        "code": 200,
    }


def test_item_selector_with_map_context():
    ctx = {"Map": {"Item": {"Index": 1, "Value": {"id": "b"}}}}
    template = {"index.$": "$$.Map.Item.Index", "item.$": "$$.Map.Item.Value", "shared.$": "$.shared"}
    assert payload.evaluate_payload(template, Scope({"shared": "s"}, ctx)) == {
        "index": 1,
        "item": {"id": "b"},
        "shared": "s",
    }


def test_payload_templates_nest_through_arrays_and_keep_literals():
    template = {"list": [{"a.$": "$.x"}, "lit", 3, None, {"deep": [{"b.$": "$.y"}]}], "n": None}
    assert payload.evaluate_payload(template, Scope({"x": 1, "y": [2]})) == {
        "list": [{"a": 1}, "lit", 3, None, {"deep": [{"b": [2]}]}],
        "n": None,
    }


def test_payload_value_null_is_kept():
    assert payload.evaluate_payload({"v.$": "$.v"}, Scope({"v": None})) == {"v": None}


@pytest.mark.parametrize("path", ["$.no_such_jsonpath", "$$.Execution.Input.no_such_jsonpath"])
def test_payload_path_that_selects_nothing_fails_like_step_functions(path):
    with pytest.raises(errors.ASLError) as exc:
        payload.evaluate_payload({"value.$": path}, Scope({"a": 1}, {"Execution": {"Input": {}}}))
    # The spec names States.ParameterPathFailure; Step Functions raises States.Runtime with this cause.
    assert exc.value.error == "States.Runtime"
    assert f"The JSONPath '{path}' specified for the field 'value.$' could not be found" in exc.value.cause


def test_payload_intrinsics_see_input_context_and_sources():
    template = {"id.$": "States.UUID()", "msg.$": "States.Format('{} of {}', $.n, $$.Execution.Name)"}
    out = payload.evaluate_payload(
        template, Scope({"n": 2}, {"Execution": {"Name": "run"}}, sources=Sources(uuid=lambda: "u-1"))
    )
    assert out == {"id": "u-1", "msg": "2 of run"}


def test_payload_evaluation_does_not_alias_the_input():
    data = {"obj": {"k": [1]}}
    out = payload.evaluate_payload({"o.$": "$.obj"}, Scope(data))
    out["o"]["k"].append(2)
    assert data == {"obj": {"k": [1]}}


def test_a_dot_before_a_bracket_is_read_as_jayway_reads_it():
    # AWS's own sample machines write "$.[?(@.OU > 0)]" (account-vending-machine), which the
    # Jayway JSONPath Step Functions runs reads as "$[?(@.OU > 0)]".
    rows = [{"OU": 1}, {"OU": 0}, {"OU": 3}]
    assert paths.get("$.[?(@.OU > 0)]", Scope(rows)) == [{"OU": 1}, {"OU": 3}]
    assert paths.get("$.bar.[1]", Scope(SPEC_INPUT)) == "b"
    # inside quotes and after ".." nothing changes
    assert paths.get("$['a.[b']", Scope({"a.[b": 7})) == 7
    assert paths.get("$..[0]", Scope({"x": [5]})) == [5]
