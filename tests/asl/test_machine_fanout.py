"""Parallel and inline Map run by the interpreter: concurrency, results in order, a failing
branch cancelling its siblings, MaxConcurrency, tolerated failures, Retry/Catch on the whole
state. From the specification's Parallel and Map sections and the developer guide's pages."""

import asyncio

from lodestone.asl.errors import ASLError

from .test_machine_runtime import FakeRuntime, execute, fails, machine, never, script


def branch(states):
    return machine(states)


def one_task(resource="work", **fields):
    return branch({"Work": {"Type": "Task", "Resource": resource, "End": True, **fields}})


async def test_parallel_branches_get_the_same_input_and_results_come_in_branch_order():
    rt = FakeRuntime({"a": lambda call: "from a", "b": lambda call: "from b"})
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [one_task("a"), one_task("b"), branch({"P": {"Type": "Pass", "End": True}})],
                "ResultPath": "$.results",
                "End": True,
            }
        }
    )
    outcome = await execute(definition, {"x": 1}, rt)
    assert outcome.output == {"x": 1, "results": ["from a", "from b", {"x": 1}]}
    assert sorted(c.path for c in rt.calls) == ["Fan/0/Work", "Fan/1/Work"]
    assert rt.max_active == 2  # both branches' Tasks were running at once


async def test_a_failing_branch_cancels_the_others_and_fails_the_parallel_with_its_error():
    rt = FakeRuntime({"slow": never})
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [one_task("slow"), branch({"F": {"Type": "Fail", "Error": "Boom", "Cause": "branch 1"}})],
                "End": True,
            }
        }
    )
    outcome = await execute(definition, {}, rt)
    assert (outcome.status, outcome.error, outcome.cause) == ("FAILED", "Boom", "branch 1")
    assert rt.cancelled == ["Fan/0/Work"]
    assert ("exited", "Fan/0/Work") not in rt.path()
    assert rt.path()[-2:] == [("failed", "Fan/1/F"), ("failed", "Fan")]


async def test_parallel_catch_routes_a_branch_failure():
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [branch({"F": {"Type": "Fail", "Error": "Boom"}})],
                "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": "Fallback"}],
                "End": True,
            },
            "Fallback": {"Type": "Pass", "End": True},
        }
    )
    outcome = await execute(definition, {"a": 1})
    assert outcome.output == {"a": 1, "err": {"Error": "Boom", "Cause": ""}}


async def test_parallel_retry_runs_every_branch_again_under_a_new_path():
    rt = FakeRuntime({"flaky": script(ASLError("Boom"), "ok"), "steady": lambda call: "fine"})
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [one_task("flaky"), one_task("steady")],
                "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2}],
                "End": True,
            }
        }
    )
    outcome = await execute(definition, {}, rt)
    assert outcome.output == ["ok", "fine"]
    assert rt.sleeps == [2.0]
    assert sorted(c.path for c in rt.calls if c.resource == "flaky") == ["Fan#2/0/Work", "Fan/0/Work"]
    assert all(c.attempt == 1 for c in rt.calls)


async def test_parallel_parameters_and_result_selector():
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Parameters": {"v.$": "$.value"},
                "Branches": [
                    branch({"P": {"Type": "Pass", "End": True}}),
                    branch({"Q": {"Type": "Pass", "End": True}}),
                ],
                "ResultSelector": {"first.$": "$[0].v"},
                "End": True,
            }
        }
    )
    assert (await execute(definition, {"value": 3})).output == {"first": 3}


async def test_developer_guide_map_example_item_selector_and_result_path():
    rt = FakeRuntime(
        {"ship-val": lambda call: {"shipped": call.payload["parcel"]["prod"], "by": call.payload["courier"]}}
    )
    definition = machine(
        {
            "Validate-All": {
                "Type": "Map",
                "InputPath": "$.detail",
                "ItemsPath": "$.shipped",
                "MaxConcurrency": 0,
                "ItemSelector": {"parcel.$": "$$.Map.Item.Value", "courier.$": "$.delivery-partner"},
                "ItemProcessor": branch({"Validate": {"Type": "Task", "Resource": "ship-val", "End": True}}),
                "ResultPath": "$.detail.shipped",
                "End": True,
            }
        }
    )
    shipped = [
        {"prod": "R31", "dest-code": 9511, "quantity": 1344},
        {"prod": "S39", "dest-code": 9511, "quantity": 40},
        {"prod": "R31", "dest-code": 9833, "quantity": 12},
    ]
    payload = {"ship-date": "2016-03-14T01:59:00Z", "detail": {"delivery-partner": "UQS", "shipped": shipped}}
    outcome = await execute(definition, payload, rt)
    assert outcome.output == {
        "ship-date": "2016-03-14T01:59:00Z",
        "detail": {
            "delivery-partner": "UQS",
            "shipped": [
                {"shipped": "R31", "by": "UQS"},
                {"shipped": "S39", "by": "UQS"},
                {"shipped": "R31", "by": "UQS"},
            ],
        },
    }
    assert sorted(c.path for c in rt.calls) == [
        "Validate-All/0/Validate",
        "Validate-All/1/Validate",
        "Validate-All/2/Validate",
    ]


async def test_map_item_index_in_item_selector():
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
                "ItemProcessor": branch({"P": {"Type": "Pass", "End": True}}),
                "End": True,
            }
        }
    )
    assert (await execute(definition, ["a", "b"])).output == [{"i": 0, "v": "a"}, {"i": 1, "v": "b"}]


async def test_map_results_stay_in_item_order_whatever_order_the_items_finish_in():
    async def slow_for_small(call):
        for _ in range(10 - call.payload):
            await asyncio.sleep(0)
        return call.payload * 10

    rt = FakeRuntime({"work": slow_for_small})
    definition = machine({"Each": {"Type": "Map", "ItemProcessor": one_task(), "End": True}})
    assert (await execute(definition, [1, 5, 9], rt)).output == [10, 50, 90]


async def test_max_concurrency_is_honored():
    rt = FakeRuntime()
    definition = machine({"Each": {"Type": "Map", "MaxConcurrency": 2, "ItemProcessor": one_task(), "End": True}})
    assert (await execute(definition, list(range(7)), rt)).output == list(range(7))
    assert rt.max_active == 2


async def test_max_concurrency_one_runs_the_items_one_by_one_in_order():
    rt = FakeRuntime()
    definition = machine({"Each": {"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": one_task(), "End": True}})
    await execute(definition, ["a", "b", "c"], rt)
    assert [c.payload for c in rt.calls] == ["a", "b", "c"]
    assert rt.max_active == 1


async def test_max_concurrency_zero_or_absent_is_unlimited():
    for fields in ({"MaxConcurrency": 0}, {}):
        rt = FakeRuntime()
        definition = machine({"Each": {"Type": "Map", "ItemProcessor": one_task(), "End": True, **fields}})
        await execute(definition, list(range(6)), rt)
        assert rt.max_active == 6


async def test_max_concurrency_path_and_jsonata_expression():
    rt = FakeRuntime()
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrencyPath": "$.limit",
                "ItemProcessor": one_task(),
                "End": True,
            }
        }
    )
    await execute(definition, {"items": list(range(5)), "limit": 3}, rt)
    assert rt.max_active == 3
    rt = FakeRuntime()
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "Items": "{% $states.input.items %}",
                "MaxConcurrency": "{% $states.input.limit %}",
                "ItemProcessor": one_task(),
                "End": True,
            }
        },
        QueryLanguage="JSONata",
    )
    await execute(definition, {"items": list(range(5)), "limit": 2}, rt)
    assert rt.max_active == 2


async def test_an_item_failure_fails_the_map_with_its_error_and_cancels_the_rest():
    def handler(call):
        if call.payload == "bad":
            raise ASLError("Item.Bad", "no good")
        return never(call)

    rt = FakeRuntime({"work": handler})
    definition = machine({"Each": {"Type": "Map", "ItemProcessor": one_task(), "End": True}})
    outcome = await execute(definition, ["ok", "bad", "ok"], rt)
    assert (outcome.error, outcome.cause) == ("Item.Bad", "no good")
    assert sorted(rt.cancelled) == ["Each/0/Work", "Each/2/Work"]


def tolerant_map(**tolerance):
    return machine({"Each": {"Type": "Map", "ItemProcessor": one_task(), "End": True, **tolerance}})


def failing_on(*bad):
    def handler(call):
        if call.payload in bad:
            raise ASLError("Item.Bad", f"item {call.payload}")
        return call.payload

    return handler


async def test_tolerated_failure_count_lets_the_map_succeed():
    rt = FakeRuntime({"work": failing_on(2)})
    outcome = await execute(tolerant_map(ToleratedFailureCount=1), [1, 2, 3], rt)
    assert outcome.output == [1, {"Error": "Item.Bad", "Cause": "item 2"}, 3]


async def test_failures_over_the_tolerated_count_fail_with_exceed_tolerated_failure_threshold():
    rt = FakeRuntime({"work": failing_on(1, 3)})
    outcome = await execute(tolerant_map(ToleratedFailureCount=1), [1, 2, 3], rt)
    assert (outcome.status, outcome.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")


async def test_tolerated_failure_percentage():
    rt = FakeRuntime({"work": failing_on(1, 2)})
    assert (await execute(tolerant_map(ToleratedFailurePercentage=50), [1, 2, 3, 4], rt)).status == "SUCCEEDED"
    rt = FakeRuntime({"work": failing_on(1, 2, 3)})
    outcome = await execute(tolerant_map(ToleratedFailurePercentage=50), [1, 2, 3, 4], rt)
    assert outcome.error == "States.ExceedToleratedFailureThreshold"


async def test_exceeded_threshold_can_be_caught():
    rt = FakeRuntime({"work": failing_on(1)})
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "ToleratedFailureCount": 0,
                "ItemProcessor": one_task(),
                "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Fallback"}],
                "End": True,
            },
            "Fallback": {"Type": "Pass", "Result": "fell back", "End": True},
        }
    )
    assert (await execute(definition, [1, 2], rt)).output == "fell back"


async def test_map_over_an_empty_array_is_an_empty_array():
    definition = machine({"Each": {"Type": "Map", "ItemProcessor": one_task(), "End": True}})
    assert (await execute(definition, [])).output == []


async def test_map_items_path_to_a_non_array_is_states_runtime():
    definition = machine({"Each": {"Type": "Map", "ItemsPath": "$.x", "ItemProcessor": one_task(), "End": True}})
    outcome = await execute(definition, {"x": {"not": "an array"}})
    assert outcome.error == "States.Runtime"


async def test_legacy_iterator_and_parameters():
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "Parameters": {"item.$": "$$.Map.Item.Value", "tag": "t"},
                "Iterator": branch({"P": {"Type": "Pass", "End": True}}),
                "End": True,
            }
        }
    )
    assert (await execute(definition, [1])).output == [{"item": 1, "tag": "t"}]


async def test_jsonata_map_items_and_item_selector():
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "Items": "{% $states.input.orders %}",
                "ItemSelector": {
                    "id": "{% $states.context.Map.Item.Value.id %}",
                    "pos": "{% $states.context.Map.Item.Index %}",
                },
                "ItemProcessor": branch({"P": {"Type": "Pass", "End": True}}),
                "Output": "{% $states.result.id %}",
                "End": True,
            }
        },
        QueryLanguage="JSONata",
    )
    assert (await execute(definition, {"orders": [{"id": "a"}, {"id": "b"}]})).output == ["a", "b"]


async def test_nested_map_in_parallel_paths():
    rt = FakeRuntime()
    definition = machine(
        {
            "Fan": {
                "Type": "Parallel",
                "Branches": [branch({"Each": {"Type": "Map", "ItemProcessor": one_task(), "End": True}})],
                "End": True,
            }
        }
    )
    assert (await execute(definition, ["x", "y"], rt)).output == [["x", "y"]]
    assert sorted(c.path for c in rt.calls) == ["Fan/0/Each/0/Work", "Fan/0/Each/1/Work"]


async def test_item_failure_event_then_map_failed_event():
    rt = FakeRuntime({"work": fails("Boom")})
    definition = machine({"Each": {"Type": "Map", "ItemProcessor": one_task(), "End": True}})
    await execute(definition, [1], rt)
    assert rt.path() == [("entered", "Each"), ("entered", "Each/0/Work"), ("failed", "Each/0/Work"), ("failed", "Each")]


async def test_an_iteration_states_read_the_map_item_from_the_context_object():
    inner = branch(
        {"P": {"Type": "Pass", "Parameters": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"}, "End": True}}
    )
    definition = machine({"Each": {"Type": "Map", "ItemProcessor": inner, "End": True}})
    assert (await execute(definition, ["a", "b"])).output == [{"i": 0, "v": "a"}, {"i": 1, "v": "b"}]


async def test_distributed_map_fields_are_refused_at_run_time():
    definition = machine(
        {
            "Each": {
                "Type": "Map",
                "ItemReader": {"Resource": "arn:aws:states:::s3:getObject"},
                "ItemProcessor": one_task(),
                "End": True,
            }
        }
    )
    outcome = await execute(definition, {})
    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")
    assert "ItemReader" in outcome.cause
