"""Resource bindings (lodestone/asl/bindings.py): what each Task's Resource resolves to, and
which Tasks of a definition nothing binds. Function names in the forms Lambda's FunctionName
accepts (API reference, Invoke: name, name:qualifier, partial ARN, full ARN)."""

import pytest

from lodestone.asl.bindings import Resolved, check_bindings, function_name, resolve, unbound
from lodestone.tenant_secrets import BUILTIN_SECRET_NAMES

INVOKE = "arn:aws:states:::lambda:invoke"
CHECK = {"function": "CheckStock", "http": {"url": "https://svc.example/check"}}
NOTIFY = {"function": "Notify*", "http": {"url": "https://svc.example/notify", "method": "POST"}}
SNS = {"resource": "arn:aws:states:::sns:publish", "http": {"url": "https://svc.example/sns"}}
SUMMARIZE = {"resource": "arn:aws:lambda:*:*:function:Summarize*", "llm": {"model": "gpt-4o-mini"}}
REPORT = {"resource": "lodestone:report", "render": {"format": "pdf"}}
BINDINGS = [CHECK, NOTIFY, SNS, SUMMARIZE, REPORT]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("CheckStock", ("CheckStock", None)),
        ("CheckStock:prod", ("CheckStock", "prod")),
        ("CheckStock:$LATEST", ("CheckStock", "$LATEST")),
        ("123456789012:function:CheckStock", ("CheckStock", None)),
        ("123456789012:function:CheckStock:7", ("CheckStock", "7")),
        ("arn:aws:lambda:us-west-2:123456789012:function:CheckStock", ("CheckStock", None)),
        ("arn:aws:lambda:us-west-2:123456789012:function:CheckStock:live", ("CheckStock", "live")),
        ("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:Check", ("Check", None)),
        ("${CheckStockFunctionArn}", ("${CheckStockFunctionArn}", None)),
        ("arn:aws:sqs:us-west-2:123456789012:function:Queue", None),
        ("", None),
    ],
)
def test_function_names_in_every_form(value, expected):
    assert function_name(value) == expected


@pytest.mark.parametrize(
    "name",
    [
        "CheckStock",
        "CheckStock:prod",
        "123456789012:function:CheckStock",
        "arn:aws:lambda:eu-west-1:123456789012:function:CheckStock",
        "arn:aws:lambda:eu-west-1:123456789012:function:CheckStock:prod",
    ],
)
def test_lambda_invoke_binds_by_function_name(name):
    got = resolve(INVOKE, {"FunctionName": name, "Payload": {"sku": 1}}, BINDINGS)
    assert got == Resolved("http", {"url": "https://svc.example/check"}, "lambda_invoke", "CheckStock")


def test_a_qualified_pattern_binds_only_that_qualifier():
    bindings = [{"function": "Check:prod", "http": {"url": "https://prod.example"}}, CHECK]
    assert resolve(INVOKE, {"FunctionName": "Check:prod"}, bindings).settings == {"url": "https://prod.example"}
    assert resolve(INVOKE, {"FunctionName": "Check", "Qualifier": "prod"}, bindings).settings == {
        "url": "https://prod.example"
    }
    assert resolve(INVOKE, {"FunctionName": "Check:beta"}, bindings) is None


def test_a_bare_lambda_arn_binds_by_its_own_name_with_the_json_shape():
    arn = "arn:aws:lambda:us-east-1:123456789012:function:NotifyCustomer"
    got = resolve(arn, {"anything": 1}, BINDINGS)
    assert got == Resolved("http", NOTIFY["http"], "lambda_arn", "NotifyCustomer")


def test_wildcards_match_any_run_and_nothing_else_is_special():
    got = resolve("arn:aws:lambda:us-east-1:123456789012:function:SummarizeReviews", {}, BINDINGS)
    assert got == Resolved("llm", {"model": "gpt-4o-mini"}, "lambda_arn", "SummarizeReviews")
    literal = [{"function": "a?c[1]", "http": {"url": "https://x.example"}}]
    assert resolve(INVOKE, {"FunctionName": "a?c[1]"}, literal) is not None
    assert resolve(INVOKE, {"FunctionName": "abc1"}, literal) is None
    assert resolve(INVOKE, {"FunctionName": "Notify"}, BINDINGS).function == "Notify"  # * matches nothing too


def test_first_matching_binding_wins():
    first = {"function": "Notify*", "http": {"url": "https://first.example"}}
    second = {"function": "NotifyCustomer", "http": {"url": "https://second.example"}}
    got = resolve(INVOKE, {"FunctionName": "NotifyCustomer"}, [first, second])
    assert got.settings == {"url": "https://first.example"}


def test_other_service_integrations_bind_by_resource_with_their_own_shape():
    assert resolve("arn:aws:states:::sns:publish", {"Message": "hi"}, BINDINGS) == Resolved(
        "http", SNS["http"], "plain", None
    )
    assert resolve("lodestone:report", {}, BINDINGS) == Resolved("render", {"format": "pdf"}, "plain", None)
    assert resolve("arn:aws:states:::dynamodb:putItem", {}, BINDINGS) is None
    assert resolve("arn:aws:states:::aws-sdk:s3:getObject", {}, BINDINGS) is None


def test_natives_and_built_ins_need_no_binding():
    assert resolve("arn:aws:states:::http:invoke", {"ApiEndpoint": "https://x"}, []) == Resolved(
        "http", {}, "http_invoke", None
    )
    assert resolve("arn:aws:states:::bedrock:invokeModel", {"ModelId": "m"}, []) == Resolved("llm", {}, "bedrock", None)
    for handler in ("llm", "render", "deliver", "http"):
        assert resolve(f"lodestone:{handler}", {}, []) == Resolved(handler, {}, "plain", None)


def test_a_binding_goes_before_a_native_and_keeps_the_resources_shape():
    bound = [{"resource": "arn:aws:states:::http:invoke", "http": {"url": "https://mine.example"}}]
    got = resolve("arn:aws:states:::http:invoke", {"ApiEndpoint": "https://x"}, bound)
    assert got == Resolved("http", {"url": "https://mine.example"}, "http_invoke", None)


def test_a_callback_resource_resolves_as_its_request_does():
    got = resolve("arn:aws:states:::lambda:invoke.waitForTaskToken", {"FunctionName": "CheckStock"}, BINDINGS)
    assert got == Resolved("http", CHECK["http"], "lambda_invoke", "CheckStock")
    sqs = "arn:aws:states:::sqs:sendMessage"
    for pattern in (sqs, sqs + ".waitForTaskToken", "*"):
        bound = [{"resource": pattern, "http": {"url": "https://q.example"}}]
        assert resolve(sqs + ".waitForTaskToken", {}, bound) == Resolved("http", {"url": "https://q.example"})
    assert resolve("lodestone:deliver.waitForTaskToken", {}, []) == Resolved("deliver", {}, "plain")
    assert resolve(sqs + ".waitForTaskToken", {}, BINDINGS) is None


def test_an_unnamed_or_malformed_payload_is_unbound():
    assert resolve(INVOKE, {}, BINDINGS) is None
    assert resolve(INVOKE, None, BINDINGS) is None
    assert resolve(INVOKE, {"FunctionName": 7}, BINDINGS) is None


def machine(states, **top):
    return {"StartAt": next(iter(states)), "States": states, **top}


def task(resource, **fields):
    return {"Type": "Task", "Resource": resource, "End": True, **fields}


def test_unbound_lists_every_unbound_task_with_its_pointer_nested_ones_too():
    check = task(INVOKE, Parameters={"FunctionName": "CheckStock", "Payload.$": "$"})
    fan = {
        "Type": "Parallel",
        "Branches": [
            machine({"Ok": task("arn:aws:states:::sns:publish")}),
            machine({"Put": task("arn:aws:states:::dynamodb:putItem")}),
        ],
    }
    lost = task(INVOKE, Parameters={"FunctionName": "Unknown"})
    each = {
        "Type": "Map",
        "End": True,
        "ItemProcessor": machine(
            {"Lost/One": {**lost, "End": False, "Next": "Send"}, "Send": task("arn:aws:states:::sqs:sendMessage")}
        ),
    }
    sm = machine({"Check": {**check, "End": False, "Next": "Fan"}, "Fan": {**fan, "Next": "Each"}, "Each": each})
    assert unbound(sm, BINDINGS) == [
        ("/States/Fan/Branches/1/States/Put/Resource", "arn:aws:states:::dynamodb:putItem"),
        ("/States/Each/ItemProcessor/States/Lost~1One/Resource", INVOKE),
        ("/States/Each/ItemProcessor/States/Send/Resource", "arn:aws:states:::sqs:sendMessage"),
    ]


def test_unbound_is_empty_when_everything_binds():
    a = task(INVOKE, Parameters={"FunctionName": "arn:aws:lambda:r:1:function:NotifyAll:2"})
    b = task("arn:aws:states:::http:invoke", Parameters={"ApiEndpoint": "https://x"})
    sm = machine(
        {"A": {**a, "End": False, "Next": "B"}, "B": {**b, "End": False, "Next": "C"}, "C": task("lodestone:llm")}
    )
    assert unbound(sm, BINDINGS) == []


def test_a_computed_function_name_is_left_to_run_time():
    dyn = task(INVOKE, Parameters={"FunctionName.$": "$.fn"})
    ata = task(INVOKE, QueryLanguage="JSONata", Arguments={"FunctionName": "{% $states.input.fn %}"})
    whole = task(INVOKE, QueryLanguage="JSONata", Arguments="{% $states.input %}")
    sm = machine({"Dyn": {**dyn, "End": False, "Next": "Ata"}, "Ata": {**ata, "End": False, "Next": "W"}, "W": whole})
    assert unbound(sm, []) == []


def test_jsonata_arguments_with_a_literal_function_name_are_checked_at_store_time():
    sm = machine({"Ata": task(INVOKE, QueryLanguage="JSONata", Arguments={"FunctionName": "Missing"})})
    assert unbound(sm, BINDINGS) == [("/States/Ata/Resource", INVOKE)]
    sm = machine({"Ata": task(INVOKE, QueryLanguage="JSONata", Arguments={"FunctionName": "CheckStock"})})
    assert unbound(sm, BINDINGS) == []


def test_a_lambda_invoke_without_any_function_name_is_unbound():
    assert unbound(machine({"A": task(INVOKE)}), BINDINGS) == [("/States/A/Resource", INVOKE)]


def test_the_contracts_example_bindings_are_valid():
    example = [
        CHECK,
        {
            "function": "Notify*",
            "http": {
                "url": "https://svc.example/notify",
                "method": "POST",
                "headers": {"Authorization": {"secret": "svc_token"}, "X-Static": "v"},
                "timeout_seconds": 20,
            },
        },
        SNS,
        SUMMARIZE,
        REPORT,
        {"resource": "lodestone:deliver", "deliver": {"target": {"type": "webhook", "url": "https://h.example/x"}}},
    ]
    assert check_bindings(example) == []
    assert check_bindings(None) == []


def test_check_bindings_reports_every_problem_with_its_pointer():
    bad = [
        "nope",
        {"http": {"url": "https://x.example"}},
        {"function": "A", "resource": "B", "http": {"url": "https://x.example"}},
        {"function": "A", "http": {"url": "https://x.example"}, "llm": {}},
        {"function": "", "render": {"format": "docx"}},
        {"function": "A", "http": {"url": "ftp://x", "method": "TRACE", "timeout_seconds": 0, "extra": 1}},
        {"function": "A", "http": {"url": "https://x", "headers": {"Host": "h", "X": {"secret": "webhook_secret"}}}},
        {"function": "A", "llm": {"max_tokens": 0, "temperature": 3, "response_format": "xml"}},
        {"function": "A", "deliver": {"target": {"type": "email", "to": "not-an-address"}}},
        {"function": "A", "http": {"headers": {"X": "a\nb", "Y": {"secret": "Bad Name"}}}},
    ]
    assert check_bindings(bad) == [
        ("/resources/0", "a binding must be an object"),
        (
            "/resources/1",
            "a binding has exactly one of `function` (a Lambda function name) or `resource` (a Resource)",
        ),
        (
            "/resources/2",
            "a binding has exactly one of `function` (a Lambda function name) or `resource` (a Resource)",
        ),
        ("/resources/3", "a binding has exactly one handler: http, llm, render or deliver"),
        ("/resources/4/function", "must be a name or pattern: a non-empty string of at most 2000 characters"),
        ("/resources/4/render/format", "format is html or pdf"),
        ("/resources/5/http/extra", "unknown field 'extra'"),
        ("/resources/5/http/url", "url must be an http or https URL"),
        ("/resources/5/http/method", "method is one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        ("/resources/5/http/timeout_seconds", "timeout_seconds is a number above 0, at most 3600"),
        ("/resources/6/http/headers/Host", "'Host' is not a header name a binding may set"),
        (
            "/resources/6/http/headers/X/secret",
            "'webhook_secret' is Lodestone's own secret: it is never sent in a header",
        ),
        ("/resources/7/llm/max_tokens", "max_tokens is a positive integer"),
        ("/resources/7/llm/temperature", "temperature is a number from 0 to 2"),
        ("/resources/7/llm/response_format", "response_format is json or text"),
        ("/resources/8/deliver/target/to", "to must be an email address"),
        ("/resources/9/http", "'url' is required"),
        ("/resources/9/http/headers/X", 'a header value is a string (one line) or {"secret": "<name>"}'),
        (
            "/resources/9/http/headers/Y/secret",
            "a secret name is 1 to 64 of a-z, 0-9 and _, starting with a letter",
        ),
    ]
    assert check_bindings({"function": "A"}) == [("/resources", "resources must be a list of bindings")]


def test_lodestones_own_secrets_are_the_tenant_secret_names():
    from lodestone.asl.bindings_check import LODESTONE_SECRETS

    assert LODESTONE_SECRETS == set(BUILTIN_SECRET_NAMES)


def test_a_callback_lambda_invoke_is_bound_by_its_function_name():
    machine = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": f"{INVOKE}.waitForTaskToken",
                "Parameters": {"FunctionName": "CheckStock", "Payload": {"t.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    assert unbound(machine, BINDINGS) == []
    assert unbound(machine, [SNS]) == [("/States/Ask/Resource", f"{INVOKE}.waitForTaskToken")]
