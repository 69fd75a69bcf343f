"""Error names, Retry/Catch matching and retry delays. Cases from the spec's "Errors",
"Retrying after error" and "Fallback states" sections and the developer guide's "Handling
errors" page (its retrier examples with their stated waits)."""

import pytest

from lodestone.asl import errors
from lodestone.asl.errors import ASLError, error_matches, find_catcher, next_retry, retry_delay

SPEC_ERROR_NAMES = [
    "States.ALL",
    "States.HeartbeatTimeout",
    "States.Timeout",
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
]


def test_every_predefined_error_name_has_a_constant():
    constants = {v for k, v in vars(errors).items() if k.isupper() and isinstance(v, str)}
    assert set(SPEC_ERROR_NAMES) <= constants
    assert set(SPEC_ERROR_NAMES) <= errors.PREDEFINED


def test_asl_error_carries_error_and_cause():
    e = ASLError("MyError", "it broke")
    assert (e.error, e.cause) == ("MyError", "it broke")
    assert e.as_output() == {"Error": "MyError", "Cause": "it broke"}


@pytest.mark.parametrize(
    ("error_equals", "error", "expected"),
    [
        (["MyError"], "MyError", True),
        (["MyError"], "OtherError", False),
        (["Other", "MyError"], "MyError", True),
        (["States.ALL"], "MyError", True),
        (["States.ALL"], "States.Timeout", True),
        (["States.ALL"], "States.TaskFailed", True),
        (["States.TaskFailed"], "Lambda.ServiceException", True),  # wildcard for any error ...
        (["States.TaskFailed"], "States.HeartbeatTimeout", True),
        (["States.TaskFailed"], "States.Timeout", False),  # ... except States.Timeout
        (["States.Timeout"], "States.Timeout", True),
        (["States.Timeout"], "States.HeartbeatTimeout", False),
        (["myerror"], "MyError", False),  # names are case-sensitive
        # Step Functions never retries or catches States.Runtime and States.DataLimitExceeded
        (["States.ALL"], "States.Runtime", False),
        (["States.Runtime"], "States.Runtime", False),
        (["States.TaskFailed"], "States.DataLimitExceeded", False),
    ],
)
def test_error_matching(error_equals, error, expected):
    assert error_matches(error_equals, error) is expected


def test_spec_catch_example_first_match_wins():
    catchers = [
        {"ErrorEquals": ["java.lang.Exception"], "ResultPath": "$.error-info", "Next": "RecoveryState"},
        {"ErrorEquals": ["States.ALL"], "Next": "EndState"},
    ]
    assert find_catcher(catchers, "java.lang.Exception") == 0
    assert find_catcher(catchers, "States.Timeout") == 1
    assert find_catcher(catchers, "States.Runtime") is None
    assert find_catcher(None, "X") is None


def test_spec_retry_example_waits_3_then_4_5_seconds_then_gives_up():
    # spec: "ErrorEquals": ["States.Timeout"], IntervalSeconds 3, MaxAttempts 2, BackoffRate 1.5:
    # retried after 3 s and 4.5 s, then the error goes to the Catchers
    retriers = [
        {"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 1.5},
        {"ErrorEquals": ["States.ALL"]},
    ]
    attempts: dict[int, int] = {}
    waits = []
    while (decision := next_retry(retriers, "States.Timeout", attempts)) is not None:
        index, delay = decision
        assert index == 0
        attempts[index] = attempts.get(index, 0) + 1
        waits.append(delay)
    assert waits == [3.0, 4.5]


def test_defaults_interval_1_max_attempts_3_backoff_2():
    retriers = [{"ErrorEquals": ["States.ALL"]}]
    attempts: dict[int, int] = {}
    waits = []
    while (decision := next_retry(retriers, "E", attempts)) is not None:
        attempts[0] = attempts.get(0, 0) + 1
        waits.append(decision[1])
    assert waits == [1.0, 2.0, 4.0]


def test_max_attempts_zero_never_retries():
    assert next_retry([{"ErrorEquals": ["E"], "MaxAttempts": 0}], "E", {}) is None


def test_retriers_keep_separate_counters():
    retriers = [{"ErrorEquals": ["A"], "MaxAttempts": 1}, {"ErrorEquals": ["B"], "MaxAttempts": 1}]
    assert next_retry(retriers, "A", {}) == (0, 1.0)
    assert next_retry(retriers, "B", {0: 1}) == (1, 1.0)
    assert next_retry(retriers, "A", {0: 1}) is None  # the exhausted first match does not fall through


def test_unmatched_error_is_not_retried():
    assert next_retry([{"ErrorEquals": ["A"]}], "B", {}) is None


def test_max_delay_seconds_caps_the_backoff():
    retrier = {"ErrorEquals": ["E"], "IntervalSeconds": 1, "BackoffRate": 2, "MaxDelaySeconds": 3, "MaxAttempts": 5}
    assert [retry_delay(retrier, n) for n in range(1, 6)] == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_full_jitter_scales_by_the_injected_random():
    retrier = {"ErrorEquals": ["E"], "IntervalSeconds": 4, "BackoffRate": 2, "JitterStrategy": "FULL"}
    assert retry_delay(retrier, 2, rng=lambda: 0.25) == 2.0  # 0.25 * 8
    assert retry_delay(retrier, 1, rng=lambda: 0.0) == 0.0
    with pytest.raises(ValueError):
        retry_delay(retrier, 1)  # no source: refuse rather than read entropy


def test_jitter_none_is_deterministic():
    retrier = {"ErrorEquals": ["E"], "IntervalSeconds": 2, "JitterStrategy": "NONE"}
    assert retry_delay(retrier, 3, rng=lambda: 0.5) == 8.0
