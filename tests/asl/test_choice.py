"""Choice rules (JSONPath): every comparison operator and its Path form, StringMatches, the
Is* type tests, And/Or/Not, Default and States.NoChoiceMatched. Cases from the spec's
"Choice State" section and its ChoiceStateX example; plus a table of outcomes Step Functions
itself recorded for each operator over values of every JSON type (data/aws_recorded_choice.json)."""

import json
from pathlib import Path

import pytest

from lodestone.asl import choice, errors
from lodestone.asl.paths import Scope


def holds(rule, data):
    return choice.evaluate_rule(rule, Scope(data))


# --- the spec's ChoiceStateX example -------------------------------------------------------

SPEC_CHOICE = {
    "Type": "Choice",
    "Choices": [
        {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
        {
            "And": [
                {"Variable": "$.value", "IsPresent": True},
                {"Variable": "$.value", "IsNumeric": True},
                {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                {"Variable": "$.value", "NumericLessThan": 30},
            ],
            "Next": "ValueInTwenties",
        },
        {"Variable": "$.rating", "NumericGreaterThanPath": "$.auditThreshold", "Next": "StartAudit"},
    ],
    "Default": "RecordEvent",
}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "Public"}, "Public"),
        ({"type": "Private", "value": 22}, "ValueInTwenties"),
        ({"type": "Private", "value": 30, "rating": 60, "auditThreshold": 50}, "StartAudit"),
        ({"type": "Private", "value": "22", "rating": 10, "auditThreshold": 50}, "RecordEvent"),
        ({"type": "Private", "rating": 10, "auditThreshold": 50}, "RecordEvent"),  # IsPresent false short-circuits
    ],
)
def test_spec_choice_state_x(data, expected):
    assert choice.choose(SPEC_CHOICE, Scope(data)) == expected


def test_first_matching_rule_wins():
    state = {
        "Choices": [
            {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "A"},
            {"Variable": "$.n", "NumericGreaterThan": 0, "Next": "B"},
        ]
    }
    assert choice.choose(state, Scope({"n": 5})) == "A"


def test_no_match_without_default_is_no_choice_matched():
    state = {"Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "A"}]}
    with pytest.raises(errors.ASLError) as exc:
        choice.choose(state, Scope({"n": 2}))
    assert exc.value.error == "States.NoChoiceMatched"


# --- each comparison operator --------------------------------------------------------------

ORDER_CASES = [  # (kind, lower, higher)
    ("String", "abc", "abd"),
    ("Numeric", 1, 2.5),
    ("Timestamp", "2016-03-14T01:59:00Z", "2016-03-14T02:00:00Z"),
]
OPS = {  # operator: results for (lower vs higher, equal, higher vs lower)
    "Equals": (False, True, False),
    "LessThan": (True, False, False),
    "LessThanEquals": (True, True, False),
    "GreaterThan": (False, False, True),
    "GreaterThanEquals": (False, True, True),
}


@pytest.mark.parametrize("path_form", [False, True])
@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(("kind", "low", "high"), ORDER_CASES)
def test_ordering_operators(kind, low, high, op, path_form):
    name = f"{kind}{op}" + ("Path" if path_form else "")
    for (left, right), expected in zip([(low, high), (low, low), (high, low)], OPS[op], strict=True):
        rule = {"Variable": "$.v", name: "$.other" if path_form else right}
        assert holds(rule, {"v": left, "other": right}) is expected, (name, left, right)


@pytest.mark.parametrize("path_form", [False, True])
def test_boolean_equals(path_form):
    op = "BooleanEqualsPath" if path_form else "BooleanEquals"
    for left, right, expected in [(True, True, True), (False, False, True), (True, False, False), (1, True, False)]:
        rule = {"Variable": "$.v", op: "$.o" if path_form else right}
        assert holds(rule, {"v": left, "o": right}) is expected


def test_numeric_compares_integers_and_decimals():
    assert holds({"Variable": "$.v", "NumericEquals": 1}, {"v": 1.0})
    assert holds({"Variable": "$.v", "NumericLessThan": 1.5}, {"v": 1})


def test_timestamps_compare_as_instants_not_strings():
    assert holds({"Variable": "$.t", "TimestampEquals": "2001-01-01T12:00:00Z"}, {"t": "2001-01-01T13:00:00+01:00"})
    assert holds({"Variable": "$.t", "TimestampLessThan": "2016-08-18T17:33:00.5Z"}, {"t": "2016-08-18T17:33:00Z"})


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        ({"StringEquals": "1"}, 1),  # a number is not a string
        ({"NumericEquals": 1}, "1"),  # a string is not a number
        ({"NumericEquals": 1}, True),  # a boolean is not a number
        ({"BooleanEquals": True}, "true"),
        ({"TimestampEquals": "2016-03-14T01:59:00Z"}, "2016-03-14 01:59:00Z"),  # not RFC 3339 with T
        ({"StringLessThan": "b"}, None),
    ],
)
def test_type_mismatch_is_false_not_an_error(rule, value):
    assert holds({"Variable": "$.v", **rule}, {"v": value}) is False


def test_comparison_on_a_missing_variable_is_states_runtime():
    with pytest.raises(errors.ASLError) as exc:
        holds({"Variable": "$.missing", "StringEquals": "x"}, {})
    assert exc.value.error == "States.Runtime"


def test_comparison_against_the_context_object_and_variables():
    scope = Scope({"n": 3}, {"Execution": {"Name": "run-3"}}, variables={"limit": 3})
    assert choice.evaluate_rule({"Variable": "$$.Execution.Name", "StringEquals": "run-3"}, scope)
    assert choice.evaluate_rule({"Variable": "$.n", "NumericEqualsPath": "$limit"}, scope)


# --- StringMatches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("log-*.txt", "log-2020-01-01.txt", True),  # the developer guide's example
        ("log-*.txt", "log-.txt", True),  # * matches zero characters
        ("log-*.txt", "log-1.csv", False),
        ("*", "", True),
        ("*.log", "x.log", True),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXbYY", False),
        ("foo\\*", "foo*", True),  # \* is a literal star
        ("foo\\*", "foobar", False),
        ("a\\\\b", "a\\b", True),  # \\ is a literal backslash
        ("exact", "exact", True),
        ("exact", "Exact", False),
    ],
)
def test_string_matches(pattern, value, expected):
    assert holds({"Variable": "$.v", "StringMatches": pattern}, {"v": value}) is expected


def test_string_matches_non_string_is_false():
    assert holds({"Variable": "$.v", "StringMatches": "*"}, {"v": 1}) is False


# --- Is* type tests --------------------------------------------------------------------------

VALUES = {
    "null": None,
    "int": 1,
    "float": 1.5,
    "str": "x",
    "bool": True,
    "ts": "2016-03-14T01:59:00Z",
    "obj": {},
    "arr": [],
}
IS_EXPECTED = {
    "IsNull": {"null"},
    "IsNumeric": {"int", "float"},
    "IsString": {"str", "ts"},
    "IsBoolean": {"bool"},
    "IsTimestamp": {"ts"},
    "IsPresent": set(VALUES),
}


@pytest.mark.parametrize("op", list(IS_EXPECTED))
@pytest.mark.parametrize("name", list(VALUES))
def test_is_operators(op, name):
    expected = name in IS_EXPECTED[op]
    assert holds({"Variable": f"$.{name}", op: True}, VALUES) is expected
    assert holds({"Variable": f"$.{name}", op: False}, VALUES) is (not expected)


def test_is_present_on_a_missing_path():
    assert holds({"Variable": "$.nope", "IsPresent": False}, {}) is True
    assert holds({"Variable": "$.nope", "IsPresent": True}, {}) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-03-14T01:59:00Z", True),
        ("2016-03-14T01:59:00.123456789Z", True),
        ("2016-03-14T01:59:00+05:30", True),
        ("2016-03-14t01:59:00z", False),  # uppercase T and Z required
        ("2016-03-14T01:59:00", False),  # offset required
        ("2016-03-14", False),
        ("2016-13-14T01:59:00Z", False),
    ],
)
def test_is_timestamp_format(text, expected):
    assert holds({"Variable": "$.t", "IsTimestamp": True}, {"t": text}) is expected


# --- And / Or / Not ----------------------------------------------------------------------------


def test_and_or_not_nest():
    rule = {
        "Or": [
            {"And": [{"Variable": "$.a", "BooleanEquals": True}, {"Not": {"Variable": "$.b", "IsNull": True}}]},
            {"Variable": "$.c", "StringEquals": "yes"},
        ]
    }
    assert holds(rule, {"a": True, "b": 1, "c": "no"})
    assert not holds(rule, {"a": True, "b": None, "c": "no"})
    assert holds(rule, {"a": False, "b": None, "c": "yes"})


# --- outcomes recorded against Step Functions ----------------------------------------------------

_AWS = json.loads((Path(__file__).parent / "data" / "aws_recorded_choice.json").read_text())["cases"]


@pytest.mark.parametrize(("op", "variable", "value", "expected"), _AWS)
def test_outcomes_recorded_against_step_functions(op, variable, value, expected):
    rule = {"Variable": "$.Variable", op: "$.Value" if op.endswith("Path") else value}
    assert holds(rule, {"Variable": variable, "Value": value}) is expected
