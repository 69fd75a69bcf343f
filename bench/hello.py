"""The hello-world workflow the benchmarks measure Lodestone against: one activity. Its own
module, which the workflow sandbox re-imports: nothing heavy is imported here."""

from datetime import timedelta

from temporalio import activity, workflow

HELLO_TIMEOUT = timedelta(seconds=30)


@activity.defn
async def say_hello(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class HelloWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(say_hello, name, start_to_close_timeout=HELLO_TIMEOUT)
