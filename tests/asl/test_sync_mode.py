"""Run-and-wait Resources (.sync, .sync:2) of services other than states:startExecution: the
binding says how the work's end is known ("sync": "answer" or "callback"); one that names no
mode is refused when stored, and is the only kind the inventory reports."""

from lodestone.asl.bindings import check_bindings
from lodestone.asl.inventory import inventory
from lodestone.asl.suggest import PLACEHOLDER_HOST, suggest
from lodestone.asl.sync_mode import ANSWER, CALLBACK, mode, run_and_wait, unmoded
from schema.machine_definition import machine_problems

GLUE = "arn:aws:states:::glue:startJobRun.sync"
BATCH = "arn:aws:states:::batch:submitJob.sync:2"
CHILD = "arn:aws:states:::states:startExecution.sync"
URL = "https://svc.example.com/run"


def _machine(*resources: str) -> dict:
    names = [f"T{i}" for i in range(len(resources))]
    states = {
        name: {"Type": "Task", "Resource": r, **({"Next": names[i + 1]} if i + 1 < len(names) else {"End": True})}
        for i, (name, r) in enumerate(zip(names, resources, strict=True))
    }
    return {"StartAt": names[0], "States": states}


def test_run_and_wait_names_the_suffix_of_every_service_but_start_execution() -> None:
    assert run_and_wait(GLUE) == ".sync"
    assert run_and_wait(BATCH) == ".sync:2"
    assert run_and_wait("arn:aws:states:::ecs:runTask.sync") == ".sync"
    assert run_and_wait(CHILD) is None and run_and_wait(CHILD + ":2") is None
    assert run_and_wait("arn:aws:states:::glue:startJobRun") is None
    assert run_and_wait("arn:aws:states:::sqs:sendMessage.waitForTaskToken") is None


def test_the_mode_is_the_http_bindings_and_a_built_in_answers_when_done() -> None:
    assert mode(GLUE, {}, [{"resource": GLUE, "http": {"url": URL, "sync": "answer"}}]) == ANSWER
    assert mode(BATCH, {}, [{"resource": "*batch:*", "http": {"url": URL, "sync": "callback"}}]) == CALLBACK
    assert mode(GLUE, {}, [{"resource": GLUE, "http": {"url": URL}}]) is None
    assert mode(GLUE, {}, []) is None
    assert mode(GLUE, {}, [{"resource": GLUE, "llm": {}}]) == ANSWER
    # a mode on a binding that also takes Resources that do not wait is ignored for them
    assert (
        mode("arn:aws:states:::glue:getJobRun", {}, [{"resource": "*glue:*", "http": {"url": URL, "sync": "answer"}}])
        is None
    )


def test_a_binding_names_one_of_the_two_modes() -> None:
    assert check_bindings([{"resource": GLUE, "http": {"url": URL, "sync": "answer"}}]) == []
    assert check_bindings([{"resource": GLUE, "http": {"url": URL, "sync": "callback"}}]) == []
    assert check_bindings([{"resource": GLUE, "http": {"url": URL, "sync": "poll"}}]) == [
        ("/resources/0/http/sync", 'sync is "answer" or "callback" (how a .sync Resource learns the work ended)')
    ]
    # the token's header is Lodestone's own
    assert check_bindings([{"resource": GLUE, "http": {"url": URL, "headers": {"Lodestone-Task-Token": "x"}}}]) == [
        (
            "/resources/0/http/headers/Lodestone-Task-Token",
            "'Lodestone-Task-Token' is not a header name a binding may set",
        )
    ]


def test_a_bound_run_and_wait_task_with_no_mode_is_refused_when_stored() -> None:
    machine = _machine(GLUE, BATCH, CHILD, "arn:aws:states:::ecs:runTask.sync")
    bindings = [
        {"resource": GLUE, "http": {"url": URL}},
        {"resource": BATCH, "http": {"url": URL, "sync": "callback"}},
    ]
    # ecs is unbound (bindings.unbound reports it), the child execution needs no binding
    assert unmoded(machine, bindings) == [("/States/T0/Resource", GLUE)]
    definition = {"key": "jobs", "kind": "state_machine", "state_machine": machine, "resources": bindings}
    found = [(p.pointer, p.code) for p in machine_problems(definition)]
    assert found == [
        ("/state_machine/States/T3/Resource", "unbound_resource"),
        ("/state_machine/States/T0/Resource", "sync_mode_required"),
    ]
    message = next(p.message for p in machine_problems(definition) if p.code == "sync_mode_required")
    assert GLUE in message and '"sync": "answer"' in message and '"sync": "callback"' in message


def test_the_inventory_reports_a_run_and_wait_task_only_when_no_mode_is_named() -> None:
    machine = _machine(GLUE, BATCH, CHILD)
    unmoded_bindings = [{"resource": "*", "http": {"url": URL}}]
    assert [(f.name, f.pointer) for f in inventory(machine, unmoded_bindings).unsupported] == [
        (".sync", "/States/T0/Resource"),
        (".sync:2", "/States/T1/Resource"),
    ]
    assert [(f.name, f.pointer) for f in inventory(machine, []).unsupported] == [
        (".sync", "/States/T0/Resource"),
        (".sync:2", "/States/T1/Resource"),
    ]
    moded = [{"resource": "*", "http": {"url": URL, "sync": "answer"}}]
    assert inventory(machine, moded).unsupported == []


def test_suggest_drafts_answer_for_a_run_and_wait_resource() -> None:
    assert suggest(_machine(GLUE, BATCH, CHILD, "arn:aws:states:::glue:getJobRun")) == [
        {"resource": GLUE, "http": {"url": f"{PLACEHOLDER_HOST}/glue-start-job-run-sync", "sync": "answer"}},
        {"resource": BATCH, "http": {"url": f"{PLACEHOLDER_HOST}/batch-submit-job-sync-2", "sync": "answer"}},
        {"resource": "arn:aws:states:::glue:getJobRun", "http": {"url": f"{PLACEHOLDER_HOST}/glue-get-job-run"}},
    ]
