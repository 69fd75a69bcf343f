"""Intrinsic functions. Cases from the developer guide's "Intrinsic functions" page (its
examples and stated rules) and from outputs Step Functions itself recorded (LocalStack's
snapshots against AWS), e.g. MathAdd's rounding and StringSplit's delimiter set."""

import hashlib

import pytest

from lodestone.asl import errors, intrinsics, payload
from lodestone.asl.functions import Sources
from lodestone.asl.paths import Scope


def run(expr, data=None, context=None, sources=None):
    return payload.evaluate_payload({"r.$": expr}, Scope(data if data is not None else {}, context, sources=sources))[
        "r"
    ]


def fails(expr, data=None, error="States.IntrinsicFailure"):
    with pytest.raises(errors.ASLError) as exc:
        run(expr, data)
    assert exc.value.error == error
    return exc.value


NINE = list(range(1, 10))


# --- parser ------------------------------------------------------------------------------


def test_parser_reads_nested_calls_literals_and_paths():
    call = intrinsics.parse("States.Format('a {} {} {}', States.Array(1, -2.5, null), $.x['y z'], true)")
    assert call.name == "States.Format"
    assert call.args[1] == intrinsics.Call(
        "States.Array", (intrinsics.Literal(1), intrinsics.Literal(-2.5), intrinsics.Literal(None))
    )
    assert call.args[2] == intrinsics.PathArg("$.x['y z']")
    assert call.args[3] == intrinsics.Literal(True)


@pytest.mark.parametrize(
    "text",
    [
        "States.Format('unterminated)",
        "States.Nope(1)",
        "States.Array(1,",
        "States.Array(1) trailing",
        "States.ArrayLength()",  # wrong arity
        "States.UUID(1)",
        "States.Array(@)",
    ],
)
def test_parser_rejects_malformed_calls(text):
    with pytest.raises(intrinsics.IntrinsicSyntaxError):
        intrinsics.parse(text)


def test_string_literal_escapes():
    # In the JSON definition "\\'" is the two characters \' : an escaped quote
    assert run("States.Format('it\\'s')") == "it's"
    assert run("States.Array('a\\\\b')") == ["a\\b"]
    assert run("States.Format('\\{\\} and {}', 1)") == "{} and 1"


def test_path_argument_with_brackets_and_commas():
    assert run("States.Array($['a,b'], $.c[0])", {"a,b": 1, "c": [2]}) == [1, 2]


def test_nested_calls():
    # Step Functions' recorded example: ArrayGetItem(StringSplit(name, '-'), 0)
    ctx = {"StateMachine": {"Name": "MyMachine-123"}}
    assert run("States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), 0)", {}, ctx) == "MyMachine"


def test_path_argument_that_selects_nothing_fails():
    fails("States.Format('{}', $.missing)", {}, "States.Runtime")


# --- States.Format -------------------------------------------------------------------------


def test_format_guide_example():
    assert run("States.Format('Hello, my name is {}.', $.name)", {"name": "Arnav"}) == "Hello, my name is Arnav."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "Formatting argument ."),
        ("HelloWorld", "Formatting argument HelloWorld."),
        (None, "Formatting argument null."),
        (1, "Formatting argument 1."),
        (1.1, "Formatting argument 1.1."),
        (True, "Formatting argument true."),
        ({"Arg1": 1, "Arg2": []}, "Formatting argument {Arg1=1, Arg2=[]}."),  # as AWS prints objects
    ],
)
def test_format_renders_each_json_type(value, expected):
    assert run("States.Format('Formatting argument {}.', $.v)", {"v": value}) == expected


def test_format_argument_count_must_match_placeholders():
    fails("States.Format('{} {}', 1)")
    fails("States.Format('{}', 1, 2)")


def test_format_template_from_a_path():
    assert run("States.Format($.t, 'x')", {"t": "<{}>"}) == "<x>"


# --- JSON ----------------------------------------------------------------------------------


def test_string_to_json_guide_example():
    assert run("States.StringToJson($.someString)", {"someString": '{"number": 20}'}) == {"number": 20}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), (" ", None), ("null", None), ("1.1", 1.1), ("true", True), ('"Hi"', "Hi"), ("[1, 2]", [1, 2])],
)
def test_string_to_json_values(text, expected):
    assert run("States.StringToJson($.s)", {"s": text}) == expected


def test_string_to_json_bad_json_fails():
    fails("States.StringToJson($.s)", {"s": "{nope"})


def test_json_to_string_guide_example():
    assert run("States.JsonToString($.someJson)", {"someJson": {"name": "Foo", "year": 2020}}) == (
        '{"name":"Foo","year":2020}'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "null"), (1, "1"), (1.1, "1.1"), (True, "true"), ("HelloWorld", '"HelloWorld"'), ([1, "a"], '[1,"a"]')],
)
def test_json_to_string_values(value, expected):
    assert run("States.JsonToString($.v)", {"v": value}) == expected


def test_json_merge_is_shallow_guide_example():
    data = {"json1": {"a": {"a1": 1, "a2": 2}, "b": 2}, "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}}
    assert run("States.JsonMerge($.json1, $.json2, false)", data) == {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3}


def test_json_merge_deep_mode_is_refused():
    fails("States.JsonMerge($.a, $.b, true)", {"a": {}, "b": {}})


def test_json_merge_needs_objects():
    fails("States.JsonMerge($.a, $.b, false)", {"a": [], "b": {}})


# --- Arrays --------------------------------------------------------------------------------


def test_array_guide_example():
    assert run("States.Array('Foo', 2020, $.someJson, null)", {"someJson": {"random": "abcdefg"}}) == [
        "Foo",
        2020,
        {"random": "abcdefg"},
        None,
    ]


def test_array_with_no_arguments_is_empty():
    assert run("States.Array()") == []


def test_array_partition_guide_example():
    assert run("States.ArrayPartition($.inputArray, 4)", {"inputArray": NINE}) == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]


@pytest.mark.parametrize(("array", "size", "expected"), [([], 1, []), ([0], 5, [[0]]), ([0, 1, 2], 2, [[0, 1], [2]])])
def test_array_partition_edges(array, size, expected):
    assert run("States.ArrayPartition($.a, $.n)", {"a": array, "n": size}) == expected


def test_array_partition_size_must_be_positive():
    fails("States.ArrayPartition($.a, 0)", {"a": [1]})


def test_array_contains_guide_example():
    assert run("States.ArrayContains($.inputArray, $.lookingFor)", {"inputArray": NINE, "lookingFor": 5}) is True
    assert run("States.ArrayContains($.inputArray, 10)", {"inputArray": NINE}) is False


def test_array_contains_compares_json_values():
    data = {"a": [1, {"k": [1]}, "x"]}
    assert run("States.ArrayContains($.a, $.v)", {**data, "v": {"k": [1]}}) is True
    assert run("States.ArrayContains($.a, true)", data) is False  # true is not 1
    assert run("States.ArrayContains($.a, null)", {"a": []}) is False


@pytest.mark.parametrize(
    ("args", "expected"),
    [("1, 9, 2", [1, 3, 5, 7, 9]), ("0, 10, 3", [0, 3, 6, 9]), ("1, 9, 9", [1]), ("5, 1, -2", [5, 3, 1])],
)
def test_array_range(args, expected):
    assert run(f"States.ArrayRange({args})") == expected


def test_array_range_limits():
    fails("States.ArrayRange(1, 5, 0)")
    fails("States.ArrayRange(0, 1000, 1)")  # 1001 items: over the 1000-item limit
    assert len(run("States.ArrayRange(1, 1000, 1)")) == 1000


def test_array_get_item_guide_example():
    assert run("States.ArrayGetItem($.inputArray, $.index)", {"inputArray": NINE, "index": 5}) == 6


def test_array_get_item_out_of_range_fails():
    fails("States.ArrayGetItem($.a, 9)", {"a": NINE})


def test_array_length_guide_example():
    assert run("States.ArrayLength($.inputArray)", {"inputArray": NINE}) == 9


def test_array_unique_guide_example():
    assert run("States.ArrayUnique($.inputArray)", {"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]}) == [1, 2, 3, 4]


def test_array_unique_keeps_booleans_and_numbers_apart():
    data = {"a": [None, None, True, 1, 1.0, "1", [], [], {"a": 1}, {"a": 1}]}
    assert run("States.ArrayUnique($.a)", data) == [None, True, 1, "1", [], {"a": 1}]


def test_array_functions_need_arrays():
    fails("States.ArrayLength($.s)", {"s": "nope"})


# --- Encoding and hashing ------------------------------------------------------------------


def test_base64_guide_examples():
    assert run("States.Base64Encode($.input)", {"input": "Data to encode"}) == "RGF0YSB0byBlbmNvZGU="
    assert run("States.Base64Decode($.base64)", {"base64": "RGF0YSB0byBlbmNvZGU="}) == "Data to encode"
    assert run("States.Base64Encode('')") == ""


def test_base64_limits_and_bad_input():
    fails("States.Base64Encode($.s)", {"s": "x" * 10001})
    fails("States.Base64Decode('not base64!')")


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
        ("SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
        ("SHA-256", "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        ("SHA-384", hashlib.sha384(b"input data").hexdigest()),
        ("SHA-512", hashlib.sha512(b"input data").hexdigest()),
    ],
)
def test_hash(algorithm, digest):
    assert run("States.Hash($.Data, $.Algorithm)", {"Data": "input data", "Algorithm": algorithm}) == digest


def test_hash_unknown_algorithm_fails():
    fails("States.Hash('x', 'SHA-999')")


# --- Math ----------------------------------------------------------------------------------


def test_math_add_guide_example():
    assert run("States.MathAdd($.value1, $.step)", {"value1": 111, "step": -1}) == 110


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    # recorded against AWS: each argument is rounded half up (toward +infinity) first
    [(1.49, 1.5, 3), (1.5, 1.51, 4), (-1.49, -1.5, -2), (-1.5, -1.51, -3), (-0.5, 0, 0), (2.5, 0, 3), (-9, 3, -6)],
)
def test_math_add_rounds_like_step_functions(a, b, expected):
    assert run("States.MathAdd($.a, $.b)", {"a": a, "b": b}) == expected


def test_math_add_needs_numbers():
    fails("States.MathAdd('1', 2)")


def test_math_random_uses_the_injected_source_in_range():
    low = run("States.MathRandom($.start, $.end)", {"start": 1, "end": 999}, sources=Sources(random=lambda: 0.0))
    high = run("States.MathRandom(1, 999)", sources=Sources(random=lambda: 0.999999999))
    assert (low, high) == (1, 998)  # start inclusive, end exclusive


def test_math_random_with_a_seed_repeats():
    a = run("States.MathRandom(0, 1000, 7)")
    b = run("States.MathRandom(0, 1000, 7)")
    assert a == b and 0 <= a < 1000


def test_math_random_without_source_fails_rather_than_reading_entropy():
    fails("States.MathRandom(1, 10)")


# --- Strings and ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "delimiters", "expected"),
    [
        ("1,2,3,4,5", ",", ["1", "2", "3", "4", "5"]),
        ("This.is+a,test=string", ".+,=", ["This", "is", "a", "test", "string"]),  # any of the characters
        (",,,,", ",", []),  # empty pieces are dropped
        (", , ,", ",", [" ", " "]),
        (" ", ",", [" "]),
    ],
)
def test_string_split(text, delimiters, expected):
    assert run("States.StringSplit($.inputString, $.splitter)", {"inputString": text, "splitter": delimiters}) == (
        expected
    )


def test_uuid_comes_from_the_injected_source():
    u = "ca4c1140-dcc1-40cd-ad05-7b4aa23df4a8"
    assert run("States.UUID()", sources=Sources(uuid=lambda: u)) == u
    fails("States.UUID()")


def test_literal_with_a_real_newline_recorded_example():
    # recorded against AWS: StringSplit('Hello<newline>World', '<newline>') with JSON "\n" in the definition
    assert run("States.StringSplit('Hello\nWorld', '\n')") == ["Hello", "World"]


def test_json_merge_of_a_parsed_literal_and_the_execution_input_recorded_example():
    expr = 'States.JsonMerge(States.StringToJson(\'{"constant_in_literal": "false"}\'), $$.Execution.Input.f, false)'
    ctx = {"Execution": {"Input": {"f": {"constant_input_field": "constant_value"}}}}
    assert run(expr, {}, ctx) == {"constant_in_literal": "false", "constant_input_field": "constant_value"}


def test_string_to_json_negative_zero_recorded_example():
    assert run("States.StringToJson($.s)", {"s": "-0"}) == 0
