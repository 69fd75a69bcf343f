"""What a job's path keeps of a value: as jsonb can hold it, and truncated past the limit."""

import json

from activities.machine_values import clip, clip_text, storable
from lodestone.asl.jsonvalues import clone


def test_nul_characters_and_non_finite_numbers_become_storable():
    assert storable({"a\x00": ["x\x00y", 1.5]}) == {"a\ufffd": ["x\ufffdy", 1.5]}
    # A backslash followed by the letters u0000 is text, not a NUL: it stays.
    assert storable({"path": "C:\\u0000"}) == {"path": "C:\\u0000"}
    assert storable([float("nan"), float("inf"), -float("inf"), 2.0]) == ["NaN", "Infinity", "-Infinity", 2.0]
    value = {"plain": [1, "two", None, True]}
    assert storable(value) is value  # nothing to change: the same object


def test_values_past_the_limit_become_a_truncation_record():
    assert clip({"a": "bcd"}, 11) == {"a": "bcd"}  # {"a":"bcd"} is 11 bytes: it fits
    assert clip({"a": "bcde"}, 11) == {"truncated": True, "bytes": 12, "preview": '{"a":"bcde"'}
    assert clip("x\x00" * 3, 64) == "x\ufffd" * 3
    assert clip_text("abc\x00", 10) == "abc\ufffd"
    assert clip_text("é" * 10, 5) == "éé…"  # cut at a character boundary, then marked
    assert clip_text(None, 5) is None


def test_clipping_a_truncation_record_again_keeps_the_whole_values_size():
    big = {"rows": ["x" * 100] * 1000}  # 101,...: about 103 KB of JSON
    once = clip(big, 4096)
    assert once["bytes"] == len(json.dumps(big, separators=(",", ":")).encode())
    assert clip(once, 4096) == once  # record_machine_events clips what the workflow clipped


def test_a_kept_value_is_a_copy_of_its_own():
    value = {"rows": [{"i": 1}]}
    kept = clip(value, 4096)
    value["rows"][0]["i"] = 2  # the machine's next state changes its own value
    assert kept == {"rows": [{"i": 1}]}


def test_clone_copies_json_values_deeply_and_anything_else_too():
    value = {"a": [1, 2.5, "é", None, True, {"b": [False]}]}
    copied = clone(value)
    assert copied == value and type(copied["a"][4]) is bool
    copied["a"][5]["b"].append(1)
    assert value["a"][5]["b"] == [False]

    class Tagged(dict):  # marshal takes no subclass: deep-copied instead
        pass

    tagged = clone([Tagged(x=[1])])
    assert type(tagged[0]) is Tagged and tagged == [{"x": [1]}]
