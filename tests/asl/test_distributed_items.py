"""The distributed Map's item reading and batching, pure (lodestone/asl/machine_distributed_items.py)."""

import json

import pytest

from lodestone.asl.errors import ASLError
from lodestone.asl.machine_distributed_items import batches, exceeded, item_inputs, parse_items


def test_a_json_array_is_its_items_and_max_items_keeps_the_first():
    data = json.dumps([{"a": 1}, {"a": 2}, {"a": 3}]).encode()
    assert parse_items(data, {}) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert parse_items(data, {"InputType": "JSON", "MaxItems": 2}) == [{"a": 1}, {"a": 2}]


def test_json_lines_skip_blank_lines_and_name_a_bad_line():
    assert parse_items(b'{"a": 1}\n\n[2]\n"x"\n', {"InputType": "JSONL"}) == [{"a": 1}, [2], "x"]
    with pytest.raises(ASLError) as err:
        parse_items(b'{"a": 1}\n{oops\n', {"InputType": "JSONL"})
    assert err.value.error == "States.ItemReaderFailed" and "line 2" in err.value.cause


def test_csv_rows_are_objects_of_strings_by_the_header_row():
    data = b'sku,name,qty\nA-1,"Anvil, large",3\nA-2,Rope,\n'
    assert parse_items(data, {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}) == [
        {"sku": "A-1", "name": "Anvil, large", "qty": "3"},
        {"sku": "A-2", "name": "Rope", "qty": ""},
    ]


def test_csv_with_given_headers_and_another_delimiter_reads_every_row():
    config = {"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["k", "v"], "CSVDelimiter": "PIPE"}
    assert parse_items(b"a|1\nb|2\n", config) == [{"k": "a", "v": "1"}, {"k": "b", "v": "2"}]


def test_a_json_object_or_unknown_input_type_fails_the_reader():
    for data, config in [(b'{"a": 1}', {}), (b"[]", {"InputType": "PARQUET"}), (b"a\n1,2\n", {"InputType": "CSV"})]:
        with pytest.raises(ASLError) as err:
            parse_items(data, config)
        assert err.value.error == "States.ItemReaderFailed"


def test_item_selector_sees_the_map_input_and_the_item():
    selector = {"id.$": "$$.Map.Item.Value.id", "i.$": "$$.Map.Item.Index", "run.$": "$.run"}
    assert item_inputs(selector, {"run": 7}, [{"id": "a"}, {"id": "b"}], {}, {}) == [
        {"id": "a", "i": 0, "run": 7},
        {"id": "b", "i": 1, "run": 7},
    ]


def test_batches_hold_at_most_max_items_with_the_batch_input():
    assert batches([1, 2, 3, 4, 5], {"MaxItemsPerBatch": 2, "BatchInput": {"c": "EUR"}}) == [
        (2, {"Items": [1, 2], "BatchInput": {"c": "EUR"}}),
        (2, {"Items": [3, 4], "BatchInput": {"c": "EUR"}}),
        (1, {"Items": [5], "BatchInput": {"c": "EUR"}}),
    ]
    assert batches(["a", "b"], None) == [(1, "a"), (1, "b")]


def test_batches_hold_at_most_max_input_bytes_past_their_first_item():
    # {"Items":[]} is 12 bytes; each "xxxx" item is 6, with its comma 7: 12 + 6 + 7 = 25 fits two
    units = batches(["xxxx"] * 5, {"MaxInputBytesPerBatch": 25})
    assert [count for count, _ in units] == [2, 2, 1]
    assert all(len(json.dumps(u, separators=(",", ":"))) <= 25 for _, u in units)
    assert batches(["x" * 100], {"MaxInputBytesPerBatch": 25}) == [(1, {"Items": ["x" * 100]})]


def test_with_no_tolerance_one_failed_item_is_too_many():
    assert exceeded({}, 0, 10) is None
    assert exceeded({}, 1, 10).error == "States.ExceedToleratedFailureThreshold"
    assert exceeded({"ToleratedFailurePercentage": 10}, 1, 10) is None
    assert exceeded({"ToleratedFailurePercentage": 10}, 2, 10) is not None
