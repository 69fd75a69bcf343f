"""Pass, Choice, Wait, Succeed and Fail run by the interpreter, in both query languages, with
the context object and the path events. Expected values from the ASL specification's examples
and the developer guide's state pages."""

from datetime import timedelta

from lodestone.asl.machine import Event

from .test_machine_runtime import START, FakeRuntime, execute, machine


async def test_spec_pass_example_and_the_path():
    rt = FakeRuntime()
    definition = machine(
        {
            "No-op": {
                "Type": "Pass",
                "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
                "ResultPath": "$.coords",
                "Next": "End",
            },
            "End": {"Type": "Succeed"},
        }
    )
    outcome = await execute(definition, {"georefOf": "Home"}, rt)
    expected = {"georefOf": "Home", "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355}}
    assert outcome.output == expected
    assert rt.events == [
        Event("entered", "No-op", "No-op", "Pass", input={"georefOf": "Home"}),
        Event("exited", "No-op", "No-op", "Pass", output=expected, next="End"),
        Event("entered", "End", "End", "Succeed", input=expected),
        Event("exited", "End", "End", "Succeed", output=expected),
    ]


async def test_pass_parameters_read_the_context_object():
    definition = machine(
        {
            "Hello": {
                "Type": "Pass",
                "Parameters": {
                    "name.$": "$$.State.Name",
                    "entered.$": "$$.State.EnteredTime",
                    "retries.$": "$$.State.RetryCount",
                    "execution.$": "$$.Execution.Id",
                    "machine.$": "$$.StateMachine.Name",
                },
                "End": True,
            }
        }
    )
    outcome = await execute(definition, {})
    assert outcome.output == {
        "name": "Hello",
        "entered": "2024-01-01T00:00:00.000Z",
        "retries": 0,
        "execution": "exec-1",
        "machine": "order-check",
    }


async def test_spec_choice_example_routes_by_rules_and_default():
    # the specification's Choice example: Not/StringEquals, NumericLessThan, And of two bounds
    definition = machine(
        {
            "ChoiceStateX": {
                "Type": "Choice",
                "Choices": [
                    {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
                    {
                        "And": [
                            {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                            {"Variable": "$.value", "NumericLessThan": 30},
                        ],
                        "Next": "ValueInTwenties",
                    },
                ],
                "Default": "DefaultState",
            },
            "Public": {"Type": "Pass", "Result": "public", "End": True},
            "ValueInTwenties": {"Type": "Pass", "Result": "twenties", "End": True},
            "DefaultState": {"Type": "Fail", "Error": "DefaultStateError", "Cause": "No Matches!"},
        }
    )
    assert (await execute(definition, {"type": "Public", "value": 0})).output == "public"
    assert (await execute(definition, {"type": "Private", "value": 22})).output == "twenties"
    failed = await execute(definition, {"type": "Private", "value": 31})
    assert (failed.status, failed.error, failed.cause) == ("FAILED", "DefaultStateError", "No Matches!")


async def test_choice_exited_event_names_the_next_state_and_passes_its_input():
    rt = FakeRuntime()
    definition = machine(
        {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Y"}]},
            "Y": {"Type": "Succeed"},
        }
    )
    await execute(definition, {"ok": True}, rt)
    assert rt.events[1] == Event("exited", "C", "C", "Choice", output={"ok": True}, next="Y")


async def test_choice_without_a_match_or_default_fails_with_no_choice_matched():
    rt = FakeRuntime()
    definition = machine(
        {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Y"}]},
            "Y": {"Type": "Succeed"},
        }
    )
    outcome = await execute(definition, {}, rt)
    assert (outcome.status, outcome.error) == ("FAILED", "States.NoChoiceMatched")
    assert rt.path() == [("entered", "C"), ("failed", "C")]


async def test_choice_input_and_output_path():
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "InputPath": "$.order",
                "OutputPath": "$.id",
                "Choices": [{"Variable": "$.total", "NumericGreaterThan": 100, "Next": "Big"}],
                "Default": "Small",
            },
            "Big": {"Type": "Pass", "Parameters": {"big.$": "$"}, "End": True},
            "Small": {"Type": "Pass", "Parameters": {"small.$": "$"}, "End": True},
        }
    )
    assert (await execute(definition, {"order": {"id": 7, "total": 120}})).output == {"big": 7}
    assert (await execute(definition, {"order": {"id": 8, "total": 12}})).output == {"small": 8}


async def test_jsonata_choice_condition():
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.n > 10 %}", "Next": "Big"}],
                "Default": "Small",
            },
            "Big": {"Type": "Pass", "Output": "big", "End": True},
            "Small": {"Type": "Pass", "Output": "{% 'small ' & $string($states.input.n) %}", "End": True},
        },
        QueryLanguage="JSONata",
    )
    assert (await execute(definition, {"n": 11})).output == "big"
    assert (await execute(definition, {"n": 3})).output == "small 3"


async def test_a_loop_gives_each_visit_its_own_path():
    rt = FakeRuntime()
    definition = machine(
        {
            "Inc": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Again?"},
            "Again?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "Inc"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        }
    )
    outcome = await execute(definition, {"n": 0}, rt)
    assert outcome.output == {"n": 3}
    entered = [e.path for e in rt.events if e.kind == "entered"]
    assert entered == ["Inc", "Again?", "Inc@2", "Again?@2", "Inc@3", "Again?@3", "Done"]


async def test_wait_seconds_is_one_timer():
    rt = FakeRuntime()
    definition = machine({"W": {"Type": "Wait", "Seconds": 10, "End": True}})
    outcome = await execute(definition, {"a": 1}, rt)
    assert (outcome.output, rt.sleeps) == ({"a": 1}, [10.0])


async def test_wait_timestamp_sleeps_until_then_and_a_past_timestamp_not_at_all():
    rt = FakeRuntime()
    definition = machine({"W": {"Type": "Wait", "Timestamp": "2024-01-01T00:01:30Z", "End": True}})
    await execute(definition, {}, rt)
    assert rt.sleeps == [90.0]
    rt = FakeRuntime()
    await execute(machine({"W": {"Type": "Wait", "Timestamp": "2023-12-31T00:00:00Z", "End": True}}), {}, rt)
    assert rt.sleeps == []


async def test_wait_seconds_path_and_timestamp_path():
    rt = FakeRuntime()
    definition = machine(
        {
            "A": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "B"},
            "B": {"Type": "Wait", "TimestampPath": "$.until", "End": True},
        }
    )
    until = (START + timedelta(seconds=65)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await execute(definition, {"delay": 5, "until": until}, rt)
    assert rt.sleeps == [5.0, 60.0]  # the clock is at 00:00:05 when B starts


async def test_wait_jsonata_seconds_expression():
    rt = FakeRuntime()
    definition = machine(
        {"W": {"Type": "Wait", "Seconds": "{% $states.input.minutes * 60 %}", "End": True}}, QueryLanguage="JSONata"
    )
    await execute(definition, {"minutes": 2}, rt)
    assert rt.sleeps == [120.0]


async def test_wait_seconds_path_to_nothing_is_states_runtime():
    outcome = await execute(machine({"W": {"Type": "Wait", "SecondsPath": "$.missing", "End": True}}), {})
    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")


async def test_succeed_input_and_output_path():
    definition = machine({"S": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}})
    assert (await execute(definition, {"a": {"b": 2}})).output == 2


async def test_fail_error_path_and_cause_path():
    definition = machine({"F": {"Type": "Fail", "ErrorPath": "$.code", "CausePath": "States.Format('bad {}', $.n)"}})
    outcome = await execute(definition, {"code": "Bad.Input", "n": 3})
    assert (outcome.error, outcome.cause) == ("Bad.Input", "bad 3")


async def test_fail_jsonata_error_and_cause():
    definition = machine(
        {"F": {"Type": "Fail", "Error": "{% $states.input.kind %}", "Cause": "{% 'n=' & $states.input.n %}"}},
        QueryLanguage="JSONata",
    )
    outcome = await execute(definition, {"kind": "Nope", "n": 4})
    assert (outcome.error, outcome.cause) == ("Nope", "n=4")


async def test_fail_records_entered_then_failed():
    rt = FakeRuntime()
    await execute(machine({"F": {"Type": "Fail", "Error": "E", "Cause": "c"}}), {"x": 1}, rt)
    assert rt.events == [
        Event("entered", "F", "F", "Fail", input={"x": 1}),
        Event("failed", "F", "F", "Fail", error="E", cause="c"),
    ]


async def test_query_language_per_state_in_a_jsonpath_machine():
    definition = machine(
        {
            "A": {"Type": "Pass", "Parameters": {"v.$": "$.n"}, "Next": "B"},
            "B": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.v * 2 %}", "End": True},
        }
    )
    assert (await execute(definition, {"n": 21})).output == 42


async def test_jsonata_context_in_states_context():
    definition = machine(
        {
            "Hello": {
                "Type": "Pass",
                "Output": {
                    "name": "{% $states.context.State.Name %}",
                    "execution": "{% $states.context.Execution.Name %}",
                },
                "End": True,
            }
        },
        QueryLanguage="JSONata",
    )
    assert (await execute(definition, {})).output == {"name": "Hello", "execution": "job-1"}


async def test_jsonata_now_reads_the_runtime_clock():
    definition = machine({"T": {"Type": "Pass", "Output": "{% $now() %}", "End": True}}, QueryLanguage="JSONata")
    assert (await execute(definition, {})).output == "2024-01-01T00:00:00.000Z"
