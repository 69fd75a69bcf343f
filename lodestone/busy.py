"""Busy: a shared resource is full for now (the template pool, a tenant's LLM-call or render
slots). Not a failure: the caller asks again after `retry_after` seconds. A pipeline step or
render gives its worker slot back and the workflow schedules it again (activities/common.py
busy, workflows/policies.py BUSY_TYPES); a state machine Task waits it out in its activity."""


class Busy(RuntimeError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
