"""The static inventory of a state machine: states by type, each Task's resource and how it
resolves, and every feature Lodestone does not run yet, each with its pointer."""

from lodestone.asl.inventory import inventory
from lodestone.asl.suggest import PLACEHOLDER_HOST, suggest

LAMBDA = "arn:aws:states:::lambda:invoke"
MACHINE = {
    "StartAt": "Score",
    "States": {
        "Score": {"Type": "Task", "Resource": LAMBDA, "Parameters": {"FunctionName": "Score:prod"}, "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Ask",
                    "States": {
                        "Ask": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                            "Parameters": {"MessageBody": {"token.$": "$$.Task.Token"}},
                            "End": True,
                        }
                    },
                },
                {
                    "StartAt": "Call",
                    "States": {
                        "Call": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::http:invoke",
                            "Parameters": {
                                "ApiEndpoint": "https://x.example.com",
                                "Method": "POST",
                                "Authentication": {"ConnectionArn": "arn:aws:events:us-east-1:1:connection/c"},
                                "Transform": {"RequestBodyEncoding": "URL_ENCODED"},
                            },
                            "End": True,
                        }
                    },
                },
            ],
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Child",
                "States": {
                    "Child": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::states:startExecution.sync:2",
                        "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:c"},
                        "End": True,
                    }
                },
            },
            "Next": "Poll",
        },
        "Poll": {"Type": "Task", "Resource": "arn:aws:states:us-east-1:1:activity:poller", "Next": "Pick"},
        "Pick": {
            "Type": "Task",
            "Resource": LAMBDA,
            "Parameters": {"FunctionName.$": "$.fn"},
            "Next": "Crawl",
        },
        "Crawl": {"Type": "Task", "Resource": "arn:aws:states:::glue:startJobRun.sync", "End": True},
    },
}


def test_states_are_counted_by_type_nested_ones_included() -> None:
    assert inventory(MACHINE).states == {"Map": 1, "Parallel": 1, "Task": 7}


def test_each_task_resource_says_how_it_resolves() -> None:
    bindings = [{"function": "Score:prod", "http": {"url": "https://s.example.com"}}]
    found = {r.pointer: (r.status, r.handler, r.function) for r in inventory(MACHINE, bindings).resources}
    assert found == {
        "/States/Score/Resource": ("bound", "http", "Score"),
        "/States/Fan/Branches/0/States/Ask/Resource": ("unbound", None, None),
        "/States/Fan/Branches/1/States/Call/Resource": ("native", "http", None),
        "/States/Each/ItemProcessor/States/Child/Resource": ("native", "child_execution", None),
        "/States/Poll/Resource": ("unbound", None, None),
        "/States/Pick/Resource": ("at_run_time", None, None),
        "/States/Crawl/Resource": ("unbound", None, None),
    }


def test_an_alias_binding_does_not_bind_another_alias() -> None:
    bindings = [{"function": "Score:test", "http": {"url": "https://s.example.com"}}]
    score = inventory(MACHINE, bindings).resources[0]
    assert (score.status, score.function) == ("unbound", "Score")


def test_a_binding_for_a_native_resource_makes_it_bound() -> None:
    bindings = [{"resource": "arn:aws:states:::http:invoke", "http": {"url": "https://proxy.example.com"}}]
    call = inventory(MACHINE, bindings).resources[2]
    assert call.status == "bound"


def test_every_unsupported_feature_is_named_with_its_pointer() -> None:
    found = [(f.name, f.pointer) for f in inventory(MACHINE).unsupported]
    # The callback Task (Ask) runs, and reads its own token, and the child execution (Child)
    # runs: nothing to report there.
    assert found == [
        ("http:invoke.Transform", "/States/Fan/Branches/1/States/Call/Parameters/Transform"),
        ("http:invoke.Authentication", "/States/Fan/Branches/1/States/Call/Parameters/Authentication"),
        ("activity", "/States/Poll/Resource"),
        (".sync", "/States/Crawl/Resource"),
    ]


def test_a_machine_of_supported_features_has_none_to_report() -> None:
    machine = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}}
    found = inventory(machine)
    assert (found.states, found.resources, found.unsupported) == ({"Pass": 1, "Succeed": 1}, [], [])


def test_suggest_drafts_a_binding_per_function_and_resource_but_none_for_native_ones() -> None:
    # native: http:invoke, bedrock:invokeModel, lodestone:*, and states:startExecution (a child)
    assert suggest(MACHINE) == [
        {"function": "Score", "http": {"url": f"{PLACEHOLDER_HOST}/score"}},
        {
            "resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "http": {"url": f"{PLACEHOLDER_HOST}/sqs-send-message-wait-for-task-token"},
        },
        {
            "resource": "arn:aws:states:us-east-1:1:activity:poller",
            "http": {"url": f"{PLACEHOLDER_HOST}/activity-poller"},
        },
        {
            "resource": "arn:aws:states:::glue:startJobRun.sync",
            "http": {"url": f"{PLACEHOLDER_HOST}/glue-start-job-run-sync", "sync": "answer"},
        },
        {"function": "*", "http": {"url": f"{PLACEHOLDER_HOST}/lambda"}},
    ]


def test_a_task_token_read_outside_a_callback_task_is_reported() -> None:
    machine = {
        "StartAt": "Show",
        "States": {"Show": {"Type": "Pass", "Parameters": {"t.$": "$$.Task.Token"}, "End": True}},
    }
    assert [(f.name, f.pointer) for f in inventory(machine).unsupported] == [
        ("$$.Task.Token", "/States/Show/Parameters/t.$")
    ]


def test_a_distributed_map_is_reported_only_where_it_reads_or_writes_what_lodestone_does_not():
    def each(**fields):  # type: ignore[no-untyped-def]
        processor = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
        return {
            "StartAt": "Each",
            "States": {"Each": {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}},
        }

    upload = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV"}, "Parameters": {}}
    listing = {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "b"}}
    manifest = {**upload, "ReaderConfig": {"InputType": "MANIFEST"}}
    writer = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "lodestone"}}
    assert (
        inventory(each(ItemReader=upload, ItemBatcher={"MaxItemsPerBatch": 5}, ResultWriter=writer)).unsupported == []
    )
    found = [(f.name, f.pointer) for f in inventory(each(ItemReader=listing)).unsupported]
    assert found == [("Map.ItemReader", "/States/Each/ItemReader")]
    assert [f.name for f in inventory(each(ItemReader=manifest)).unsupported] == ["Map.ItemReader"]
    configured = {**writer, "WriterConfig": {"OutputType": "JSONL"}}
    assert [f.name for f in inventory(each(ResultWriter=configured)).unsupported] == ["Map.ResultWriter"]
    jsonata = {**each(ItemReader=upload), "QueryLanguage": "JSONata"}
    assert [(f.name, f.pointer) for f in inventory(jsonata).unsupported] == [("Map.JSONata", "/States/Each")]
