"""The distributed Map: a Map with an ItemReader, ItemBatcher or ResultWriter. The interpreter
evaluates what the state asks for (the reader's and writer's Parameters, BatchInput, the
limits) into a DistributedMap and hands it to the runtime, which reads the items, runs the
ItemProcessor over them in child executions and answers the Map's result: the results in item
(or batch) order, or with a ResultWriter ``{"MapRunArn", "ResultWriterDetails"}``. A runtime
without ``distributed_map`` (the in-memory one) fails the state with States.Runtime."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import errors, paths
from .errors import ASLError
from .jsonvalues import is_number
from .machine_exec import StateRun
from .machine_types import Runtime, RuntimeEscape
from .payload import evaluate_payload

FIELDS = ("ItemReader", "ItemBatcher", "ResultWriter")
GET_OBJECT = "arn:aws:states:::s3:getObject"
PUT_OBJECT = "arn:aws:states:::s3:putObject"
BUCKET = "lodestone"  # the bucket name that means Lodestone's own store


@dataclass
class DistributedMap:
    state: str  # the Map state's name
    path: str  # its attempt's path prefix: "Each/", "Each#2/" on a retry
    processor: dict[str, Any]  # the ItemProcessor (StartAt, States, ...)
    context: dict[str, Any]  # "$$" without State and Map: Execution, StateMachine
    variables: dict[str, Any]  # the variables the Map's scope sees
    reader: dict[str, Any] | None = None  # {"Resource", "ReaderConfig", "Parameters" (evaluated)}
    items: list[Any] | None = None  # with no ItemReader: the items ItemsPath selects
    selector: Any = None  # ItemSelector (or Parameters), evaluated per item by the runtime
    effective: Any = None  # the Map's effective input: ItemSelector's "$"
    batcher: dict[str, Any] | None = None  # MaxItemsPerBatch, MaxInputBytesPerBatch, BatchInput (evaluated)
    max_concurrency: int = 0  # 0: no limit
    tolerance: dict[str, Any] | None = None  # ToleratedFailureCount / ToleratedFailurePercentage
    writer: dict[str, Any] | None = None  # {"Resource", "Parameters" (evaluated)}


class DistributedRuntime(Runtime, Protocol):
    async def distributed_map(self, spec: DistributedMap) -> Any: ...


def is_distributed(state: Mapping[str, Any]) -> bool:
    return any(field in state for field in FIELDS)


def _number(state: Mapping[str, Any], field: str, scope: paths.Scope, holder: str) -> Any:
    if field in state:
        return state[field]
    if f"{field}Path" not in state:
        return None
    value = paths.get(state[f"{field}Path"], scope, f"{holder}.{field}Path")
    if not is_number(value) or value < 0:
        raise ASLError(errors.RUNTIME, f"The {field}Path field refers to an invalid value: {value}")
    return value


def _reader(state: Mapping[str, Any], scope: paths.Scope) -> dict[str, Any]:
    reader = state["ItemReader"]
    resource = reader.get("Resource")
    if resource != GET_OBJECT:
        raise ASLError(errors.ITEM_READER_FAILED, f"ItemReader Resource {resource!r}: only {GET_OBJECT} is read")
    config = dict(reader.get("ReaderConfig") or {})
    limit = _number(config, "MaxItems", scope, "ReaderConfig")
    if limit is not None:
        config["MaxItems"] = limit
    config.pop("MaxItemsPath", None)
    params = evaluate_payload(reader.get("Parameters") or {}, scope, "ItemReader.Parameters")
    return {"Resource": resource, "ReaderConfig": config, "Parameters": params}


def _batcher(state: Mapping[str, Any], scope: paths.Scope) -> dict[str, Any]:
    batcher = state["ItemBatcher"]
    out: dict[str, Any] = {}
    for field in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
        value = _number(batcher, field, scope, "ItemBatcher")
        if value is not None:
            out[field] = value
    if "BatchInput" in batcher:
        out["BatchInput"] = evaluate_payload(batcher["BatchInput"], scope, "ItemBatcher.BatchInput")
    return out


def _writer(state: Mapping[str, Any], scope: paths.Scope) -> dict[str, Any]:
    writer = state["ResultWriter"]
    resource = writer.get("Resource", PUT_OBJECT)
    if resource != PUT_OBJECT:
        raise ASLError(errors.RESULT_WRITER_FAILED, f"ResultWriter Resource {resource!r}: only {PUT_OBJECT}")
    params = evaluate_payload(writer.get("Parameters") or {}, scope, "ResultWriter.Parameters")
    return {"Resource": resource, "Parameters": params}


def spec(
    run: StateRun, prefix: str, value: Any, scope: paths.Scope, limits: Mapping[str, Any], items: list[Any] | None
) -> DistributedMap:
    """What the runtime needs, evaluated on the Map's effective input ``value`` (JSONPath)."""
    state = run.state
    at = scope.with_input(value)
    tolerance = {k: limits[k] for k in ("ToleratedFailureCount", "ToleratedFailurePercentage") if k in limits}
    return DistributedMap(
        state=run.name,
        path=prefix,
        processor=dict(state["ItemProcessor"] if "ItemProcessor" in state else state["Iterator"]),
        context=dict(run.ex.base),
        variables=dict(run.frame.vars),
        reader=_reader(state, at) if "ItemReader" in state else None,
        items=None if "ItemReader" in state else items,
        selector=state.get("ItemSelector", state.get("Parameters")),
        effective=value,
        batcher=_batcher(state, at) if "ItemBatcher" in state else None,
        max_concurrency=int(limits.get("MaxConcurrency", 0)),
        tolerance=tolerance,
        writer=_writer(state, at) if "ResultWriter" in state else None,
    )


async def run_distributed(run: StateRun, spec: DistributedMap) -> Any:
    runtime = run.ex.runtime
    if not hasattr(runtime, "distributed_map"):
        used = ", ".join(f for f in FIELDS if f in run.state)
        raise ASLError(errors.RUNTIME, f"{used}: this runtime does not run the distributed Map")
    try:
        return await runtime.distributed_map(spec)
    except ASLError:
        raise
    except Exception as exc:  # the runtime's own failure: not the machine's to catch
        raise RuntimeEscape(exc) from exc
