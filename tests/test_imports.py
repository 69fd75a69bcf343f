"""Importing Step Functions state machines on the session stack: POST /v1/workflows/import
(dry run, store, refusal) and `lodestone import stepfunctions` / `lodestone bindings suggest`
as a process, then an imported machine runs from a submission to its output."""

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from devstack.task_service import TaskService
from tests.helpers import submit, wait_job

# A SAM template as Step Functions teams write them: the ASL in a file next to it, Lambda
# ARNs and a table name through DefinitionSubstitutions (an intrinsic, so from the mapping).
TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  OrderFlow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachine/order.asl.json
      DefinitionSubstitutions:
        PriceFunctionArn: !GetAtt PriceFunction.Arn
        Currency: EUR
"""
ASL = {
    "StartAt": "Price",
    "States": {
        "Price": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "${PriceFunctionArn}",
                "Payload": {"sku.$": "$.sku", "currency": "${Currency}"},
            },
            "OutputPath": "$.Payload",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
MAPPING = {"PriceFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:Price"}
FILES = {"statemachine/order.asl.json": json.dumps(ASL)}


def _bindings(url: str) -> list[dict[str, Any]]:
    return [{"function": "Price", "http": {"url": f"{url}/price"}}]


def _body(**extra: Any) -> dict[str, Any]:
    return {"template": TEMPLATE, "files": FILES, "mapping": MAPPING, "key": f"order-{uuid.uuid4().hex[:8]}", **extra}


async def test_a_dry_run_reports_and_stores_nothing(tenant_a):
    body = _body(bindings=_bindings("https://svc.example.com"), dry_run=True)
    resp = await tenant_a.api.post("/v1/workflows/import", json=body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["dry_run"] is True and answer["stored"] == []
    [report] = answer["machines"]
    assert (report["name"], report["key"], report["origin"]) == ("OrderFlow", body["key"], "DefinitionUri")
    assert report["states"] == {"Succeed": 1, "Task": 1}
    assert report["resources"] == [
        {
            "pointer": "/States/Price/Resource",
            "resource": "arn:aws:states:::lambda:invoke",
            "status": "bound",
            "handler": "http",
            "function": "Price",
        }
    ]
    assert report["unsupported"] == [] and report["unresolved_placeholders"] == [] and report["problems"] == []
    assert (await tenant_a.api.get(f"/v1/workflows/{body['key']}")).status_code == 404


async def test_an_unbound_resource_or_an_unsupported_feature_refuses_the_import(tenant_a):
    asl = json.loads(FILES["statemachine/order.asl.json"])
    asl["States"]["Price"]["Resource"] = "arn:aws:states:::lambda:invoke.sync"
    body = _body(files={"statemachine/order.asl.json": json.dumps(asl)}, bindings=[])
    resp = await tenant_a.api.post("/v1/workflows/import", json=body)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    found = [(e["code"], e["pointer"]) for e in problem["errors"]]
    assert found == [
        ("unbound_resource", "/state_machine/States/Price/Resource"),
        ("unsupported_feature", "/state_machine/States/Price/Resource"),
    ]
    assert problem["code"] == "unbound_resource" and problem["machines"][0]["refused"] is True
    assert (await tenant_a.api.get(f"/v1/workflows/{body['key']}")).status_code == 404


async def test_an_imported_machine_is_stored_and_runs_to_its_output(tenant_a):
    with TaskService(tenant_a.webhook_secret, {"price": [{"sku": "A-1", "price": 12.5}]}) as svc:
        body = _body(bindings=_bindings(svc.url))
        resp = await tenant_a.api.post("/v1/workflows/import", json=body)
        assert resp.status_code == 201, resp.text
        [stored] = resp.json()["stored"]
        assert (stored["key"], stored["version"]) == (body["key"], 1)
        definition = (await tenant_a.api.get(f"/v1/workflows/{body['key']}")).json()["definition"]
        assert (
            definition["state_machine"]["States"]["Price"]["Parameters"]["FunctionName"] == MAPPING["PriceFunctionArn"]
        )
        sub = await submit(tenant_a.api, body["key"], {"sku": "A-1"}, idempotency_key=uuid.uuid4().hex)
        assert sub.status_code == 202, sub.text
        job = await wait_job(tenant_a.api, sub.json()["job_id"], timeout=60)
        calls = list(svc.calls)
    assert job["status"] == "succeeded", job
    assert job["output"] == {"sku": "A-1", "price": 12.5}
    # The request is the lambda:invoke Payload, the template's substitution in it.
    assert [c.body for c in calls] == [{"sku": "A-1", "currency": "EUR"}]


async def _cli(settings, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATA_DIR": str(settings.data_path), "POSTGRES_PORT": str(settings.postgres_port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    return proc.returncode or 0, out.decode(), err.decode()


def _files(tmp_path: Path) -> Path:
    (tmp_path / "statemachine").mkdir()
    (tmp_path / "statemachine" / "order.asl.json").write_text(FILES["statemachine/order.asl.json"])
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "mapping.json").write_text(json.dumps(MAPPING))
    return tmp_path / "template.yaml"


async def test_the_cli_drafts_bindings_and_stores_the_import(settings, tenant_a, tmp_path):
    template = _files(tmp_path)
    code, out, err = await _cli(
        settings, "bindings", "suggest", str(template), "--mapping", str(tmp_path / "mapping.json")
    )
    assert code == 0, err
    assert json.loads(out) == [{"function": "Price", "http": {"url": "https://CHANGE-ME.example.com/price"}}]
    assert "OrderFlow  /States/Price/Resource  arn:aws:states:::lambda:invoke  function Price" in err

    key = f"cli-order-{uuid.uuid4().hex[:8]}"
    (tmp_path / "bindings.json").write_text(out)
    args = ["import", "stepfunctions", str(template), "--bindings", str(tmp_path / "bindings.json")]
    args += ["--mapping", str(tmp_path / "mapping.json"), "--name", key, "--tenant", str(tenant_a.id)]
    code, out, err = await _cli(settings, *args)
    assert code == 0, err
    assert f"machine OrderFlow -> key {key} (from DefinitionUri)" in out
    assert "resources: 1 bound, 0 native, 0 at run time, 0 unbound" in out
    assert f"stored: {key} version 1" in out
    stored = (await tenant_a.api.get(f"/v1/workflows/{key}")).json()
    assert stored["version"] == 1 and stored["definition"]["resources"] == json.loads(
        (tmp_path / "bindings.json").read_text()
    )


async def test_the_cli_refuses_an_unbound_import_and_stores_nothing(settings, tenant_a, tmp_path):
    template = _files(tmp_path)
    key = f"cli-order-{uuid.uuid4().hex[:8]}"
    code, out, err = await _cli(
        settings, "import", "stepfunctions", str(template), "--name", key, "--tenant", str(tenant_a.id)
    )
    assert code == 1
    assert "unbound     /States/Price/Resource  arn:aws:states:::lambda:invoke function ${PriceFunctionArn}" in out
    assert "unresolved placeholders: ${PriceFunctionArn}" in out
    assert "refused, nothing stored" in err
    assert (await tenant_a.api.get(f"/v1/workflows/{key}")).status_code == 404
