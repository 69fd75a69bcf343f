"""State machine Tasks bound to http, through the real activity (ActivityEnvironment) on the
session's PostgreSQL and secrets, calling a scripted endpoint on loopback: the request is the
Task's payload, signed per Standard Webhooks with the tenant's secret, through the outbound
guard, with header values from the tenant's own secrets; the answer comes back in the shape the
Resource's own service returns, and a non-2xx answer as the error the machine can catch."""

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.machine_tasks import MachineTaskActivities
from devstack.task_service import Reply, TaskService
from lodestone.netguard import guarded_client
from lodestone.settings import Settings
from lodestone.webhooks import verify
from services.tenants import create_tenant, set_secret_refs
from tests.machine_tasks_support import build, close, task

INVOKE = "arn:aws:states:::lambda:invoke"
HTTP_INVOKE = "arn:aws:states:::http:invoke"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[TaskService]:
    """Answers each route as scripted, or echoes the JSON it was sent as {"echo": ...}."""
    with TaskService(None, {}, otherwise=lambda body: {"echo": body}) as server:
        yield server


@pytest.fixture(scope="module")
def task_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"secrets_file_root": settings.data_path / "secrets"})


@pytest.fixture(scope="module")
async def tenant(engine, task_settings):  # type: ignore[no-untyped-def]
    row = await create_tenant(engine, "Machine tasks (http)")
    path = task_settings.data_path / "secrets" / "tenants" / str(row.id) / "svc_token"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Bearer s3cret-of-the-tenant\n")
    await set_secret_refs(engine, row.id, {"svc_token": f"file:{path}"})
    return row


@pytest.fixture(scope="module")
async def acts(task_settings, engine) -> AsyncIterator[MachineTaskActivities]:
    built = build(task_settings, engine)
    yield built
    await close(built)


async def run(acts: MachineTaskActivities, inp):  # type: ignore[no-untyped-def]
    return await ActivityEnvironment().run(acts.run_task, inp)


async def fails(acts: MachineTaskActivities, inp) -> ApplicationError:  # type: ignore[no-untyped-def]
    with pytest.raises(ApplicationError) as raised:
        await run(acts, inp)
    assert raised.value.non_retryable, "the machine's Retry decides, never Temporal"
    return raised.value


def job() -> str:
    return str(uuid.uuid4())  # http Tasks write nothing under the job


async def test_lambda_invoke_posts_the_payload_signed_and_returns_the_payload_envelope(acts, tenant, endpoint):
    bindings = [{"function": "CheckStock", "http": {"url": f"{endpoint.url}/check"}}]
    payload = {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:CheckStock", "Payload": {"sku": 42}}
    job_id = job()
    got = await run(acts, task(tenant.id, job_id, "Check", INVOKE, payload, bindings))
    assert got["Payload"] == {"echo": {"sku": 42}} and got["StatusCode"] == 200
    [req] = endpoint.calls_to("check")
    assert (req.method, req.body) == ("POST", {"sku": 42})
    assert verify(tenant.webhook_secret, req.raw, req.headers) == {"sku": 42}
    # The same attempt signs with the same webhook-id; the machine's next attempt with another.
    await run(acts, task(tenant.id, job_id, "Check", INVOKE, payload, bindings))
    await run(acts, task(tenant.id, job_id, "Check", INVOKE, payload, bindings, attempt=2))
    ids = [r.headers["webhook-id"] for r in endpoint.calls_to("check")]
    assert ids[0] == ids[1] != ids[2]


async def test_a_bare_lambda_arn_returns_the_json_itself(acts, tenant, endpoint):
    bindings = [{"function": "Notify*", "http": {"url": f"{endpoint.url}/notify"}}]
    arn = "arn:aws:lambda:us-east-1:123456789012:function:NotifyCustomer"
    got = await run(acts, task(tenant.id, job(), "Notify", arn, {"to": "ann"}, bindings))
    assert got == {"echo": {"to": "ann"}}


async def test_http_invoke_calls_the_api_endpoint_and_returns_its_envelope(acts, tenant, endpoint):
    endpoint.routes["customers"] = [Reply(200, {"data": [1, 2]}, {"x-page": "1"})]
    payload = {
        "ApiEndpoint": f"{endpoint.url}/customers",
        "Method": "GET",
        "Headers": {"Accept": "application/json", "Content-Type": "application/json"},
        "QueryParameters": {"limit": "2"},
    }
    got = await run(acts, task(tenant.id, job(), "List", HTTP_INVOKE, payload, []))
    assert (got["StatusCode"], got["StatusText"], got["ResponseBody"]) == (200, "OK", {"data": [1, 2]})
    assert got["Headers"]["x-page"] == ["1"]
    [req] = endpoint.calls_to("customers")
    assert (req.method, req.query, req.headers["accept"]) == ("GET", {"limit": ["2"]}, "application/json")
    assert req.raw == b"" and "content-type" not in req.headers  # no body, so no Content-Type


async def test_a_header_secret_is_the_tenants_own_secret(acts, tenant, endpoint):
    headers = {"Authorization": {"secret": "svc_token"}, "X-Static": "v"}
    http = {"url": f"{endpoint.url}/sns", "headers": headers}
    bindings = [{"resource": "arn:aws:states:::sns:publish", "http": http}]
    got = await run(acts, task(tenant.id, job(), "Publish", "arn:aws:states:::sns:publish", {"Message": "m"}, bindings))
    assert got == {"echo": {"Message": "m"}}
    [req] = endpoint.calls_to("sns")
    assert (req.headers["authorization"], req.headers["x-static"]) == ("Bearer s3cret-of-the-tenant", "v")


async def test_a_secret_the_tenant_has_not_set_fails_the_task(acts, tenant, endpoint):
    headers = {"Authorization": {"secret": "other_token"}}
    bindings = [{"function": "F", "http": {"url": f"{endpoint.url}/never", "headers": headers}}]
    e = await fails(acts, task(tenant.id, job(), "F", INVOKE, {"FunctionName": "F"}, bindings))
    assert e.type == "States.TaskFailed" and "'other_token'" in e.message
    headers = {"Authorization": {"secret": "webhook_secret"}}  # Lodestone's own never leaves
    bindings = [{"function": "F", "http": {"url": f"{endpoint.url}/never", "headers": headers}}]
    e = await fails(acts, task(tenant.id, job(), "F", INVOKE, {"FunctionName": "F"}, bindings))
    assert e.type == "States.TaskFailed" and "never sent in a header" in e.message
    assert endpoint.calls_to("never") == []


async def test_an_error_body_names_the_error(acts, tenant, endpoint):
    endpoint.routes["stock"] = [Reply(409, {"error": "OutOfStock", "cause": "sku 42 is gone"})]
    bindings = [{"function": "Check", "http": {"url": f"{endpoint.url}/stock"}}]
    e = await fails(acts, task(tenant.id, job(), "Check", INVOKE, {"FunctionName": "Check", "Payload": {}}, bindings))
    assert (e.type, e.message) == ("OutOfStock", "sku 42 is gone")


@pytest.mark.parametrize(
    "resource, payload, error",
    [
        (INVOKE, {"FunctionName": "Down"}, "Lambda.ServiceException"),
        ("arn:aws:lambda:us-east-1:1:function:Down", {}, "Lambda.ServiceException"),
        ("arn:aws:states:::sqs:sendMessage", {}, "States.TaskFailed"),
    ],
)
async def test_a_plain_non_2xx_answer_is_the_resources_own_error(acts, tenant, endpoint, resource, payload, error):
    endpoint.routes["down"] = [Reply(500, b"internal trouble", {"content-type": "text/plain"})]
    bindings = [{"function": "Down", "http": {"url": f"{endpoint.url}/down"}}]
    bindings.append({"resource": "arn:aws:states:::sqs:*", "http": {"url": f"{endpoint.url}/down"}})
    e = await fails(acts, task(tenant.id, job(), "Down", resource, payload, bindings))
    assert e.type == error and "internal trouble" in e.message


async def test_http_invoke_non_2xx_is_its_status_code_error(acts, tenant, endpoint):
    endpoint.routes["broken"] = [Reply(500, {"message": "boom"})]
    payload = {"ApiEndpoint": f"{endpoint.url}/broken", "Method": "POST", "RequestBody": {"a": 1}}
    e = await fails(acts, task(tenant.id, job(), "Call", HTTP_INVOKE, payload, []))
    assert e.type == "States.Http.StatusCode.500"
    assert json.loads(e.message)["ResponseBody"] == {"message": "boom"}


async def test_the_guard_refuses_a_private_address(task_settings, engine, tenant, endpoint):
    guarded = build(task_settings, engine, http=guarded_client([]))  # loopback not allowed
    try:
        bindings = [{"function": "Check", "http": {"url": f"{endpoint.url}/private"}}]
        e = await fails(guarded, task(tenant.id, job(), "Check", INVOKE, {"FunctionName": "Check"}, bindings))
        assert e.type == "States.TaskFailed" and e.message.startswith("refused: ") and "127.0.0.1" in e.message
        payload = {"ApiEndpoint": "file:///etc/passwd", "Method": "GET"}
        e = await fails(guarded, task(tenant.id, job(), "Read", HTTP_INVOKE, payload, []))
        assert e.type == "States.TaskFailed" and "scheme 'file'" in e.message
    finally:
        await close(guarded)
    assert endpoint.calls_to("private") == []


async def test_a_refused_connection_is_the_resources_connection_error(acts, tenant):
    closed = "http://127.0.0.1:9/nothing"  # the discard port: nothing listens on loopback
    bindings = [{"function": "Gone", "http": {"url": closed}}]
    e = await fails(acts, task(tenant.id, job(), "Gone", INVOKE, {"FunctionName": "Gone"}, bindings))
    assert e.type == "States.TaskFailed" and "ConnectError" in e.message
    e = await fails(acts, task(tenant.id, job(), "Gone", HTTP_INVOKE, {"ApiEndpoint": closed, "Method": "GET"}, []))
    assert e.type == "States.Http.Socket"


async def test_an_answer_later_than_the_bindings_timeout_is_a_timeout(acts, tenant, endpoint):
    def slow(_body):  # type: ignore[no-untyped-def]
        time.sleep(1.5)
        return {}

    endpoint.routes["slow"] = slow
    bindings = [{"function": "Slow", "http": {"url": f"{endpoint.url}/slow", "timeout_seconds": 0.3}}]
    e = await fails(acts, task(tenant.id, job(), "Slow", INVOKE, {"FunctionName": "Slow"}, bindings))
    assert e.type == "States.Timeout"


async def test_a_dynamic_function_name_nothing_binds_fails_at_run_time(acts, tenant):
    e = await fails(acts, task(tenant.id, job(), "Dyn", INVOKE, {"FunctionName": "Computed"}, []))
    assert e.type == "States.TaskFailed" and e.message.startswith("Lodestone.UnboundResource: ")
    assert "'Computed'" in e.message
