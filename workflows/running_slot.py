"""A job's wait for a running slot of its tenant (activities/running_slots.py), as both job
workflows take it between `queued` and `processing`. The claim is an activity; while the
tenant is full the run waits durably, for the signal a finishing job of the tenant sends
(SLOT_SIGNAL), or at the latest for a re-check that backs off from FIRST_RECHECK to
MAX_RECHECK, so a lost signal or a crashed worker never strands it. Runs recorded before
SLOT_PATCH start at once."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.running_slots import SLOT_SIGNAL, SlotActivities, SlotAnswer, SlotRef
    from workflows.policies import DB_RETRY, DB_TIMEOUT

SLOT_PATCH = "running-slot"
__all__ = ["SLOT_PATCH", "SLOT_SIGNAL", "SlotWait"]
FIRST_RECHECK = timedelta(seconds=5)
MAX_RECHECK = timedelta(seconds=60)


class SlotWait:
    def __init__(self) -> None:
        self._woken = False

    def wake(self) -> None:
        """The signal: a slot of the tenant may have freed."""
        self._woken = True

    async def take(self, tenant_id: str, job_id: str, *, local: bool) -> None:
        """Return once the job holds a slot (or needs none)."""
        if not workflow.patched(SLOT_PATCH):
            return
        execute = workflow.execute_local_activity_method if local else workflow.execute_activity_method
        recheck = FIRST_RECHECK
        while True:
            self._woken = False  # a signal during the claim is kept: the next wait returns at once
            answer: SlotAnswer = await execute(
                SlotActivities.claim_running_slot,
                SlotRef(tenant_id, job_id),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_RETRY,
            )
            if answer.granted:
                return
            try:
                await workflow.wait_condition(lambda: self._woken, timeout=recheck)
            except TimeoutError:
                recheck = min(recheck * 2, MAX_RECHECK)
