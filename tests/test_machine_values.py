"""What a job's path keeps of a value: as jsonb can hold it, and truncated past the limit."""

from activities.machine_values import clip, clip_text, storable


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
