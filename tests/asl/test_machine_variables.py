"""Workflow variables (Assign) in both query languages and their scopes, run by the
interpreter; determinism of a whole run. From the developer guide's "Passing data between
states with variables": values take effect when the state finishes (Assign and Output both
read the values from before), inner scopes (Parallel branches, Map iterations) read the outer
variables but do not assign them, and what they assign stays inside."""

from lodestone.asl.errors import ASLError

from .test_machine_runtime import FakeRuntime, execute, machine, script


def pass_state(**fields):
    return {"Type": "Pass", **fields}


async def test_jsonpath_assign_reads_the_result_and_later_states_read_the_variable():
    definition = machine(
        {
            "Ask": pass_state(Result={"answer": 42}, Assign={"theAnswer.$": "$.answer", "fixed": "x"}, Next="Use"),
            "Use": pass_state(Parameters={"a.$": "$theAnswer", "f.$": "$fixed"}, End=True),
        }
    )
    assert (await execute(definition, {})).output == {"a": 42, "f": "x"}


async def test_jsonpath_task_assign_reads_the_raw_result_before_result_selector():
    rt = FakeRuntime({"work": lambda call: {"Payload": {"id": 7}, "StatusCode": 200}})
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "work",
                "ResultSelector": {"only.$": "$.Payload.id"},
                "Assign": {"status.$": "$.StatusCode"},
                "Next": "Use",
            },
            "Use": pass_state(Parameters={"status.$": "$status", "in.$": "$"}, End=True),
        }
    )
    assert (await execute(definition, {}, rt)).output == {"status": 200, "in": {"only": 7}}


async def test_jsonata_assign_and_output_both_read_the_values_from_before_the_state():
    definition = machine(
        {
            "Init": pass_state(Assign={"x": 1}, Next="Bump"),
            "Bump": pass_state(Assign={"x": "{% $x + 1 %}"}, Output={"seen": "{% $x %}"}, Next="Show"),
            "Show": pass_state(Output={"before": "{% $states.input.seen %}", "now": "{% $x %}"}, End=True),
        },
        QueryLanguage="JSONata",
    )
    assert (await execute(definition, {})).output == {"before": 1, "now": 2}


async def test_choice_rule_assign_or_the_state_assign_when_default_is_taken():
    definition = machine(
        {
            "Check": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.input_value", "IsPresent": False, "Assign": {"status": "UNKNOWN"}, "Next": "Final"},
                    {
                        "Variable": "$.input_value",
                        "NumericEquals": 42,
                        "Assign": {"status": "CORRECT"},
                        "Next": "Final",
                    },
                ],
                "Assign": {"status": "INCORRECT", "guess.$": "$.input_value"},
                "Default": "Final",
            },
            "Final": pass_state(Parameters={"result.$": "$status"}, End=True),
        }
    )
    assert (await execute(definition, {})).output == {"result": "UNKNOWN"}
    assert (await execute(definition, {"input_value": 42})).output == {"result": "CORRECT"}
    assert (await execute(definition, {"input_value": 7})).output == {"result": "INCORRECT"}


async def test_catcher_assign_reads_the_error_output_and_the_state_assign_is_not_applied():
    rt = FakeRuntime({"work": script(ASLError("Boom", "broken"))})
    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "work",
                "Assign": {"result": "SUCCESS"},
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "Assign": {"result": "{% $states.errorOutput.Error %}"},
                        "Next": "Show",
                    }
                ],
                "End": True,
            },
            "Show": pass_state(Output="{% $result %}", End=True),
        },
        QueryLanguage="JSONata",
    )
    assert (await execute(definition, {}, rt)).output == "Boom"


async def test_map_iterations_read_outer_variables_and_their_own_stay_inside():
    definition = machine(
        {
            "Setup": pass_state(Assign={"bias": 100}, Next="Each"),
            "Each": {
                "Type": "Map",
                "ItemProcessor": machine(
                    {
                        "Keep": pass_state(Assign={"mine": "{% $states.input %}"}, Next="Sum"),
                        "Sum": pass_state(Output="{% $mine + $bias %}", End=True),
                    }
                ),
                "Next": "After",
            },
            "After": pass_state(Output={"results": "{% $states.input %}", "bias": "{% $bias %}"}, End=True),
        },
        QueryLanguage="JSONata",
    )
    assert (await execute(definition, [1, 2, 3])).output == {"results": [101, 102, 103], "bias": 100}


async def test_a_variable_assigned_in_an_iteration_is_not_visible_after_the_map():
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "ItemProcessor": machine({"Keep": pass_state(Assign={"mine": "{% $states.input %}"}, End=True)}),
                "Next": "After",
            },
            "After": pass_state(Output="{% $mine %}", End=True),
        },
        QueryLanguage="JSONata",
    )
    outcome = await execute(definition, [1])
    assert (outcome.status, outcome.error) == ("FAILED", "States.QueryEvaluationError")


async def test_parallel_branches_do_not_see_each_others_variables():
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    machine({"A": pass_state(Assign={"a": 1}, Output="{% $a %}", End=True)}),
                    machine(
                        {
                            "Yield": {"Type": "Wait", "Seconds": 1, "Next": "B"},
                            "B": pass_state(Output="{% $a %}", End=True),
                        }
                    ),
                ],
                "End": True,
            }
        },
        QueryLanguage="JSONata",
    )
    outcome = await execute(definition, {})
    assert (outcome.status, outcome.error) == ("FAILED", "States.QueryEvaluationError")


async def test_an_inner_scope_cannot_assign_an_outer_variable():
    definition = machine(
        {
            "Setup": pass_state(Assign={"count": 0}, Next="Each"),
            "Each": {
                "Type": "Map",
                "ItemProcessor": machine({"Bump": pass_state(Assign={"count": 1}, End=True)}),
                "End": True,
            },
        }
    )
    outcome = await execute(definition, [1])
    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")


async def test_the_map_state_own_assign_runs_in_the_outer_scope_on_its_result():
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "ItemProcessor": machine({"P": pass_state(End=True)}),
                "Assign": {"count": "{% $count($states.result) %}"},
                "Next": "Show",
            },
            "Show": pass_state(Output="{% $count %}", End=True),
        },
        QueryLanguage="JSONata",
    )
    assert (await execute(definition, ["a", "b", "c"])).output == 3


async def test_same_sources_give_the_same_events():
    definition = machine(
        {
            "Ids": pass_state(Parameters={"id.$": "States.UUID()", "n.$": "States.MathRandom(1, 1000)"}, Next="Fan"),
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    machine(
                        {
                            "Each": {
                                "Type": "Map",
                                "ItemsPath": "$.items",
                                "MaxConcurrency": 2,
                                "ItemProcessor": machine({"W": {"Type": "Task", "Resource": "work", "End": True}}),
                                "End": True,
                            }
                        }
                    ),
                    machine(
                        {
                            "T": {
                                "Type": "Task",
                                "Resource": "flaky",
                                "End": True,
                                "Retry": [{"ErrorEquals": ["Boom"], "JitterStrategy": "FULL"}],
                            }
                        }
                    ),
                ],
                "Parameters": {"items": [1, 2, 3], "id.$": "$.id"},
                "End": True,
            },
        }
    )

    async def once():
        rt = FakeRuntime({"flaky": script(ASLError("Boom"), ASLError("Boom"), "ok")}, seed=3)
        outcome = await execute(definition, {}, rt)
        return outcome, rt.events, rt.sleeps

    first, second = await once(), await once()
    assert first == second
    assert first[0].status == "SUCCEEDED" and len(first[2]) == 2
