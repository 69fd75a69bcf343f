"""The distributed Map's items, pure: an ItemReader's object parsed (a JSON array, JSON lines,
CSV with a header row or given headers), ReaderConfig.MaxItems, each item's processor input
(ItemSelector with ``$$.Map.Item``) and ItemBatcher's batches. The runtime reads the object and
stores what these return; nothing here touches Temporal or the store."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from . import dataflow, errors
from .errors import ASLError
from .functions import Sources
from .paths import Scope

INPUT_TYPES = ("JSON", "JSONL", "CSV")
DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}


def _failed(cause: str) -> ASLError:
    return ASLError(errors.ITEM_READER_FAILED, cause)


def parse_items(data: bytes, config: Mapping[str, Any]) -> list[Any]:
    """The items in an object, as ``ReaderConfig`` reads it (``InputType`` JSON by default)."""
    kind = config.get("InputType", "JSON")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _failed(f"the object is not UTF-8 text: {exc}") from exc
    if kind == "JSON":
        items = _json_array(text)
    elif kind == "JSONL":
        items = _json_lines(text)
    elif kind == "CSV":
        items = _csv_rows(text, config)
    else:
        raise _failed(f"ReaderConfig.InputType {kind!r} is not read here (JSON, JSONL or CSV)")
    limit = config.get("MaxItems")
    return items[: int(limit)] if limit else items


def _json_array(text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _failed(f"the object is not JSON: {exc}") from exc
    if not isinstance(value, list):
        raise _failed(f"a JSON ItemReader reads an array, the object holds a {type(value).__name__}")
    return value


def _json_lines(text: str) -> list[Any]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise _failed(f"line {number} is not JSON: {exc}") from exc
    return items


def _csv_rows(text: str, config: Mapping[str, Any]) -> list[dict[str, str]]:
    delimiter = DELIMITERS.get(config.get("CSVDelimiter", "COMMA"))
    if delimiter is None:
        raise _failed(f"CSVDelimiter {config.get('CSVDelimiter')!r} is not one of {', '.join(DELIMITERS)}")
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if row]
    location = config.get("CSVHeaderLocation", "FIRST_ROW")
    if location == "GIVEN":
        headers = config.get("CSVHeaders")
        if not isinstance(headers, list) or not headers:
            raise _failed("CSVHeaderLocation GIVEN needs CSVHeaders, a list of column names")
    elif location == "FIRST_ROW":
        if not rows:
            return []
        headers, rows = rows[0], rows[1:]
    else:
        raise _failed(f"CSVHeaderLocation {location!r} is neither FIRST_ROW nor GIVEN")
    out = []
    for number, row in enumerate(rows, 1):
        if len(row) > len(headers):
            raise _failed(f"row {number} has {len(row)} fields, more than the {len(headers)} headers")
        out.append({h: row[i] if i < len(row) else "" for i, h in enumerate(headers)})
    return out


def item_inputs(
    selector: Any, effective: Any, items: list[Any], context: Mapping[str, Any], variables: Mapping[str, Any]
) -> list[Any]:
    """Each item's processor input: ItemSelector evaluated on the Map's effective input with
    ``$$.Map.Item.Index``/``Value`` set, or the item itself."""
    if selector is None:
        return items
    scope = Scope(effective, dict(context), variables, Sources())
    state = {"ItemSelector": selector}
    return [dataflow.map_item_input(state, effective, i, item, scope) for i, item in enumerate(items)]


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def batches(inputs: list[Any], batcher: Mapping[str, Any] | None) -> list[tuple[int, Any]]:
    """The units the processor runs on, each ``(number of items, its input)``: one per item, or
    with ItemBatcher ``{"Items": [...], "BatchInput": ...}`` holding at most MaxItemsPerBatch
    items and, past its first item, at most MaxInputBytesPerBatch bytes of JSON."""
    if batcher is None:
        return [(1, item) for item in inputs]
    max_items = int(batcher.get("MaxItemsPerBatch") or 0) or None
    max_bytes = int(batcher.get("MaxInputBytesPerBatch") or 0) or None
    extra = {"BatchInput": batcher["BatchInput"]} if "BatchInput" in batcher else {}
    base = _size({"Items": [], **extra})
    units: list[tuple[int, Any]] = []
    current: list[Any] = []
    size = base

    def close() -> None:
        nonlocal current, size
        if current:
            units.append((len(current), {"Items": current, **extra}))
        current, size = [], base

    for item in inputs:
        grown = size + _size(item) + (1 if current else 0)
        if current and ((max_items and len(current) >= max_items) or (max_bytes and grown > max_bytes)):
            close()
            grown = size + _size(item)
        current.append(item)
        size = grown
    close()
    return units


def exceeded(tolerance: Mapping[str, Any], failed: int, total: int) -> ASLError | None:
    """States.ExceedToleratedFailureThreshold when ``failed`` of ``total`` items is more than the
    Map tolerates (with no ToleratedFailure* field, a single failed item is)."""
    if not dataflow.exceeds_tolerance(tolerance, failed, total):
        return None
    return ASLError(
        errors.EXCEED_TOLERATED_FAILURE_THRESHOLD,
        f"The Map Run failed: {failed} of {total} items failed, more than it tolerates",
    )
