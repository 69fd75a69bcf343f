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
    assert clip({"a": "bcde"}, 11) == {"truncated": True, "preview": '{"a":"bcde"'}
    assert clip("x\x00" * 3, 64) == "x\ufffd" * 3
    assert clip_text("abc\x00", 10) == "abc\ufffd"
    assert clip_text("é" * 10, 5) == "éé…"  # cut at a character boundary, then marked
    assert clip_text(None, 5) is None


def test_clipping_a_truncation_record_again_changes_nothing():
    big = {"rows": ["x" * 100] * 1000}  # about 103 KB of JSON
    once = clip(big, 4096)
    assert once["preview"] == json.dumps(big, separators=(",", ":"))[:4096]
    assert clip(once, 4096) == once  # record_machine_events clips what the workflow clipped
    legacy = {"truncated": True, "bytes": 103_013, "preview": once["preview"]}  # a row from before
    assert clip(legacy, 4096) == legacy


def test_a_large_value_is_encoded_only_as_far_as_the_limit():
    # Nothing past the first 4 KB of JSON is encoded: the object() that json cannot encode is
    # never reached, so the cost of clipping is bounded by the limit, not by the value.
    value = {"head": "x" * 5000, "tail": object()}
    assert clip(value, 4096) == {"truncated": True, "preview": ('{"head":"' + "x" * 5000)[:4096]}
    nan_early = {"n": float("nan"), "rest": "y" * 5000}
    assert clip(nan_early, 64) == {"truncated": True, "preview": '{"n":"NaN","rest":"' + "y" * 45}


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
