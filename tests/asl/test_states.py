"""Each state type's data flow (JSONPath): Pass, Task, Choice/Wait/Succeed pass-through,
Fail, Wait, Map and Catch. Cases from the spec's examples of each state and the developer
guide's "Input and output processing" pages; Wait/Fail causes as Step Functions reports them."""

from datetime import UTC, datetime

import pytest

from lodestone.asl import dataflow, errors
from lodestone.asl.paths import Scope


def runtime_error(fn):
    with pytest.raises(errors.ASLError) as exc:
        fn()
    assert exc.value.error == "States.Runtime"
    return exc.value.cause


# --- Pass ----------------------------------------------------------------------------------


def test_spec_pass_example_result_placed_by_result_path():
    state = {
        "Type": "Pass",
        "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
        "ResultPath": "$.coords",
        "Next": "End",
    }
    assert dataflow.pass_output(state, {"georefOf": "Home"}, Scope(None)) == {
        "georefOf": "Home",
        "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
    }


def test_pass_without_result_passes_its_effective_input():
    assert dataflow.pass_output({"Type": "Pass"}, {"a": 1}, Scope(None)) == {"a": 1}
    state = {"Type": "Pass", "InputPath": "$.a", "Parameters": {"v.$": "$.b"}}
    assert dataflow.pass_output(state, {"a": {"b": 2}}, Scope(None)) == {"v": 2}


def test_pass_with_parameters_and_result_path_and_output_path():
    state = {
        "Type": "Pass",
        "Parameters": {"id.$": "$.order.id", "static": 1},
        "ResultPath": "$.extracted",
        "OutputPath": "$.extracted",
    }
    assert dataflow.pass_output(state, {"order": {"id": 9}}, Scope(None)) == {"id": 9, "static": 1}


def test_pass_result_is_not_a_template():
    # Result is a literal: ".$" keys inside it are not evaluated
    state = {"Type": "Pass", "Result": {"k.$": "$.x"}}
    assert dataflow.pass_output(state, {"x": 1}, Scope(None)) == {"k.$": "$.x"}


# --- Task ----------------------------------------------------------------------------------


def test_task_full_pipeline():
    state = {
        "Type": "Task",
        "InputPath": "$.lambda",
        "Parameters": {"FunctionName": "f", "Payload.$": "$"},
        "ResultSelector": {"body.$": "$.Payload", "code.$": "$.StatusCode"},
        "ResultPath": "$.taskresult",
        "OutputPath": "$.taskresult.body",
    }
    raw = {"lambda": {"who": "AWS Step Functions"}, "other": 1}
    assert dataflow.effective_input(state, raw, Scope(None)) == {
        "FunctionName": "f",
        "Payload": {"who": "AWS Step Functions"},
    }
    result = {"Payload": "Hello, AWS Step Functions!", "StatusCode": 200, "ExecutedVersion": "$LATEST"}
    assert dataflow.state_output(state, raw, result, Scope(None)) == "Hello, AWS Step Functions!"


def test_task_defaults_replace_the_input_with_the_result():
    assert dataflow.state_output({"Type": "Task"}, {"in": 1}, {"out": 2}, Scope(None)) == {"out": 2}


def test_task_timeouts_from_literals_and_paths():
    assert dataflow.task_timeouts({"TimeoutSeconds": 60, "HeartbeatSeconds": 10}, Scope({})) == (60, 10)
    state = {"TimeoutSecondsPath": "$.t", "HeartbeatSecondsPath": "$.h"}
    assert dataflow.task_timeouts(state, Scope({"t": 30, "h": 5})) == (30, 5)
    assert dataflow.task_timeouts({}, Scope({})) == (None, None)
    runtime_error(lambda: dataflow.task_timeouts({"TimeoutSecondsPath": "$.NoSuch"}, Scope({})))
    runtime_error(lambda: dataflow.task_timeouts({"TimeoutSecondsPath": "$.t"}, Scope({"t": 0})))


# --- Choice, Wait, Succeed pass their input through -----------------------------------------


def test_passthrough_states_apply_input_and_output_path():
    assert dataflow.passthrough_output({"Type": "Succeed"}, {"a": 1}, Scope(None)) == {"a": 1}
    state = {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}
    assert dataflow.passthrough_output(state, {"a": {"b": 3}}, Scope(None)) == 3


# --- Wait ----------------------------------------------------------------------------------


def test_spec_wait_examples():
    assert dataflow.wait_target({"Seconds": 10}, Scope({})) == ("seconds", 10)
    assert dataflow.wait_target({"Timestamp": "2016-03-14T01:59:00Z"}, Scope({})) == (
        "timestamp",
        datetime(2016, 3, 14, 1, 59, tzinfo=UTC),
    )
    assert dataflow.wait_target({"TimestampPath": "$.expirydate"}, Scope({"expirydate": "2016-03-14T01:59:00Z"})) == (
        "timestamp",
        datetime(2016, 3, 14, 1, 59, tzinfo=UTC),
    )
    assert dataflow.wait_target({"SecondsPath": "$.s"}, Scope({"s": 0})) == ("seconds", 0)


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (1.5, "The SecondsPath parameter cannot be parsed as a long value: $.input.waitSeconds == 1.5"),
        (-1, "The SecondsPath parameter references a negative value: $.input.waitSeconds == -1"),
        ("10", "The SecondsPath parameter cannot be parsed as a long value: $.input.waitSeconds == 10"),
    ],
)
def test_wait_seconds_path_errors(value, cause):
    got = runtime_error(
        lambda: dataflow.wait_target({"SecondsPath": "$.input.waitSeconds"}, Scope({"input": {"waitSeconds": value}}))
    )
    assert got == cause


def test_wait_seconds_path_missing():
    got = runtime_error(lambda: dataflow.wait_target({"SecondsPath": "$.input.waitSeconds"}, Scope({"input": {}})))
    assert got == "The SecondsPath parameter does not reference an input value: $.input.waitSeconds"


@pytest.mark.parametrize(
    "value",
    [
        "05-12-2016T21:29:29Z",
        "2016-12-05 21:29:29Z",
        "2016-12-05T21:29:29",
        "2016-12-05T25:29:29Z",
        "2016-13-05T21:29:29Z",
    ],
)
def test_wait_timestamp_path_rejects_what_step_functions_rejects(value):
    got = runtime_error(
        lambda: dataflow.wait_target({"TimestampPath": "$.TimestampValue"}, Scope({"TimestampValue": value}))
    )
    assert got == (
        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time "
        f"format string: $.TimestampValue == {value}"
    )


def test_seconds_until_a_timestamp():
    now = datetime(2016, 3, 14, 1, 58, 30, tzinfo=UTC)
    assert dataflow.seconds_until(datetime(2016, 3, 14, 1, 59, tzinfo=UTC), now) == 30.0
    assert dataflow.seconds_until(datetime(2016, 3, 14, 1, 0, tzinfo=UTC), now) == 0.0  # past: no wait


# --- Fail ----------------------------------------------------------------------------------


def test_spec_fail_example():
    assert dataflow.fail_error_cause({"Type": "Fail", "Error": "ErrorA", "Cause": "Kaiju attack"}, Scope({})) == (
        "ErrorA",
        "Kaiju attack",
    )


def test_fail_error_and_cause_paths_and_intrinsics():
    state = {"Type": "Fail", "ErrorPath": "$.error.name", "CausePath": "States.Format('code {}', $.error.code)"}
    assert dataflow.fail_error_cause(state, Scope({"error": {"name": "E", "code": 7}})) == ("E", "code 7")
    assert dataflow.fail_error_cause({"Type": "Fail"}, Scope({})) == (None, None)


def test_fail_error_path_not_found():
    got = runtime_error(lambda: dataflow.fail_error_cause({"ErrorPath": "$.ErrorX"}, Scope({"a": 1})))
    assert (
        got == "The JSONPath '$.ErrorX' specified for the field 'ErrorPath' could not be found in the input '{\"a\":1}'"
    )


# --- Map -----------------------------------------------------------------------------------

SHIPMENT = {
    "ship-date": "2016-03-14T01:59:00Z",
    "detail": {
        "delivery-partner": "UQS",
        "shipped": [
            {"prod": "R31", "dest-code": 9511, "quantity": 1344},
            {"prod": "S39", "dest-code": 9511, "quantity": 40},
        ],
    },
}


def test_spec_map_example_items_path_and_item_selector():
    state = {
        "Type": "Map",
        "ItemsPath": "$.detail.shipped",
        "ItemSelector": {"parcel.$": "$$.Map.Item.Value", "courier.$": "$.detail.delivery-partner"},
    }
    items = dataflow.map_items(state, SHIPMENT, Scope(None))
    assert items == SHIPMENT["detail"]["shipped"]
    inputs = [dataflow.map_item_input(state, SHIPMENT, i, item, Scope(None)) for i, item in enumerate(items)]
    assert inputs == [
        {"parcel": {"prod": "R31", "dest-code": 9511, "quantity": 1344}, "courier": "UQS"},
        {"parcel": {"prod": "S39", "dest-code": 9511, "quantity": 40}, "courier": "UQS"},
    ]


def test_map_item_index_and_default_item_input():
    state = {"Type": "Map", "ItemSelector": {"i.$": "$$.Map.Item.Index"}}
    assert dataflow.map_item_input(state, [], 3, "x", Scope(None)) == {"i": 3}
    assert dataflow.map_item_input({"Type": "Map"}, [], 0, {"a": 1}, Scope(None)) == {"a": 1}
    assert dataflow.map_items({"Type": "Map"}, [1, 2], Scope(None)) == [1, 2]  # ItemsPath defaults to $


def test_map_items_must_be_an_array():
    runtime_error(lambda: dataflow.map_items({"ItemsPath": "$.a"}, {"a": {"not": "array"}}, Scope(None)))
    runtime_error(lambda: dataflow.map_items({"ItemsPath": "$.missing"}, {}, Scope(None)))


@pytest.mark.parametrize(
    ("tolerance", "failed", "total", "exceeded"),
    [
        ({}, 0, 10, False),
        ({}, 1, 10, True),  # by default any failure fails the Map
        ({"ToleratedFailureCount": 2}, 2, 10, False),
        ({"ToleratedFailureCount": 2}, 3, 10, True),
        ({"ToleratedFailurePercentage": 20}, 2, 10, False),
        ({"ToleratedFailurePercentage": 20}, 3, 10, True),
        ({"ToleratedFailureCount": 5, "ToleratedFailurePercentage": 10}, 3, 10, True),  # over either fails
        ({"ToleratedFailureCount": 5, "ToleratedFailurePercentage": 50}, 3, 10, False),
        ({"ToleratedFailurePercentage": 100}, 10, 10, False),
    ],
)
def test_map_failure_tolerance(tolerance, failed, total, exceeded):
    assert dataflow.exceeds_tolerance(tolerance, failed, total) is exceeded


# --- Catch ---------------------------------------------------------------------------------


def test_catch_output_default_replaces_input_with_error_output():
    err = errors.ASLError("States.TaskFailed", "boom")
    assert dataflow.catch_output({"ErrorEquals": ["States.ALL"], "Next": "F"}, {"a": 1}, err) == {
        "Error": "States.TaskFailed",
        "Cause": "boom",
    }


def test_catch_output_with_result_path_keeps_the_input():
    err = errors.ASLError("MyError", "why")
    catcher = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error-info", "Next": "F"}
    assert dataflow.catch_output(catcher, {"a": 1}, err) == {"a": 1, "error-info": {"Error": "MyError", "Cause": "why"}}
    assert dataflow.catch_output({**catcher, "ResultPath": None}, {"a": 1}, err) == {"a": 1}


# --- Parallel --------------------------------------------------------------------------------


def test_spec_parallel_example_result_is_the_array_of_branch_outputs():
    # spec: FunWithMath given [3, 2]; branch Add outputs 5, Subtract 1; the Parallel outputs [5, 1]
    assert dataflow.state_output({"Type": "Parallel"}, [3, 2], [5, 1], Scope(None)) == [5, 1]
    # with a ResultPath the branch outputs join the input
    state = {"Type": "Parallel", "ResultPath": "$.results"}
    assert dataflow.state_output(state, {"numbers": [3, 2]}, [5, 1], Scope(None)) == {
        "numbers": [3, 2],
        "results": [5, 1],
    }


# --- Assign (JSONPath) -------------------------------------------------------------------------


def test_jsonpath_assign_reads_dollar_context_and_previous_variables():
    scope = Scope({"theQuestion": "What is 6 x 7?"}, {"State": {"Name": "S"}}, {"answer": 1, "n": 2})
    holder = {"Assign": {"question.$": "$.theQuestion", "answer": 42, "prev.$": "$answer", "where.$": "$$.State.Name"}}
    assert dataflow.assign(holder, scope, scope.variables) == {
        "question": "What is 6 x 7?",
        "answer": 42,
        "prev": 1,
        "where": "S",
        "n": 2,
    }
    assert dataflow.assign({}, scope, {"k": 1}) == {"k": 1}
