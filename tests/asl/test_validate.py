"""Static validation: each rule of the spec that a definition can break, reported with its
JSON pointer, all problems at once. Valid machines follow the spec's and developer guide's
examples of each state type."""

import copy

import pytest

from lodestone.asl.validate import task_resources, validate

VALID = {
    "Comment": "every state type, JSONPath",
    "StartAt": "Start",
    "TimeoutSeconds": 300,
    "States": {
        "Start": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.pass", "Next": "Call"},
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "research",
                "Payload.$": "$",
                "Name.$": "States.Format('{}', $$.Execution.Name)",
            },
            "ResultSelector": {"body.$": "$.Payload"},
            "ResultPath": "$.research",
            "OutputPath": "$",
            "TimeoutSeconds": 60,
            "HeartbeatSeconds": 10,
            "Retry": [
                {
                    "ErrorEquals": ["Lambda.ServiceException"],
                    "IntervalSeconds": 2,
                    "MaxAttempts": 6,
                    "BackoffRate": 2,
                    "MaxDelaySeconds": 30,
                    "JitterStrategy": "FULL",
                },
                {"ErrorEquals": ["States.ALL"]},
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Fallback"}],
            "Next": "Decide",
        },
        "Decide": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.research.body.kind", "StringEquals": "list", "Next": "EachItem"},
                {
                    "And": [
                        {"Variable": "$.n", "IsPresent": True},
                        {"Variable": "$.n", "NumericGreaterThanPath": "$.m"},
                    ],
                    "Next": "Both",
                },
                {"Not": {"Variable": "$.t", "TimestampLessThan": "2016-03-14T01:59:00Z"}, "Next": "Pause"},
            ],
            "Default": "Done",
        },
        "EachItem": {
            "Type": "Map",
            "ItemsPath": "$.research.body.items",
            "ItemSelector": {"item.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
            "MaxConcurrency": 4,
            "ToleratedFailurePercentage": 10,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Work",
                "States": {
                    "Work": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:work", "End": True}
                },
            },
            "ResultPath": "$.items",
            "Next": "Done",
        },
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "llm", "End": True}}},
                {
                    "StartAt": "B",
                    "States": {"B": {"Type": "Wait", "Seconds": 1, "Next": "C"}, "C": {"Type": "Succeed"}},
                },
            ],
            "Next": "Done",
        },
        "Pause": {"Type": "Wait", "TimestampPath": "$.until", "Next": "Done"},
        "Fallback": {"Type": "Fail", "Error": "Failed", "CausePath": "$.error.Cause"},
        "Done": {"Type": "Succeed"},
    },
}

VALID_JSONATA = {
    "QueryLanguage": "JSONata",
    "StartAt": "Call",
    "States": {
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::http:invoke",
            "Arguments": {"ApiEndpoint": "{% $states.input.url %}", "Method": "GET"},
            "Output": "{% $states.result.ResponseBody %}",
            "Assign": {"count": "{% $count + 1 %}"},
            "TimeoutSeconds": "{% $states.input.timeout %}",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}", "Next": "Oops"}],
            "Next": "Check",
        },
        "Check": {
            "Type": "Choice",
            "Choices": [{"Condition": "{% $count > 3 %}", "Next": "Each"}],
            "Default": "Wait",
        },
        "Wait": {"Type": "Wait", "Seconds": "{% $count %}", "Next": "Call"},
        "Each": {
            "Type": "Map",
            "Items": "{% $states.input.list %}",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            "End": True,
        },
        "Oops": {"Type": "Fail", "Error": "{% $states.input.Error %}"},
    },
}


def pointers(definition):
    return {p.pointer for p in validate(definition)}


def problems_at(definition, pointer):
    return [p.message for p in validate(definition) if p.pointer == pointer]


def with_change(base, change):
    d = copy.deepcopy(base)
    change(d)
    return d


def test_valid_machines_have_no_problems():
    assert validate(VALID) == []
    assert validate(VALID_JSONATA) == []


def test_spec_hello_world_is_valid():
    assert (
        validate(
            {
                "Comment": "A simple minimal example of the States language",
                "StartAt": "Hello World",
                "States": {
                    "Hello World": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:HelloWorld",
                        "End": True,
                    }
                },
            }
        )
        == []
    )


@pytest.mark.parametrize(
    ("definition", "pointer"),
    [
        ([], ""),
        ({"States": {"A": {"Type": "Succeed"}}}, ""),  # StartAt missing
        ({"StartAt": "A"}, ""),  # States missing
        ({"StartAt": "A", "States": {}}, "/States"),
        ({"StartAt": "Nope", "States": {"A": {"Type": "Succeed"}}}, "/StartAt"),
        ({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "Extra": 1}, "/Extra"),
        ({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "TimeoutSeconds": 0}, "/TimeoutSeconds"),
        ({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "QueryLanguage": "XPath"}, "/QueryLanguage"),
        ({"StartAt": "A" * 81, "States": {"A" * 81: {"Type": "Succeed"}}}, "/States/" + "A" * 81),
    ],
)
def test_machine_shape(definition, pointer):
    assert pointer in pointers(definition)


def test_unknown_state_type():
    d = with_change(VALID, lambda d: d["States"]["Done"].update(Type="Finish"))
    assert any("unknown state type 'Finish'" in m for m in problems_at(d, "/States/Done/Type"))


def test_unknown_field():
    d = with_change(VALID, lambda d: d["States"]["Start"].update(Resutl=1))
    assert problems_at(d, "/States/Start/Resutl") == ["unknown field 'Resutl' in a Pass state"]


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"Type": "Succeed", "Next": "X"}, "Next"),
        ({"Type": "Fail", "End": True}, "End"),
        ({"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": True, "Next": "Done"}], "Next": "Done"}, "Next"),
        ({"Type": "Pass", "Resource": "x", "End": True}, "Resource"),
        ({"Type": "Wait", "Seconds": 1, "Parameters": {}, "End": True}, "Parameters"),
        ({"Type": "Succeed", "ResultPath": "$.x"}, "ResultPath"),
    ],
)
def test_fields_that_do_not_belong_to_the_state_type(state, field):
    d = with_change(VALID, lambda d: d["States"].update(Done=state))
    assert f"/States/Done/{field}" in pointers(d)


def test_query_language_specific_fields():
    jsonpath_in_jsonata = with_change(VALID_JSONATA, lambda d: d["States"]["Call"].update(InputPath="$.x"))
    assert problems_at(jsonpath_in_jsonata, "/States/Call/InputPath") == ["InputPath is not allowed in a JSONata state"]
    jsonata_in_jsonpath = with_change(VALID, lambda d: d["States"]["Start"].update(Output="{% 1 %}"))
    assert problems_at(jsonata_in_jsonpath, "/States/Start/Output") == ["Output is not allowed in a JSONPath state"]


def test_a_state_cannot_downgrade_to_jsonpath_under_jsonata():
    d = {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "End": True, "QueryLanguage": "JSONPath"}},
    }
    assert "/States/P/QueryLanguage" in pointers(d)


def test_a_state_may_opt_into_jsonata_under_jsonpath():
    d = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% 1 %}", "End": True}},
    }
    assert validate(d) == []


def test_next_that_does_not_exist_everywhere_a_transition_can_be():
    def change(d):
        d["States"]["Start"]["Next"] = "Nowhere1"
        d["States"]["Decide"]["Choices"][0]["Next"] = "Nowhere2"
        d["States"]["Decide"]["Default"] = "Nowhere3"
        d["States"]["Call"]["Catch"][0]["Next"] = "Nowhere4"

    found = pointers(with_change(VALID, change))
    assert {
        "/States/Start/Next",
        "/States/Decide/Choices/0/Next",
        "/States/Decide/Default",
        "/States/Call/Catch/0/Next",
    } <= found


def test_next_and_end_exactly_one():
    both = with_change(VALID, lambda d: d["States"]["Start"].update(End=True))
    neither = with_change(VALID, lambda d: d["States"]["Start"].pop("Next"))
    assert "/States/Start" in pointers(both) and "/States/Start" in pointers(neither)


def test_unreachable_states():
    d = with_change(VALID, lambda d: d["States"].update(Orphan={"Type": "Pass", "Next": "Done"}))
    assert problems_at(d, "/States/Orphan") == ["state 'Orphan' is unreachable from StartAt"]


def test_no_terminal_state():
    d = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Wait", "Seconds": 1, "Next": "A"}},
    }
    assert any("no terminal state" in m for m in problems_at(d, "/States"))


def test_choice_without_default_is_not_terminal():
    d = {
        "StartAt": "C",
        "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": True, "Next": "C"}]}},
    }
    assert any("no terminal state" in m for m in problems_at(d, "/States"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("InputPath", "no-dollar"),
        ("OutputPath", "$.["),
        ("ResultPath", "$.a[*]"),  # not a Reference Path
        ("ResultPath", "$$.Execution"),
        ("Parameters", {"a.$": "$.["}),
        ("Parameters", {"a.$": "States.Nope()"}),
        ("Parameters", {"a.$": "States.Format('x'"}),
        ("Parameters", {"a.$": 3}),
        ("Parameters", {"deep": [{"a.$": "nope"}]}),
        ("ResultSelector", {"a.$": "States.ArrayLength()"}),
        ("Parameters", "not an object"),
    ],
)
def test_bad_jsonpath_and_intrinsics(field, value):
    d = with_change(VALID, lambda d: d["States"]["Call"].update({field: value}))
    assert any(p.startswith(f"/States/Call/{field}") for p in pointers(d))


def test_bad_jsonata():
    d = with_change(VALID_JSONATA, lambda d: d["States"]["Call"].update(Arguments={"a": "{% 1 + %}"}))
    assert "/States/Call/Arguments/a" in pointers(d)
    d = with_change(VALID_JSONATA, lambda d: d["States"]["Check"]["Choices"][0].update(Condition="{% ( %}"))
    assert "/States/Check/Choices/0/Condition" in pointers(d)


@pytest.mark.parametrize(
    ("rule", "pointer"),
    [
        ({"Variable": "$.a", "StringEquals": 1, "Next": "Done"}, "/StringEquals"),
        ({"Variable": "$.a", "NumericEquals": "1", "Next": "Done"}, "/NumericEquals"),
        ({"Variable": "$.a", "BooleanEquals": "true", "Next": "Done"}, "/BooleanEquals"),
        ({"Variable": "$.a", "TimestampEquals": "yesterday", "Next": "Done"}, "/TimestampEquals"),
        ({"Variable": "$.a", "StringEqualsPath": "nope", "Next": "Done"}, "/StringEqualsPath"),
        ({"Variable": "$.a", "IsNull": "yes", "Next": "Done"}, "/IsNull"),
        ({"Variable": "$.a", "StringMatches": 5, "Next": "Done"}, "/StringMatches"),
        ({"Variable": "$.a", "Next": "Done"}, ""),  # no operator
        ({"Variable": "$.a", "IsNull": True, "IsString": True, "Next": "Done"}, ""),  # two operators
        ({"StringEquals": "x", "Next": "Done"}, ""),  # no Variable
        ({"Variable": "$.a", "IsNull": True}, ""),  # a top-level rule needs Next
        ({"And": [], "Next": "Done"}, "/And"),
        ({"Or": [{"Variable": "$.a", "IsNull": True, "Next": "Done"}], "Next": "Done"}, "/Or/0/Next"),  # nested Next
        ({"Not": {"Variable": "$.a", "Bogus": 1}, "Next": "Done"}, "/Not/Bogus"),
        ({"Variable": "$.a", "IsNull": True, "Next": "Done", "Condition": "{% true %}"}, "/Condition"),
    ],
)
def test_choice_rule_shape(rule, pointer):
    d = with_change(VALID, lambda d: d["States"]["Decide"]["Choices"].insert(0, rule))
    assert f"/States/Decide/Choices/0{pointer}" in pointers(d)


def test_choice_needs_choices():
    d = with_change(VALID, lambda d: d["States"]["Decide"].update(Choices=[]))
    assert "/States/Decide/Choices" in pointers(d)


@pytest.mark.parametrize(
    ("retry", "pointer"),
    [
        ([{"ErrorEquals": []}], "/0/ErrorEquals"),
        ([{"IntervalSeconds": 1}], "/0/ErrorEquals"),
        ([{"ErrorEquals": ["States.ALL", "X"]}], "/0/ErrorEquals"),  # States.ALL not alone
        ([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}], "/0/ErrorEquals"),  # States.ALL not last
        ([{"ErrorEquals": ["States.Nope"]}], "/0/ErrorEquals/0"),
        ([{"ErrorEquals": ["X"], "IntervalSeconds": 0}], "/0/IntervalSeconds"),
        ([{"ErrorEquals": ["X"], "MaxAttempts": -1}], "/0/MaxAttempts"),
        ([{"ErrorEquals": ["X"], "BackoffRate": 0.5}], "/0/BackoffRate"),
        ([{"ErrorEquals": ["X"], "MaxDelaySeconds": 0}], "/0/MaxDelaySeconds"),
        ([{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}], "/0/JitterStrategy"),
        ([{"ErrorEquals": ["X"], "Next": "Done"}], "/0/Next"),
        ({"ErrorEquals": ["X"]}, ""),
    ],
)
def test_retry_shape(retry, pointer):
    d = with_change(VALID, lambda d: d["States"]["Call"].update(Retry=retry))
    assert f"/States/Call/Retry{pointer}" in pointers(d)


@pytest.mark.parametrize(
    ("catch", "pointer"),
    [
        ([{"ErrorEquals": ["X"]}], "/0"),  # no Next
        ([{"ErrorEquals": ["States.ALL"], "Next": "Done"}, {"ErrorEquals": ["X"], "Next": "Done"}], "/0/ErrorEquals"),
        ([{"ErrorEquals": ["X"], "Next": "Done", "ResultPath": "$.a[*]"}], "/0/ResultPath"),
        ([{"ErrorEquals": ["X"], "Next": "Done", "MaxAttempts": 1}], "/0/MaxAttempts"),
        ([{"ErrorEquals": ["X"], "Next": "Done", "Output": {}}], "/0/Output"),  # JSONata field in JSONPath
    ],
)
def test_catch_shape(catch, pointer):
    d = with_change(VALID, lambda d: d["States"]["Call"].update(Catch=catch))
    assert f"/States/Call/Catch{pointer}" in pointers(d)


@pytest.mark.parametrize(
    ("name", "state", "pointer"),
    [
        ("Pause", {"Type": "Wait", "Next": "Done"}, ""),
        ("Pause", {"Type": "Wait", "Seconds": 1, "Timestamp": "2016-03-14T01:59:00Z", "Next": "Done"}, ""),
        ("Pause", {"Type": "Wait", "Seconds": -1, "Next": "Done"}, "/Seconds"),
        ("Pause", {"Type": "Wait", "Timestamp": "2016-03-14 01:59:00", "Next": "Done"}, "/Timestamp"),
        ("Pause", {"Type": "Wait", "SecondsPath": "$.a[*]", "Next": "Done"}, "/SecondsPath"),
        ("Call", {"Type": "Task", "End": True}, ""),  # no Resource
        ("Call", {"Type": "Task", "Resource": "x", "TimeoutSeconds": 0, "End": True}, "/TimeoutSeconds"),
        (
            "Call",
            {"Type": "Task", "Resource": "x", "TimeoutSeconds": 5, "HeartbeatSeconds": 5, "End": True},
            "/HeartbeatSeconds",
        ),
        ("Call", {"Type": "Task", "Resource": "x", "TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t", "End": True}, ""),
        ("Fallback", {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}, ""),
        ("Fallback", {"Type": "Fail", "Cause": 5}, "/Cause"),
        ("Fallback", {"Type": "Fail", "CausePath": "States.Format('{}'"}, "/CausePath"),
        ("Both", {"Type": "Parallel", "Branches": [], "Next": "Done"}, "/Branches"),
        ("EachItem", {"Type": "Map", "Next": "Done"}, ""),  # no ItemProcessor
        (
            "EachItem",
            {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Succeed"}}},
                "MaxConcurrency": -1,
                "Next": "Done",
            },
            "/MaxConcurrency",
        ),
        (
            "EachItem",
            {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Succeed"}}},
                "ToleratedFailurePercentage": 101,
                "Next": "Done",
            },
            "/ToleratedFailurePercentage",
        ),
    ],
)
def test_state_specific_rules(name, state, pointer):
    d = with_change(VALID, lambda d: d["States"].update({name: state}))
    assert f"/States/{name}{pointer}" in pointers(d)


def test_sub_machines_are_validated_recursively_with_their_own_scope():
    def change(d):
        d["States"]["Both"]["Branches"][1]["States"]["B"]["Next"] = "Done"  # Done is outside the branch
        d["States"]["EachItem"]["ItemProcessor"]["States"]["Work"]["Bogus"] = 1
        d["States"]["EachItem"]["ItemProcessor"]["States"]["Lost"] = {"Type": "Succeed"}

    found = pointers(with_change(VALID, change))
    assert {
        "/States/Both/Branches/1/States/B/Next",
        "/States/Both/Branches/1/States/C",  # now unreachable inside its branch
        "/States/EachItem/ItemProcessor/States/Work/Bogus",
        "/States/EachItem/ItemProcessor/States/Lost",
    } <= found


def test_all_problems_are_reported_at_once():
    def change(d):
        d["States"]["Start"]["Next"] = "Nowhere"
        d["States"]["Call"]["ResultPath"] = "$.a[*]"
        d["States"]["Decide"]["Choices"][0]["StringEquals"] = 1
        d["States"]["Pause"]["Extra"] = True
        d["States"]["Call"]["Retry"][0]["BackoffRate"] = 0

    found = pointers(with_change(VALID, change))
    assert {
        "/States/Start/Next",
        "/States/Call/ResultPath",
        "/States/Decide/Choices/0/StringEquals",
        "/States/Pause/Extra",
        "/States/Call/Retry/0/BackoffRate",
    } <= found


def test_pointers_escape_slash_and_tilde():
    d = {"StartAt": "a/b~c", "States": {"a/b~c": {"Type": "Pass", "Bad": 1, "End": True}}}
    assert "/States/a~1b~0c/Bad" in pointers(d)


def test_task_resources_lists_every_task_with_its_pointer():
    assert task_resources(VALID) == [
        ("/States/Call/Resource", "arn:aws:states:::lambda:invoke"),
        ("/States/EachItem/ItemProcessor/States/Work/Resource", "arn:aws:lambda:us-east-1:1:function:work"),
        ("/States/Both/Branches/0/States/A/Resource", "llm"),
    ]
    assert task_resources(VALID_JSONATA) == [("/States/Call/Resource", "arn:aws:states:::http:invoke")]
    assert task_resources({"nonsense": True}) == []


@pytest.mark.parametrize("name", ["1st", "a-b", "states", "a.b", ""])
def test_assign_variable_names(name):
    d = with_change(VALID_JSONATA, lambda d: d["States"]["Call"]["Assign"].update({name: 1}))
    assert f"/States/Call/Assign/{name}" in pointers(d)
    d = with_change(VALID, lambda d: d["States"]["Start"].update(Assign={f"{name}.$": "$.x"}))
    assert f"/States/Start/Assign/{name}.$" in pointers(d)


def test_valid_assign_names():
    d = with_change(VALID, lambda d: d["States"]["Start"].update(Assign={"_ok1.$": "$.x", "count": 0}))
    assert validate(d) == []


def test_every_predefined_error_name_is_accepted_in_error_equals():
    names = [
        "States.Timeout",
        "States.HeartbeatTimeout",
        "States.TaskFailed",
        "States.Permissions",
        "States.ResultPathMatchFailure",
        "States.ParameterPathFailure",
        "States.BranchFailed",
        "States.NoChoiceMatched",
        "States.IntrinsicFailure",
        "States.ExceedToleratedFailureThreshold",
        "States.ItemReaderFailed",
        "States.ResultWriterFailed",
        "States.QueryEvaluationError",
        "States.Runtime",
        "States.Http.Socket",
        "Lambda.ServiceException",
        "CustomError",
    ]
    d = with_change(VALID, lambda d: d["States"]["Call"].update(Retry=[{"ErrorEquals": names}]))
    assert validate(d) == []


def test_number_and_time_paths_may_read_a_variable_but_result_path_may_not():
    # Step Functions accepts "$delay" in SecondsPath (and the other *Path fields that take a
    # number or a time), where a variable is a single node; ResultPath still writes the input.
    wait = {"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$delay", "End": True}}}
    assert validate(wait) == []
    wait["States"]["W"] = {"Type": "Wait", "TimestampPath": "$when.at", "End": True}
    assert validate(wait) == []
    wait["States"]["W"] = {"Type": "Wait", "SecondsPath": "$delay[*]", "End": True}
    assert "/States/W/SecondsPath" in pointers(wait)
    d = with_change(VALID, lambda d: d["States"]["Call"].update(ResultPath="$var.x"))
    assert "/States/Call/ResultPath" in pointers(d)
