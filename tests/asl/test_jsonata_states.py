"""JSONata states' data flow: Arguments and Output with their defaults, Assign, Catch Output,
Wait, Task timeouts, Fail, Map Items/ItemSelector/limits. From the developer guide's
"Transforming data with JSONata" and "Passing data between states with variables" pages."""

from datetime import UTC, datetime

import pytest

from lodestone.asl import errors
from lodestone.asl import jsonata_dataflow as F
from lodestone.asl.jsonata import Scope


def query_error(fn):
    with pytest.raises(errors.ASLError) as exc:
        fn()
    assert exc.value.error == "States.QueryEvaluationError"
    return exc.value


def test_arguments_and_default():
    s = Scope({"product": "kettle", "qty": 2})
    assert F.arguments({"Arguments": {"item": "{% $states.input.product %}", "n": 1}}, s) == {"item": "kettle", "n": 1}
    assert F.arguments({}, s) == {"product": "kettle", "qty": 2}


@pytest.mark.parametrize(
    ("state_type", "expected"),
    [
        ("Task", {"r": 1}),
        ("Parallel", {"r": 1}),
        ("Map", {"r": 1}),
        ("Pass", {"in": 0}),
        ("Wait", {"in": 0}),
        ("Choice", {"in": 0}),
        ("Succeed", {"in": 0}),
    ],
)
def test_output_defaults_to_result_or_input(state_type, expected):
    s = Scope({"in": 0}, result={"r": 1}) if state_type in ("Task", "Parallel", "Map") else Scope({"in": 0})
    assert F.output({"Type": state_type}, s) == expected


def test_output_expression():
    s = Scope({"a": 1}, result={"Payload": {"b": 2}})
    assert F.output({"Type": "Task", "Output": "{% $states.result.Payload %}"}, s) == {"b": 2}
    assert F.output({"Type": "Pass", "Output": {"sum": "{% $states.input.a + 1 %}"}}, Scope({"a": 1})) == {"sum": 2}


def test_catch_output_default_and_expression():
    s = Scope({"a": 1}, errorOutput={"Error": "E", "Cause": "c"})
    assert F.catch_output({"ErrorEquals": ["States.ALL"], "Next": "X"}, s) == {"Error": "E", "Cause": "c"}
    catcher = {"Output": {"input": "{% $states.input %}", "why": "{% $states.errorOutput.Cause %}"}}
    assert F.catch_output(catcher, s) == {"input": {"a": 1}, "why": "c"}


def test_assign_sets_all_at_once_from_previous_values():
    s = Scope({"x": 5}, variables={"count": 1, "total": 10})
    new = F.assign(
        {"Assign": {"count": "{% $count + 1 %}", "total": "{% $total + $count %}", "x": "{% $states.input.x %}"}},
        s,
        s.variables,
    )
    assert new == {"count": 2, "total": 11, "x": 5}
    assert F.assign({}, s, {"k": 1}) == {"k": 1}


def test_wait_seconds_and_timestamp():
    s = Scope({"delay": 3, "at": "2016-03-14T01:59:00Z"})
    assert F.wait_target({"Seconds": 10}, s) == ("seconds", 10)
    assert F.wait_target({"Seconds": "{% $states.input.delay %}"}, s) == ("seconds", 3)
    assert F.wait_target({"Timestamp": "{% $states.input.at %}"}, s) == (
        "timestamp",
        datetime(2016, 3, 14, 1, 59, tzinfo=UTC),
    )
    query_error(lambda: F.wait_target({"Seconds": "{% -1 %}"}, s))
    query_error(lambda: F.wait_target({"Seconds": "{% 1.5 %}"}, s))
    query_error(lambda: F.wait_target({"Timestamp": "{% 'tomorrow' %}"}, s))


def test_task_timeouts():
    s = Scope({"t": 30})
    assert F.task_timeouts({"TimeoutSeconds": "{% $states.input.t %}", "HeartbeatSeconds": 5}, s) == (30, 5)
    assert F.task_timeouts({}, s) == (None, None)
    query_error(lambda: F.task_timeouts({"TimeoutSeconds": "{% 0 %}"}, s))


def test_fail_error_and_cause():
    s = Scope({"code": "E42"})
    assert F.fail_error_cause({"Error": "{% $states.input.code %}", "Cause": "static"}, s) == ("E42", "static")
    assert F.fail_error_cause({}, s) == (None, None)
    query_error(lambda: F.fail_error_cause({"Error": "{% 42 %}"}, s))


def test_map_items_item_selector_and_limits():
    s = Scope({"list": ["a", "b"], "shared": 1}, {"Execution": {"Name": "run"}})
    state = {
        "Items": "{% $states.input.list %}",
        "ItemSelector": {
            "value": "{% $states.context.Map.Item.Value %}",
            "index": "{% $states.context.Map.Item.Index %}",
            "shared": "{% $states.input.shared %}",
        },
        "MaxConcurrency": "{% 2 %}",
        "ToleratedFailurePercentage": 5,
    }
    items = F.map_items(state, s)
    assert items == ["a", "b"]
    assert [F.map_item_input(state, s, i, v) for i, v in enumerate(items)] == [
        {"value": "a", "index": 0, "shared": 1},
        {"value": "b", "index": 1, "shared": 1},
    ]
    assert F.map_limits(state, s) == {"MaxConcurrency": 2, "ToleratedFailurePercentage": 5}
    assert F.map_items({}, Scope([1, 2])) == [1, 2]  # Items defaults to the input
    assert F.map_item_input({}, s, 0, {"k": 1}) == {"k": 1}
    query_error(lambda: F.map_items({}, Scope({"not": "a list"})))
    query_error(lambda: F.map_limits({"ToleratedFailurePercentage": "{% 101 %}"}, s))
