"""Retry, Catch, Task timeouts and the machine's TimeoutSeconds, run by the interpreter.
Expected delays and routes from the specification's "Retrying after error" and "Fallback
states" sections and the developer guide's error-handling page."""

import random

from lodestone.asl.errors import ASLError
from lodestone.asl.machine import Event

from .test_machine_runtime import FakeRuntime, execute, fails, machine, never, script


def task(**fields):
    return {"Type": "Task", "Resource": "work", **fields}


def fallback(states):
    return {**states, "Recovery": {"Type": "Pass", "End": True}, "EndMachine": {"Type": "Pass", "End": True}}


async def test_spec_retrier_waits_interval_then_interval_times_backoff():
    # "retry twice after waiting 3 and 4.5 seconds"
    rt = FakeRuntime({"work": script(ASLError("States.Timeout"), ASLError("States.Timeout"), {"ok": 1})})
    retry = [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 1.5}]
    outcome = await execute(machine({"T": task(Retry=retry, End=True)}), {}, rt)
    assert outcome.output == {"ok": 1}
    assert rt.sleeps == [3.0, 4.5]
    assert [c.attempt for c in rt.calls] == [1, 2, 3]
    assert [(e.kind, e.attempt, e.delay_seconds) for e in rt.events if e.kind == "retry"] == [
        ("retry", 1, 3.0),
        ("retry", 2, 4.5),
    ]


async def test_spec_two_retriers_then_the_first_is_exhausted_and_catch_takes_over():
    # ErrorA, ErrorB, ErrorC, ErrorB: waits of 1 and 2 s (first retrier), 5 s (second); the
    # fourth error matches the first retrier, which has made its 2 retries: to the Catchers.
    errors = [ASLError(name, f"failure {i}") for i, name in enumerate(["ErrorA", "ErrorB", "ErrorC", "ErrorB"])]
    rt = FakeRuntime({"work": script(*errors)})
    retry = [
        {"ErrorEquals": ["ErrorA", "ErrorB"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 2},
        {"ErrorEquals": ["ErrorC"], "IntervalSeconds": 5},
    ]
    catch = [{"ErrorEquals": ["States.ALL"], "Next": "Recovery"}]
    outcome = await execute(machine(fallback({"T": task(Retry=retry, Catch=catch, End=True)})), {"in": 1}, rt)
    assert rt.sleeps == [1.0, 2.0, 5.0]
    assert len(rt.calls) == 4
    assert outcome.output == {"Error": "ErrorB", "Cause": "failure 3"}
    assert rt.path() == [
        ("entered", "T"),
        ("retry", "T"),
        ("retry", "T"),
        ("retry", "T"),
        ("caught", "T"),
        ("entered", "Recovery"),
        ("exited", "Recovery"),
    ]
    caught = rt.events[4]
    assert (caught.error, caught.cause, caught.next) == ("ErrorB", "failure 3", "Recovery")


async def test_max_attempts_zero_never_retries():
    rt = FakeRuntime({"work": fails("Boom")})
    outcome = await execute(machine({"T": task(Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 0}], End=True)}), {}, rt)
    assert (outcome.error, len(rt.calls), rt.sleeps) == ("Boom", 1, [])


async def test_default_retrier_makes_three_retries_of_1_2_4_seconds():
    rt = FakeRuntime({"work": fails("Boom", "it broke")})
    outcome = await execute(machine({"T": task(Retry=[{"ErrorEquals": ["States.ALL"]}], End=True)}), {}, rt)
    assert rt.sleeps == [1.0, 2.0, 4.0]
    assert (outcome.status, outcome.error, outcome.cause) == ("FAILED", "Boom", "it broke")
    assert rt.path()[-1] == ("failed", "T")


async def test_max_delay_seconds_caps_the_backoff():
    rt = FakeRuntime({"work": fails("Boom")})
    retry = [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "BackoffRate": 2, "MaxAttempts": 5, "MaxDelaySeconds": 5}]
    await execute(machine({"T": task(Retry=retry, End=True)}), {}, rt)
    assert rt.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_full_jitter_draws_each_delay_between_zero_and_the_backoff_from_the_runtime_rng():
    rt = FakeRuntime({"work": fails("Boom")}, seed=42)
    retry = [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 3, "JitterStrategy": "FULL"}]
    await execute(machine({"T": task(Retry=retry, End=True)}), {}, rt)
    draws = random.Random(42)
    assert rt.sleeps == [2.0 * draws.random(), 4.0 * draws.random(), 8.0 * draws.random()]


async def test_retry_count_in_the_context_object_counts_the_retries():
    rt = FakeRuntime({"work": script(ASLError("Boom"), ASLError("Boom"), "ok")})
    definition = machine(
        {"T": task(Parameters={"retries.$": "$$.State.RetryCount"}, Retry=[{"ErrorEquals": ["Boom"]}], End=True)}
    )
    await execute(definition, {}, rt)
    assert [c.payload for c in rt.calls] == [{"retries": 0}, {"retries": 1}, {"retries": 2}]


async def test_spec_catchers_first_match_wins_and_result_path_keeps_the_input():
    rt = FakeRuntime({"work": fails("java.lang.Exception", "stack trace")})
    catch = [
        {"ErrorEquals": ["java.lang.Exception"], "ResultPath": "$.error-info", "Next": "Recovery"},
        {"ErrorEquals": ["States.ALL"], "Next": "EndMachine"},
    ]
    outcome = await execute(machine(fallback({"T": task(Catch=catch, End=True)})), {"order": 1}, rt)
    assert outcome.output == {"order": 1, "error-info": {"Error": "java.lang.Exception", "Cause": "stack trace"}}
    assert ("entered", "Recovery") in rt.path()


async def test_task_failed_matches_a_custom_error_but_not_a_timeout():
    definition = machine(
        fallback(
            {
                "T": task(
                    Catch=[
                        {"ErrorEquals": ["States.TaskFailed"], "Next": "Recovery"},
                        {"ErrorEquals": ["States.ALL"], "Next": "EndMachine"},
                    ],
                    End=True,
                )
            }
        )
    )
    rt = FakeRuntime({"work": fails("Custom.Error")})
    await execute(definition, {}, rt)
    assert rt.events[1].next == "Recovery"
    rt = FakeRuntime({"work": fails("States.Timeout")})
    await execute(definition, {}, rt)
    assert rt.events[1].next == "EndMachine"


async def test_states_runtime_is_neither_retried_nor_caught():
    rt = FakeRuntime()
    definition = machine(
        fallback(
            {
                "T": task(
                    Parameters={"x.$": "$.missing"},
                    Retry=[{"ErrorEquals": ["States.ALL"]}],
                    Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Recovery"}],
                    End=True,
                )
            }
        )
    )
    outcome = await execute(definition, {}, rt)
    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")
    assert rt.calls == [] and rt.sleeps == []


async def test_result_path_match_failure_is_caught():
    rt = FakeRuntime({"work": lambda call: 1})
    catch = [{"ErrorEquals": ["States.ResultPathMatchFailure"], "Next": "Recovery"}]
    definition = machine(fallback({"T": task(ResultPath="$.a.b", Catch=catch, End=True)}))
    await execute(definition, {"a": "text"}, rt)
    assert rt.events[1].kind == "caught" and rt.events[1].error == "States.ResultPathMatchFailure"


async def test_jsonata_catch_output_reads_the_error_output():
    rt = FakeRuntime({"work": fails("Boom", "because")})
    catch = [
        {
            "ErrorEquals": ["States.ALL"],
            "Output": {"was": "{% $states.input.id %}", "why": "{% $states.errorOutput.Cause %}"},
            "Next": "Recovery",
        }
    ]
    definition = machine(fallback({"T": task(Catch=catch, End=True)}), QueryLanguage="JSONata")
    assert (await execute(definition, {"id": 9}, rt)).output == {"was": 9, "why": "because"}


async def test_task_timeouts_reach_the_runtime():
    rt = FakeRuntime()
    await execute(machine({"T": task(TimeoutSeconds=30, HeartbeatSeconds=10, End=True)}), {}, rt)
    assert (rt.calls[0].timeout_seconds, rt.calls[0].heartbeat_seconds) == (30.0, 10.0)
    rt = FakeRuntime()
    definition = machine({"T": task(TimeoutSecondsPath="$.t", HeartbeatSecondsPath="$.h", End=True)})
    await execute(definition, {"t": 60, "h": 20}, rt)
    assert (rt.calls[0].timeout_seconds, rt.calls[0].heartbeat_seconds) == (60.0, 20.0)
    rt = FakeRuntime()
    definition = machine({"T": task(TimeoutSeconds="{% $states.input.t %}", End=True)}, QueryLanguage="JSONata")
    await execute(definition, {"t": 45}, rt)
    assert (rt.calls[0].timeout_seconds, rt.calls[0].heartbeat_seconds) == (45.0, None)


async def test_jsonata_task_arguments_and_output():
    rt = FakeRuntime({"work": lambda call: {"Payload": {"total": call.payload["n"] * 2}}})
    definition = machine(
        {
            "T": task(
                Arguments={"n": "{% $states.input.n %}"},
                Output="{% $states.result.Payload.total %}",
                End=True,
            )
        },
        QueryLanguage="JSONata",
    )
    assert (await execute(definition, {"n": 4}, rt)).output == 8
    assert rt.calls[0].payload == {"n": 4}


async def test_jsonpath_task_data_flow_from_the_developer_guide():
    rt = FakeRuntime({"work": lambda call: {"Payload": "Hello, AWS Step Functions!", "StatusCode": 200}})
    definition = machine(
        {
            "T": task(
                InputPath="$.lambda",
                Parameters={"FunctionName": "f", "Payload.$": "$"},
                ResultSelector={"body.$": "$.Payload", "code.$": "$.StatusCode"},
                ResultPath="$.taskresult",
                OutputPath="$.taskresult.body",
                End=True,
            )
        }
    )
    outcome = await execute(definition, {"lambda": {"who": "AWS Step Functions"}}, rt)
    assert rt.calls[0].payload == {"FunctionName": "f", "Payload": {"who": "AWS Step Functions"}}
    assert outcome.output == "Hello, AWS Step Functions!"


async def test_machine_timeout_seconds_fails_the_execution_with_states_timeout():
    rt = FakeRuntime({"work": never})
    outcome = await execute(machine({"T": task(End=True)}, TimeoutSeconds=30), {}, rt)
    assert (outcome.status, outcome.error) == ("FAILED", "States.Timeout")
    assert rt.sleeps == [30.0]
    assert rt.cancelled == ["T"]


async def test_machine_timeout_does_not_fire_when_the_machine_finishes_first():
    rt = FakeRuntime()
    outcome = await execute(machine({"T": task(End=True)}, TimeoutSeconds=30), {"a": 1}, rt)
    assert outcome.output == {"a": 1}


async def test_retry_and_caught_events_carry_error_and_cause():
    rt = FakeRuntime({"work": fails("Boom", "why")})
    definition = machine(
        fallback(
            {
                "T": task(
                    Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 1}],
                    Catch=[{"ErrorEquals": ["Boom"], "Next": "Recovery"}],
                    End=True,
                )
            }
        )
    )
    await execute(definition, {"a": 1}, rt)
    assert rt.events[:3] == [
        Event("entered", "T", "T", "Task", input={"a": 1}),
        Event("retry", "T", "T", "Task", error="Boom", cause="why", attempt=1, delay_seconds=1.0),
        Event(
            "caught",
            "T",
            "T",
            "Task",
            output={"Error": "Boom", "Cause": "why"},
            error="Boom",
            cause="why",
            next="Recovery",
        ),
    ]
