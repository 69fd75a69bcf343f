"""Reading state machines out of ASL files and CloudFormation / SAM templates, with ${...}
placeholders resolved from a mapping, DefinitionSubstitutions and Fn::Sub variables."""

import json

import pytest

from lodestone.asl.templates import ImportSourceError, key_of, parse_document, state_machines, substitute

MACHINE = "AWS::StepFunctions::StateMachine"
ASL = {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${FnArn}", "End": True}}}

SAM_YAML = """
AWSTemplateFormatVersion: 2010-09-09
Transform: AWS::Serverless-2016-10-31
Resources:
  OrderStateMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachine/order.asl.json
      DefinitionSubstitutions:
        FnArn: !GetAtt OrderFunction.Arn
        Table: orders
  InlineMachine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition:
        StartAt: Get
        States:
          Get:
            Type: Task
            Resource: !Sub arn:${AWS::Partition}:states:::dynamodb:getItem
            Parameters:
              TableName: ${Table}
            Next: Hold
          Hold:
            Type: Wait
            Seconds: ${Delay}
            End: true
      DefinitionSubstitutions:
        Table: !Ref OrdersTable
        Delay: 30
  OrderFunction:
    Type: AWS::Serverless::Function
"""


def test_an_asl_document_is_one_machine_named_by_the_caller() -> None:
    [found] = state_machines(ASL, "order", {"FnArn": "arn:aws:lambda:us-east-1:1:function:Order"})
    assert (found.name, found.origin, found.unresolved) == ("order", "asl", [])
    assert found.state_machine["States"]["A"]["Resource"] == "arn:aws:lambda:us-east-1:1:function:Order"


def test_a_placeholder_without_a_value_is_kept_and_reported() -> None:
    [found] = state_machines(ASL, "order")
    assert found.unresolved == ["FnArn"]
    assert found.state_machine == ASL


def test_a_sam_template_yields_each_machine_with_its_substitutions() -> None:
    files = {"statemachine/order.asl.json": json.dumps(ASL)}
    document = parse_document(SAM_YAML)
    uri, inline = state_machines(document, "template", {"OrderFunction.Arn": "unused"}, files.__getitem__)
    # DefinitionSubstitutions that are intrinsics have no literal value: the mapping gives them.
    assert (uri.name, uri.origin, uri.unresolved) == ("OrderStateMachine", "DefinitionUri", ["FnArn"])
    assert (inline.name, inline.origin) == ("InlineMachine", "Definition")
    # !Sub in the Definition reads as its text; Table is a !Ref (no literal); Delay is a number.
    assert inline.unresolved == ["AWS::Partition", "Table"]
    get = inline.state_machine["States"]["Get"]
    assert get["Resource"] == "arn:${AWS::Partition}:states:::dynamodb:getItem"
    assert inline.state_machine["States"]["Hold"]["Seconds"] == 30


def test_the_mapping_wins_over_the_template_and_gives_what_it_leaves_out() -> None:
    mapping = {"FnArn": "arn:aws:lambda:us-east-1:1:function:Order", "AWS::Partition": "aws", "Table": "orders-prod"}
    files = {"statemachine/order.asl.json": json.dumps(ASL)}
    uri, inline = state_machines(parse_document(SAM_YAML), "template", mapping, files.__getitem__)
    assert uri.state_machine["States"]["A"]["Resource"] == mapping["FnArn"]
    assert inline.unresolved == []
    assert inline.state_machine["States"]["Get"]["Resource"] == "arn:aws:states:::dynamodb:getItem"
    assert inline.state_machine["States"]["Get"]["Parameters"] == {"TableName": "orders-prod"}


def test_a_cloudformation_definition_string_with_fn_sub_variables() -> None:
    text = json.dumps(ASL).replace("${FnArn}", "arn:aws:lambda:${AWS::Region}:1:function:${Name}")
    template = {
        "Resources": {
            "M": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionString": {"Fn::Sub": [text, {"Name": "Order", "Other": {"Ref": "X"}}]}},
            }
        }
    }
    [found] = state_machines(template, "t", {"AWS::Region": "eu-west-1"})
    assert found.state_machine["States"]["A"]["Resource"] == "arn:aws:lambda:eu-west-1:1:function:Order"


def test_a_definition_string_joined_from_parts_reads_refs_as_placeholders() -> None:
    parts = [
        '{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "',
        {"Fn::GetAtt": ["Fn", "Arn"]},
        '", "End": true}}}',
    ]
    template = {
        "Resources": {
            "M": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionString": {"Fn::Join": ["", parts]}},
            }
        }
    }
    [found] = state_machines(template, "t", {"Fn.Arn": "arn:aws:lambda:us-east-1:1:function:F"})
    assert found.state_machine["States"]["A"]["Resource"] == "arn:aws:lambda:us-east-1:1:function:F"


def test_an_s3_definition_is_reported_not_read() -> None:
    template = {
        "Resources": {
            "M": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionS3Location": {"Bucket": "b", "Key": "k"}},
            }
        }
    }
    [found] = state_machines(template, "t")
    assert found.state_machine is None and found.problem is not None


def test_substitute_escapes_values_and_unescapes_literal_dollars() -> None:
    text, missing = substitute('{"a": "${X} and ${!Y}"}', {"X": 'say "hi"'})
    assert json.loads(text) == {"a": 'say "hi" and ${Y}'} and missing == []


def test_a_file_that_is_neither_is_refused() -> None:
    with pytest.raises(ImportSourceError):
        state_machines({"Resources": {"B": {"Type": "AWS::S3::Bucket"}}}, "t")
    with pytest.raises(ImportSourceError):
        parse_document("a: [b")


def test_keys_come_from_logical_ids() -> None:
    assert key_of("OrderStateMachine") == "order-state-machine"
    assert key_of("statemachine.asl") == "statemachine-asl"
