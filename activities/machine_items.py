"""The distributed Map's items and results in the object store. `prepare_map_items` reads the
ItemReader's upload (or takes ItemsPath's items), applies ItemSelector and ItemBatcher, and
stores the processor inputs in pages of PAGE_UNITS; each child workflow reads its pages by
number (`read_map_page`) and stores each page's results (`write_map_results`), so no item
list crosses a workflow's history whole. `finish_map` answers the Map's result: the results in
order, or with a ResultWriter the result files, their manifest, and Step Functions' answer.

Objects, under the job's folder: `map/<map run id>/units/<page>.json` and
`.../results/<page>.json`; a ResultWriter's `map-results/<Prefix>/<map run id>/manifest.json`
and `SUCCEEDED_0.json` / `FAILED_0.json`, each also one of the job's artifacts."""

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from lodestone.asl import errors as asl_errors
from lodestone.asl.errors import ASLError
from lodestone.asl.machine_distributed import BUCKET, DistributedMap
from lodestone.asl.machine_distributed_items import batches, item_inputs, parse_items
from lodestone.db import tenant_session
from lodestone.storage import ObjectNotFound, ObjectStore, job_key
from schema.tables import Artifact, Upload

PAGE_UNITS = 100  # processor inputs per page: what one child reads and runs at a time
HISTORY_EVENTS_MAX = 2_000  # a child continues as new past this many events, at the next page


@dataclass
class MapRunRef:
    tenant_id: str
    job_id: str
    run_id: str  # the Map Run's id (a UUID): the folder of its objects


@dataclass
class PrepareMapInput:
    run: MapRunRef
    spec: DistributedMap


@dataclass
class PreparedMap:
    items: int
    units: int  # processor inputs: items, or batches with ItemBatcher
    pages: int
    page_units: int = PAGE_UNITS  # inputs per page (the last may hold fewer)
    history_events_max: int = HISTORY_EVENTS_MAX  # each child's, before it continues as new


@dataclass
class MapPageInput:
    run: MapRunRef
    page: int


@dataclass
class MapResultsInput:
    run: MapRunRef
    page: int
    # per unit: {"Status": "SUCCEEDED", "Output"} or {"Status": "FAILED", "Error", "Cause"}
    results: list[dict[str, Any]]


@dataclass
class FinishMapInput:
    run: MapRunRef
    pages: int
    map_run_arn: str
    writer: dict[str, Any] | None


def _key(run: MapRunRef, name: str) -> str:
    return job_key(run.tenant_id, run.job_id, f"map/{run.run_id}/{name}")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _asl_failure(err: ASLError) -> ApplicationError:
    return ApplicationError(err.cause, type=err.error, non_retryable=True)


class MachineItemActivities:
    def __init__(self, engine: AsyncEngine, store: ObjectStore) -> None:
        self.engine = engine
        self.store = store

    async def _upload_bytes(self, tenant_id: str, params: Any) -> bytes:
        if not isinstance(params, dict) or params.get("Bucket") != BUCKET:
            raise ASLError(
                asl_errors.ITEM_READER_FAILED,
                f'ItemReader Parameters name an upload: {{"Bucket": "{BUCKET}", "Key": "<upload id>"}}',
            )
        try:
            upload_id = uuid.UUID(str(params.get("Key")))
        except ValueError:
            raise ASLError(
                asl_errors.ITEM_READER_FAILED, f"ItemReader Key {params.get('Key')!r} is not an upload id"
            ) from None
        async with tenant_session(self.engine, tenant_id) as session:
            upload = await session.get(Upload, upload_id)
        if upload is None:
            raise ASLError(asl_errors.ITEM_READER_FAILED, f"no upload {upload_id} in this tenant")
        try:
            return await self.store.get_bytes(upload.key)
        except ObjectNotFound:
            raise ASLError(asl_errors.ITEM_READER_FAILED, f"upload {upload_id} has no object") from None

    @activity.defn(name="prepare_map_items")
    async def prepare_map_items(self, inp: PrepareMapInput) -> PreparedMap:
        spec = inp.spec
        try:
            if spec.reader is not None:
                data = await self._upload_bytes(inp.run.tenant_id, spec.reader["Parameters"])
                items = parse_items(data, spec.reader["ReaderConfig"])
                del data
            else:
                items = spec.items or []
            inputs = item_inputs(spec.selector, spec.effective, items, spec.context, spec.variables)
            units = batches(inputs, spec.batcher)
        except ASLError as err:
            raise _asl_failure(err) from err
        pages = 0
        for start in range(0, len(units), PAGE_UNITS):
            page = [[count, value] for count, value in units[start : start + PAGE_UNITS]]
            await self.store.put_bytes(_key(inp.run, f"units/{pages:06d}.json"), _dumps(page), "application/json")
            pages += 1
        return PreparedMap(len(items), len(units), pages)

    @activity.defn(name="read_map_page")
    async def read_map_page(self, inp: MapPageInput) -> list[list[Any]]:
        """``[[number of items, processor input], ...]`` of one page."""
        data: list[list[Any]] = json.loads(await self.store.get_bytes(_key(inp.run, f"units/{inp.page:06d}.json")))
        return data

    @activity.defn(name="write_map_results")
    async def write_map_results(self, inp: MapResultsInput) -> None:
        await self.store.put_bytes(
            _key(inp.run, f"results/{inp.page:06d}.json"), _dumps(inp.results), "application/json"
        )

    async def _pages(self, inp: FinishMapInput, name: str) -> list[Any]:
        out: list[Any] = []
        for page in range(inp.pages):
            out.extend(json.loads(await self.store.get_bytes(_key(inp.run, f"{name}/{page:06d}.json"))))
        return out

    @activity.defn(name="finish_map")
    async def finish_map(self, inp: FinishMapInput) -> Any:
        results = await self._pages(inp, "results")
        if inp.writer is None:
            return [
                r["Output"] if r["Status"] == "SUCCEEDED" else {"Error": r["Error"], "Cause": r["Cause"]}
                for r in results
            ]
        units = await self._pages(inp, "units")
        return await self._write_results(inp, units, results)

    async def _write_results(self, inp: FinishMapInput, units: list[Any], results: list[dict[str, Any]]) -> Any:
        params = inp.writer["Parameters"] if inp.writer else {}
        bucket = params.get("Bucket", BUCKET)
        if bucket != BUCKET:
            raise ApplicationError(
                f"ResultWriter Bucket must be {BUCKET!r}", type=asl_errors.RESULT_WRITER_FAILED, non_retryable=True
            )
        prefix = str(params.get("Prefix") or "").strip("/")
        folder = f"{prefix}/{inp.run.run_id}" if prefix else inp.run.run_id
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status in ("SUCCEEDED", "FAILED"):
            rows = [
                _result_row(inp.map_run_arn, i, units[i][1], r) for i, r in enumerate(results) if r["Status"] == status
            ]
            if rows:
                files[status].append(await self._put_result(inp.run, f"{folder}/{status}_0.json", _dumps(rows)))
        manifest = {"DestinationBucket": bucket, "MapRunArn": inp.map_run_arn, "ResultFiles": files}
        await self._put_result(inp.run, f"{folder}/manifest.json", _dumps(manifest))
        return {
            "MapRunArn": inp.map_run_arn,
            "ResultWriterDetails": {"Bucket": bucket, "Key": f"{folder}/manifest.json"},
        }

    async def _put_result(self, run: MapRunRef, name: str, data: bytes) -> dict[str, Any]:
        """One result file: stored under the job, and one of its artifacts (kind `map-results/<name>`)."""
        key = job_key(run.tenant_id, run.job_id, f"map-results/{name}")
        await self.store.put_bytes(key, data, "application/json")
        kind = f"map-results/{name}"
        async with tenant_session(self.engine, run.tenant_id) as session:
            found = await session.exec(
                select(Artifact).where(Artifact.job_id == uuid.UUID(run.job_id), Artifact.kind == kind)
            )
            if found.first() is not None:  # this activity's earlier attempt
                return {"Key": name, "Size": len(data)}
            session.add(
                Artifact(
                    tenant_id=uuid.UUID(run.tenant_id),
                    job_id=uuid.UUID(run.job_id),
                    kind=kind,
                    key=key,
                    content_type="application/json",
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        return {"Key": name, "Size": len(data)}


def _result_row(arn: str, index: int, unit_input: Any, result: dict[str, Any]) -> dict[str, Any]:
    """A child execution's line in a result file, as Step Functions writes it."""
    row: dict[str, Any] = {
        "ExecutionArn": f"{arn}:{index}",
        "Input": json.dumps(unit_input, ensure_ascii=False),
        "InputDetails": {"Included": True},
        "Name": str(index),
        "Status": result["Status"],
    }
    if result["Status"] == "SUCCEEDED":
        row["Output"] = json.dumps(result["Output"], ensure_ascii=False)
        row["OutputDetails"] = {"Included": True}
    else:
        row["Error"], row["Cause"] = result["Error"], result["Cause"]
    return row
