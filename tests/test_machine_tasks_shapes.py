"""A state machine Task's result and error shapes, and how each handler reads its Task's payload,
without a server: the envelopes Step Functions' own integrations return (developer guide,
"Invoke Lambda with Step Functions", "Call HTTPS APIs"; Bedrock InvokeModel's response)."""

import json

import pytest

from activities.machine_tasks_bedrock import bedrock_body, bedrock_params
from activities.machine_tasks_deliver import delivery_webhook_id, target_index
from activities.machine_tasks_http import http_call
from activities.machine_tasks_llm import answer_json, chat_request, llm_params
from activities.machine_tasks_render import render_params
from activities.machine_tasks_shapes import Answer, failure, request_id, shaped
from lodestone.asl.bindings import Resolved
from lodestone.llm import ChatRequest, Completion

RID = "6b3bebdb-9251-453a-ae45-512d9e2bf4d3"


def test_an_optimized_lambda_invoke_wraps_the_json_in_payload_with_status_200():
    got = shaped("lambda_invoke", Answer({"ok": True}), RID)
    assert got["Payload"] == {"ok": True}
    assert got["StatusCode"] == 200 and got["ExecutedVersion"] == "$LATEST"
    assert got["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert got["SdkResponseMetadata"] == {"RequestId": RID}


def test_a_bare_lambda_arn_and_a_plain_resource_return_the_json_itself():
    assert shaped("lambda_arn", Answer({"ok": True}), RID) == {"ok": True}
    assert shaped("plain", Answer([1, 2]), RID) == [1, 2]


def test_http_invoke_has_headers_response_body_status_code_and_text():
    answer = Answer({"id": 1}, 201, [("content-type", "application/json"), ("set-cookie", "a"), ("set-cookie", "b")])
    assert shaped("http_invoke", answer, RID) == {
        "Headers": {"content-type": ["application/json"], "set-cookie": ["a", "b"]},
        "ResponseBody": {"id": 1},
        "StatusCode": 201,
        "StatusText": "Created",
    }


def test_bedrock_returns_body_and_content_type():
    assert shaped("bedrock", Answer({"x": 1}), RID) == {"Body": {"x": 1}, "ContentType": "application/json"}


@pytest.mark.parametrize("shape", ["lambda_invoke", "lambda_arn", "http_invoke", "plain", "bedrock"])
def test_an_error_body_names_the_error_whatever_the_shape(shape):
    e = failure(shape, Answer({"error": "OutOfStock", "cause": "sku 42"}, 409))
    assert (e.type, e.message, e.non_retryable) == ("OutOfStock", "sku 42", True)
    e = failure(shape, Answer({"error": "Bad", "cause": {"sku": 42}}, 400))
    assert (e.type, json.loads(e.message)) == ("Bad", {"sku": 42})


def test_a_lambda_runtimes_error_object_names_the_error():
    body = {"errorType": "ValueError", "errorMessage": "no sku", "stackTrace": []}
    e = failure("lambda_invoke", Answer(body, 500))
    assert e.type == "ValueError" and json.loads(e.message) == body


@pytest.mark.parametrize(
    "shape, error",
    [
        ("lambda_invoke", "Lambda.ServiceException"),
        ("lambda_arn", "Lambda.ServiceException"),
        ("http_invoke", "States.Http.StatusCode.503"),
        ("plain", "States.TaskFailed"),
        ("bedrock", "States.TaskFailed"),
    ],
)
def test_a_plain_non_2xx_answer_is_the_resources_own_error(shape, error):
    e = failure(shape, Answer("overloaded", 503))
    assert e.type == error and e.non_retryable
    assert "overloaded" in e.message


def test_the_request_id_is_stable_per_attempt():
    assert request_id("j", "A", 1) == request_id("j", "A", 1)
    assert len({request_id("j", "A", 1), request_id("j", "A", 2), request_id("j", "B", 1)}) == 3


def test_http_invoke_calls_its_api_endpoint_with_its_parameters():
    payload = {
        "ApiEndpoint": "https://api.example/v1/customers",
        "Method": "get",
        "Headers": {"X-A": "1"},
        "QueryParameters": {"limit": "2"},
        "Authentication": {"ConnectionArn": "arn:aws:events:us-east-2:1:connection/x"},
    }
    call = http_call("arn:aws:states:::http:invoke", Resolved("http", {}, "http_invoke"), payload)
    assert (call.url, call.method, call.headers, call.query, call.has_body) == (
        "https://api.example/v1/customers",
        "GET",
        {"X-A": "1"},
        {"limit": "2"},
        False,
    )


def test_a_binding_goes_before_the_http_invoke_parameters():
    settings = {"url": "https://mine.example/api", "headers": {"X-A": "bound"}, "timeout_seconds": 3}
    payload = {"ApiEndpoint": "https://api.example", "Method": "POST", "Headers": {"X-A": "1", "X-B": "2"}}
    call = http_call("arn:aws:states:::http:invoke", Resolved("http", settings, "http_invoke"), payload)
    assert (call.url, call.headers, call.timeout, call.has_body) == (
        "https://mine.example/api",
        {"X-A": "bound", "X-B": "2"},
        3,
        False,
    )
    call = http_call(
        "arn:aws:states:::http:invoke", Resolved("http", {}, "http_invoke"), {**payload, "RequestBody": {"a": 1}}
    )
    assert (call.method, call.body, call.has_body) == ("POST", {"a": 1}, True)


def test_a_bound_lambda_posts_its_payload_field_or_else_the_whole_payload():
    bound = Resolved("http", {"url": "https://svc.example/check"}, "lambda_invoke", "Check")
    call = http_call("arn:aws:states:::lambda:invoke", bound, {"FunctionName": "Check", "Payload": {"sku": 1}})
    assert (call.url, call.method, call.body) == ("https://svc.example/check", "POST", {"sku": 1})
    call = http_call("arn:aws:states:::lambda:invoke", bound, {"FunctionName": "Check"})
    assert call.body == {"FunctionName": "Check"}


def test_lodestone_http_takes_its_settings_from_the_parameters():
    payload = {"url": "https://svc.example/x", "method": "PUT", "body": [1], "query": {"q": "a"}, "headers": {"A": "b"}}
    call = http_call("lodestone:http", Resolved("http", {}, "plain"), payload)
    assert (call.url, call.method, call.body, call.query, call.headers) == (
        "https://svc.example/x",
        "PUT",
        [1],
        {"q": "a"},
        {"A": "b"},
    )


def test_llm_parameters_from_a_built_in_and_from_a_bound_lambdas_data():
    built_in = Resolved("llm", {"model": "m1", "system": "Be brief."}, "plain")
    assert llm_params(built_in, "lodestone:llm", {"prompt": "Hi", "model": "m2"}) == {
        "model": "m2",
        "system": "Be brief.",
        "prompt": "Hi",
    }
    bound = Resolved("llm", {"system": "Summarize."}, "lambda_invoke", "Summarize")
    got = llm_params(bound, "arn:aws:states:::lambda:invoke", {"FunctionName": "Summarize", "Payload": {"n": 1}})
    assert got == {"system": "Summarize.", "prompt": '{"n": 1}'}


def test_a_chat_request_is_checked():
    assert chat_request({"prompt": "Hi", "max_tokens": 5, "response_format": "json"}) == ChatRequest(
        [{"role": "user", "content": "Hi"}], None, 5, None, True
    )
    for bad in (
        {},
        {"prompt": ""},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"prompt": "x", "max_tokens": 0},
    ):
        with pytest.raises(Exception) as raised:
            chat_request(bad)
        assert raised.value.type == "States.TaskFailed"


def test_a_json_answer_is_parsed_also_inside_a_code_fence():
    assert answer_json('{"a": 1}') == {"a": 1}
    assert answer_json('```json\n{"a": [1]}\n```') == {"a": [1]}
    with pytest.raises(Exception) as raised:
        answer_json("not json")
    assert raised.value.type == "States.TaskFailed"


COMPLETION = Completion("Hello there", "m", 12, 3, 0.0)


def test_bedrock_anthropic_messages_in_and_out():
    payload = {
        "ModelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "Body": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        },
    }
    assert bedrock_params(payload) == {
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "Be brief.",
        "max_tokens": 100,
    }
    body = bedrock_body(payload, COMPLETION, RID)
    assert body["content"] == [{"type": "text", "text": "Hello there"}]
    assert body["usage"] == {"input_tokens": 12, "output_tokens": 3} and body["role"] == "assistant"


def test_bedrock_titan_and_llama_in_and_out():
    titan = {"ModelId": "amazon.titan-text-express-v1", "Body": {"inputText": "Hi", "textGenerationConfig": {}}}
    assert bedrock_params(titan) == {"prompt": "Hi"}
    assert bedrock_body(titan, COMPLETION, RID)["results"][0]["outputText"] == "Hello there"
    llama = {"ModelId": "us.meta.llama3-8b-instruct-v1:0", "Body": json.dumps({"prompt": "Hi", "max_gen_len": 9})}
    assert bedrock_params(llama) == {"prompt": "Hi", "max_tokens": 9}
    assert bedrock_body(llama, COMPLETION, RID)["generation"] == "Hello there"


def test_render_parameters_or_a_bound_lambdas_data():
    built_in = Resolved("render", {"template": "<p>{{ a }}</p>"}, "plain")
    assert render_params(built_in, "lodestone:render", {"data": {"a": 1}}) == {
        "template": "<p>{{ a }}</p>",
        "data": {"a": 1},
    }
    bound = Resolved("render", {"template": "t", "format": "pdf"}, "lambda_arn", "Report")
    assert render_params(bound, "arn:aws:lambda:r:1:function:Report", {"a": 1}) == {
        "template": "t",
        "format": "pdf",
        "data": {"a": 1},
    }


def test_one_delivery_id_and_row_per_task_path():
    assert delivery_webhook_id("j", "Fan/1/Send") == delivery_webhook_id("j", "Fan/1/Send")
    assert delivery_webhook_id("j", "Fan/1/Send") != delivery_webhook_id("j", "Fan/2/Send")
    assert target_index("Send") == target_index("Send") < 0
    assert target_index("Send", 1) == target_index("Send") - 1
