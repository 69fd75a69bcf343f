"""ASL error names, the one exception type, error matching for Retry/Catch, and retry delays.

Pure functions: the random source for jitter is passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

ALL = "States.ALL"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
TIMEOUT = "States.Timeout"
TASK_FAILED = "States.TaskFailed"
PERMISSIONS = "States.Permissions"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
BRANCH_FAILED = "States.BranchFailed"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"
QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
RUNTIME = "States.Runtime"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
HTTP_SOCKET = "States.Http.Socket"  # the HTTP task's connection failures (developer guide, "Call HTTPS APIs")

PREDEFINED = frozenset(
    {
        ALL,
        HEARTBEAT_TIMEOUT,
        TIMEOUT,
        TASK_FAILED,
        PERMISSIONS,
        RESULT_PATH_MATCH_FAILURE,
        PARAMETER_PATH_FAILURE,
        BRANCH_FAILED,
        NO_CHOICE_MATCHED,
        INTRINSIC_FAILURE,
        EXCEED_TOLERATED_FAILURE_THRESHOLD,
        ITEM_READER_FAILED,
        RESULT_WRITER_FAILED,
        QUERY_EVALUATION_ERROR,
        RUNTIME,
        DATA_LIMIT_EXCEEDED,
        HTTP_SOCKET,
    }
)

# Step Functions fails the execution on these whatever the Retry/Catch says (developer guide,
# "Error names": States.Runtime and States.DataLimitExceeded are not retriable or catchable).
UNCATCHABLE = frozenset({RUNTIME, DATA_LIMIT_EXCEEDED})


class ASLError(Exception):
    """A failure with an ASL error name (``error``) and a human-readable ``cause``."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause

    def as_output(self) -> dict[str, str]:
        """The error output a Catcher passes on: ``{"Error": ..., "Cause": ...}``."""
        return {"Error": self.error, "Cause": self.cause}


def error_matches(error_equals: Sequence[str], error: str) -> bool:
    """Whether a Retrier's or Catcher's ErrorEquals list matches the error name.

    - an exact name matches itself;
    - ``States.ALL`` matches every error name;
    - ``States.TaskFailed`` matches every error name except ``States.Timeout``;
    - ``States.Runtime`` and ``States.DataLimitExceeded`` are never matched (AWS behaviour).
    """
    if error in UNCATCHABLE:
        return False
    for name in error_equals:
        if name == error or name == ALL:
            return True
        if name == TASK_FAILED and error != TIMEOUT:
            return True
    return False


def find_catcher(catchers: Sequence[Mapping[str, Any]] | None, error: str) -> int | None:
    """Index of the first Catcher whose ErrorEquals matches, or None."""
    for i, catcher in enumerate(catchers or ()):
        if error_matches(catcher.get("ErrorEquals", ()), error):
            return i
    return None


def find_retrier(retriers: Sequence[Mapping[str, Any]] | None, error: str) -> int | None:
    """Index of the first Retrier whose ErrorEquals matches, or None."""
    for i, retrier in enumerate(retriers or ()):
        if error_matches(retrier.get("ErrorEquals", ()), error):
            return i
    return None


def retry_delay(retrier: Mapping[str, Any], retry_number: int, rng: Callable[[], float] | None = None) -> float:
    """Seconds to wait before retry number ``retry_number`` (1 for the first retry).

    IntervalSeconds (default 1) times BackoffRate (default 2.0) to the power (retry_number - 1),
    capped at MaxDelaySeconds when set; with JitterStrategy FULL, a random delay between 0 and
    that value, drawn from ``rng`` (a callable returning a float in [0, 1)).
    """
    if retry_number < 1:
        raise ValueError("retry_number starts at 1")
    interval = retrier.get("IntervalSeconds", 1)
    rate = retrier.get("BackoffRate", 2.0)
    delay = float(interval) * float(rate) ** (retry_number - 1)
    cap = retrier.get("MaxDelaySeconds")
    if cap is not None:
        delay = min(delay, float(cap))
    if retrier.get("JitterStrategy", "NONE") == "FULL":
        if rng is None:
            raise ValueError("JitterStrategy FULL needs a random source")
        delay = delay * rng()
    return delay


def next_retry(
    retriers: Sequence[Mapping[str, Any]] | None,
    error: str,
    attempts: Mapping[int, int],
    rng: Callable[[], float] | None = None,
) -> tuple[int, float] | None:
    """Decide whether to retry after ``error``.

    ``attempts`` maps a Retrier's index to the retries it has already made. The first Retrier
    that matches decides alone: when it has made MaxAttempts (default 3) retries, no other
    Retrier is tried and the error goes to the Catchers. Returns (retrier index, delay seconds)
    or None. The caller increments ``attempts[index]``.
    """
    index = find_retrier(retriers, error)
    if index is None:
        return None
    retrier = retriers[index]  # type: ignore[index]
    made = attempts.get(index, 0)
    if made >= retrier.get("MaxAttempts", 3):
        return None
    return index, retry_delay(retrier, made + 1, rng)
