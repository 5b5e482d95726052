"""Hidden suite for module 4 (JSON serialization). Instructor-only: never released to learners.

Every case checks one sentence of the notebook's exercise text and says, in its message,
which behaviour is wrong. The learner's code is reached through the ``learner`` fixture
(``academy.bridge``); every comparison happens here, on plain data. Values JSON cannot
carry (sets, tuples, NaN inside dicts, datetimes) are built in the worker with ``expr``.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time

from academy.bridge.client import expr
from academy.grading.cases import case, check, is_a, make_context, raises

MAX_SAFE_INTEGER = 2**53 - 1
RECORD_FIELDS = ["fix", "key", "kind", "path", "problem"]


def checksum(data):
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------- exercise 4.1
def validator(learner):
    return learner.ContextJSONValidator()


def records(v):
    return v.validation_errors.value(), v.warnings.value()


def summary(issues):
    """(key, path, kind) of each issue record, in order."""
    return [(i.get("key"), i.get("path"), i.get("kind")) for i in issues]


def well_formed(learner, issues):
    """Every record has exactly the five fields, a non-empty problem and the table's fix."""
    fixes = learner.JSON_FIXES
    for issue in issues:
        if not isinstance(issue, dict) or sorted(issue) != RECORD_FIELDS:
            return f"an issue record must have exactly the fields {RECORD_FIELDS}; got {issue!r}"
        if not isinstance(issue["problem"], str) or not issue["problem"].strip():
            return f"the problem of {issue['path']!r} must be a non-empty str"
        if issue["fix"] != fixes.get(issue["kind"]):
            return f"the fix of a {issue['kind']!r} issue must be JSON_FIXES[{issue['kind']!r}]"
    return ""


@case(
    "4.1",
    0.5,
    "validate_for_json() must return (True, []) and record nothing for candidates that are "
    "all JSON data, subclasses of dict, list, str and int included",
    rules=("4.1-h", "4.1-k", "4.1-l", "4.1-r", "4.1-x"),
)
def test_4_1_valid(learner):
    v = validator(learner)
    candidates = expr(
        "{'none': None, 'flag': True, 'zero': 0, 'neg': -1.5, 'text': 'ünï ✓', "
        "'empty': [], 'nested': {'a': [1, {'b': [None, False, '']}], 'c': {}}, "
        f"'edge': [{MAX_SAFE_INTEGER}, {-MAX_SAFE_INTEGER}], 'huge_float': 1e300, "
        "'ordered': __import__('collections').OrderedDict(a=1), "
        "'level': __import__('enum').IntEnum('Level', 'LOW HIGH').HIGH, "
        "'color': __import__('enum').Enum('Color', {'RED': 'réd'}, type=str).RED, "
        "'counts': __import__('collections').defaultdict(int, {'a': 1}), "
        "'items': type('Items', (list,), {})([1, 'two', [3.5]])}"
    )
    result = v.validate_for_json(candidates)
    check(result == (True, []), f"it returned {result!r}")
    check(records(v) == ([], []), f"it recorded {records(v)!r}")


TOP_LEVEL_KINDS = [
    ("ratio", "float('nan')", "nan"),
    ("ceiling", "float('inf')", "infinity"),
    ("floor", "float('-inf')", "infinity"),
    ("pair", "(1, 2)", "tuple"),
    ("point", "__import__('collections').namedtuple('P', 'x y')(1, 2)", "tuple"),
    ("tags", "{1, 2}", "set"),
    ("frozen", "frozenset({'a'})", "set"),
    ("raw", "b'raw'", "bytes"),
    ("buffer", "bytearray(b'x')", "bytes"),
    ("when", "__import__('datetime').datetime(2024, 1, 1, 12, 0)", "datetime"),
    ("day", "__import__('datetime').date(2024, 1, 1)", "datetime"),
    ("alarm", "__import__('datetime').time(7, 30)", "datetime"),
    ("thing", "object()", "other"),
    ("complex", "1j", "other"),
]


@case(
    "4.1",
    1.0,
    "check_data_type() must return False and record one error of the right kind "
    "(nan, infinity, tuple, set, bytes, datetime, other), with key, path, kind, problem and fix",
    rules=(
        "4.1-a",
        "4.1-b",
        "4.1-c",
        "4.1-d",
        "4.1-e",
        "4.1-f",
        "4.1-j",
        "4.1-m",
        "4.1-n",
        "4.1-o",
        "4.1-p",
        "4.1-q",
        "4.1-r",
        "4.1-u",
    ),
)
def test_4_1_kinds(learner):
    for key, source, kind in TOP_LEVEL_KINDS:
        v = validator(learner)
        result = v.check_data_type(key, expr(source))
        check(result is False, f"for {source} it returned {result!r}")
        errors, warnings = records(v)
        check(
            summary(errors) == [(key, key, kind)] and warnings == [],
            f"for {source} stored under {key!r} it recorded errors {summary(errors)!r} "
            f"(key, path, kind) and warnings {summary(warnings)!r}",
        )
        problem = well_formed(learner, errors)
        check(problem == "", f"for {source}: {problem}")


@case(
    "4.1",
    1.0,
    "validate_for_json() must walk nested dicts and lists depth-first, in order, with paths "
    "like config.servers[2].port, and not look inside a rejected value",
    rules=("4.1-c", "4.1-g", "4.1-k", "4.1-l", "4.1-s", "4.1-x"),
)
def test_4_1_nested_paths(learner):
    v = validator(learner)
    candidates = expr(
        "{'ok': 1, "
        "'config': {'servers': [{'port': 80}, {'port': 81}, {'port': {8080}}], "
        "'when': __import__('datetime').date(2024, 1, 1)}, "
        "'ratio': float('nan'), "
        "'matrix': [[1, 2], [3, (4, {5})]], "
        "'deep': {'a': {'b': {'c': [0, [1, [2, b'x']]]}}}}"
    )
    ok, messages = v.validate_for_json(candidates)
    errors, warnings = records(v)
    expected = [
        ("config", "config.servers[2].port", "set"),
        ("config", "config.when", "datetime"),
        ("ratio", "ratio", "nan"),
        ("matrix", "matrix[1][1]", "tuple"),
        ("deep", "deep.a.b.c[1][1][1]", "bytes"),
    ]
    check(
        summary(errors) == expected,
        f"the errors (key, path, kind) were {summary(errors)!r}",
    )
    check(warnings == [], f"it recorded warnings {summary(warnings)!r}")
    problem = well_formed(learner, errors)
    check(problem == "", problem)
    check(ok is False, f"ok was {ok!r} although errors were found")
    wanted = [f"{e['path']}: {e['problem']}" for e in errors]
    check(messages == wanted, f"the messages should be 'path: problem' per error; got {messages!r}")


@case(
    "4.1",
    0.5,
    "a dict key that is not a str must be an error of kind non_str_key at the dict's path, "
    "and the value under it must still be checked",
    rules=("4.1-k", "4.1-u"),
)
def test_4_1_non_str_keys(learner):
    v = validator(learner)
    ok = v.check_data_type("k", expr("{'a': {1: 'x', 'b': {3}}, 2: float('nan'), (1, 2): 'y'}"))
    errors, _ = records(v)
    expected = [
        ("k", "k.a", "non_str_key"),
        ("k", "k.a.b", "set"),
        ("k", "k", "non_str_key"),
        ("k", "k.2", "nan"),
        ("k", "k", "non_str_key"),
    ]
    check(summary(errors) == expected, f"the errors (key, path, kind) were {summary(errors)!r}")
    check(ok is False, f"check_data_type() returned {ok!r}")
    problem = well_formed(learner, errors)
    check(problem == "", problem)


@case(
    "4.1",
    0.5,
    "an int (not a bool) beyond MAX_SAFE_INTEGER must be a large_int warning, not an error",
    rules=("4.1-i", "4.1-t", "4.1-u"),
)
def test_4_1_large_ints(learner):
    cases = [
        ("safe", MAX_SAFE_INTEGER, []),
        ("neg_safe", -MAX_SAFE_INTEGER, []),
        ("limit", 2**53, [("limit", "limit", "large_int")]),
        ("neg_limit", -(2**53), [("neg_limit", "neg_limit", "large_int")]),
        ("flag", True, []),
        ("float", 1e300, []),
        ("ids", [1, {"id": 2**64}], [("ids", "ids[1].id", "large_int")]),
    ]
    for key, value, expected in cases:
        v = validator(learner)
        result = v.check_data_type(key, value)
        errors, warnings = records(v)
        check(result is True, f"for {value!r} check_data_type() returned {result!r}")
        check(errors == [], f"for {value!r} it recorded errors {summary(errors)!r}")
        check(
            summary(warnings) == expected,
            f"for {value!r} it recorded warnings {summary(warnings)!r}",
        )
        problem = well_formed(learner, warnings)
        check(problem == "", problem)


@case(
    "4.1",
    0.5,
    "validate_for_json() must accept a Context (warnings only), empty both lists first, "
    "and raise TypeError for anything but a dict or a Context",
    rules=("4.1-v", "4.1-w", "4.1-x"),
)
def test_4_1_context_and_reset(learner):
    v = validator(learner)
    ctx = make_context(
        learner, {"a": 1, "stats.big_number": 9999999999999999, "b": {"ids": [2**60, 5]}}
    )
    result = v.validate_for_json(ctx)
    check(result == (True, []), f"for a Context it returned {result!r}")
    errors, warnings = records(v)
    check(errors == [], f"for a Context it recorded errors {summary(errors)!r}")
    check(
        summary(warnings)
        == [("stats.big_number", "stats.big_number", "large_int"), ("b", "b.ids[0]", "large_int")],
        f"for a Context it recorded warnings {summary(warnings)!r}",
    )
    v.validate_for_json(expr("{'bad': {1}}"))
    again = v.validate_for_json({"fine": [1, 2]})
    check(again == (True, []), f"a clean call after a failing one returned {again!r}")
    check(records(v) == ([], []), "records of an earlier call were kept")
    raises(lambda: v.validate_for_json([("a", 1)]), "TypeError", "validate_for_json(a list)")
    others = {
        "a str": "{'a': 1}",
        "a read-only mapping (types.MappingProxyType)": expr(
            "__import__('types').MappingProxyType({'a': 1})"
        ),
        "None": None,
    }
    for label, other in others.items():
        raises(
            lambda other=other: v.validate_for_json(other),
            "TypeError",
            f"validate_for_json({label})",
        )


@case(
    "4.1",
    0.5,
    "suggest_fixes() must list 'path: fix' for every error, then every warning, in order",
    rules=("4.1-y",),
)
def test_4_1_suggest_fixes(learner):
    fixes = learner.JSON_FIXES
    v = validator(learner)
    check(v.suggest_fixes() == [], "a new validator must suggest nothing")
    v.validate_for_json(
        expr("{'big': 2**60, 't': (1,), 'cfg': {'n': float('nan'), 'ids': [2**61]}}")
    )
    got = v.suggest_fixes()
    expected = [
        f"t: {fixes['tuple']}",
        f"cfg.n: {fixes['nan']}",
        f"big: {fixes['large_int']}",
        f"cfg.ids[0]: {fixes['large_int']}",
    ]
    check(got == expected, f"it returned {got!r}")


@case(
    "4.1",
    0.5,
    "check_data_type() must append to the lists without clearing them and return whether "
    "this value had no error",
    rules=("4.1-t", "4.1-u"),
)
def test_4_1_check_accumulates(learner):
    v = validator(learner)
    results = [
        v.check_data_type("a", 1),
        v.check_data_type("b", expr("{1}")),
        v.check_data_type("c", 2**60),
        v.check_data_type("d", expr("[float('nan')]")),
        v.check_data_type("e", "fine"),
    ]
    check(results == [True, False, True, False, True], f"it returned {results!r}")
    errors, warnings = records(v)
    check(
        summary(errors) == [("b", "b", "set"), ("d", "d[0]", "nan")],
        f"the errors (key, path, kind) were {summary(errors)!r}",
    )
    check(
        summary(warnings) == [("c", "c", "large_int")], f"the warnings were {summary(warnings)!r}"
    )


# --------------------------------------------------------------------------- exercise 4.2
def report(learner, source):
    result = learner.roundtrip_report(expr(source))
    check(isinstance(result, dict), f"roundtrip_report() returned {result!r}")
    return result


EXACT = {"status": "exact", "portable": True}


@case(
    "4.2",
    1.0,
    "roundtrip_report() must call values that come back strictly equal 'exact' (the seed's "
    "edge cases: empty values, unicode, special characters, nesting, -0.0)",
    rules=("4.2-c", "4.2-e", "4.2-f", "4.2-g"),
)
def test_4_2_exact(learner):
    got = report(
        learner,
        "{'empty_string': '', 'empty_dict': {}, 'empty_list': [], 'null_value': None, "
        "'zero_int': 0, 'zero_float': 0.0, 'negative_zero': -0.0, 'negative': -42, "
        "'float': -3.14, 'tiny': 5e-324, 'huge_float': 1e300, 'flag': True, 'off': False, "
        "'unicode_text': 'Hello 世界 🌍 café naïve résumé', "
        "'special_chars': 'Line1\\nLine2\\tTabbed\"Quoted\\'Apostrophe\\\\Backslash', "
        "'nested_structure': {'level1': {'level2': {'level3': "
        "{'deep_array': [1, 2, {'even_deeper': True}]}}}}, "
        "'mixed': [1, 1.0, True, None, 'x', [], {}]}",
    )
    wrong = {name: entry for name, entry in got.items() if entry != EXACT}
    check(wrong == {}, f"these entries should be {EXACT!r}: {wrong!r}")
    check(len(got) == 17, f"the report has {len(got)} entries for 17 values")
    seed_large = report(learner, "{'large_number': 999999999999999999}")
    check(
        seed_large == {"large_number": {"status": "exact", "portable": False}},
        f"for 999999999999999999 it returned {seed_large!r}",
    )


@case(
    "4.2",
    1.25,
    "roundtrip_report() must call a value 'changed', with what it becomes, when JSON turns it "
    "into something else at any depth (tuples, non-str keys, enums, dict subclasses)",
    rules=("4.2-d", "4.2-e", "4.2-g"),
)
def test_4_2_changed(learner):
    got = report(
        learner,
        "{'pair': (1, 2), "
        "'nested_tuples': [(1, (2,)), {'t': ()}], "
        "'keys': {3: 'a', 2.5: 'b', False: 'c', None: 'd'}, "
        "'clashing_keys': {1: 'int', '1': 'str'}, "
        "'deep_key': [{'a': {7: [1]}}], "
        "'int_enum': __import__('enum').IntEnum('Level', 'LOW HIGH').HIGH, "
        "'str_enum': __import__('enum').Enum('Color', {'RED': 'red'}, type=str).RED, "
        "'ordered': __import__('collections').OrderedDict(b=1, a=[2]), "
        "'deep_enum': {'levels': [1, __import__('enum').IntEnum('Level', 'LOW HIGH').HIGH]}}",
    )
    expected = {
        "pair": [1, 2],
        "nested_tuples": [[1, [2]], {"t": []}],
        "keys": {"3": "a", "2.5": "b", "false": "c", "null": "d"},
        "clashing_keys": {"1": "str"},  # two keys that JSON writes the same: the last stays
        "deep_key": [{"a": {"7": [1]}}],
        "int_enum": 2,
        "str_enum": "red",
        "ordered": {"b": 1, "a": [2]},
        "deep_enum": {"levels": [1, 2]},
    }
    for name, becomes in expected.items():
        entry = got.get(name)
        want = {"status": "changed", "becomes": becomes, "portable": True}
        check(entry == want, f"for {name!r} the entry should be {want!r}; it was {entry!r}")
        check(
            type(entry["becomes"]) is type(becomes),
            f"for {name!r}, 'becomes' must be what json.loads gave back",
        )


@case(
    "4.2",
    0.75,
    "roundtrip_report() must call a value 'rejected', with the exception's class name, when "
    "json.dumps(value, allow_nan=False) raises",
    rules=("4.2-b", "4.2-g"),
)
def test_4_2_rejected(learner):
    got = report(
        learner,
        "{'nan': float('nan'), 'inf': float('inf'), 'ninf': float('-inf'), "
        "'nan_inside': [1, {'x': float('nan')}], "
        "'set': {1, 2}, 'bytes': b'x', 'when': __import__('datetime').datetime(2024, 1, 1), "
        "'object': object(), 'tuple_key': {(1, 2): 3}, 'deep_set': {'a': [{'b': {1}}]}}",
    )
    value_errors = ["nan", "inf", "ninf", "nan_inside"]
    type_errors = ["set", "bytes", "when", "object", "tuple_key", "deep_set"]
    for name in value_errors + type_errors:
        error = "ValueError" if name in value_errors else "TypeError"
        want = {"status": "rejected", "error": error}
        entry = got.get(name)
        check(entry == want, f"for {name!r} the entry should be {want!r}; it was {entry!r}")


@case(
    "4.2",
    0.75,
    "'portable' must be False exactly when what comes back holds an int (not a bool) "
    "beyond MAX_SAFE_INTEGER, at any depth",
    rules=("4.2-f",),
)
def test_4_2_portable(learner):
    got = report(
        learner,
        f"{{'safe': {MAX_SAFE_INTEGER}, 'neg_safe': {-MAX_SAFE_INTEGER}, "
        f"'limit': {2**53}, 'neg_limit': {-(2**53)}, "
        "'nested': [1, {'a': 2**60}], 'flag': True, 'as_float': float(2**60), "
        "'tuple': (2**60,), 'key': {7: 2**53}, 'big_key': {2**60: 'ok'}}",
    )
    expected = {
        "safe": {"status": "exact", "portable": True},
        "neg_safe": {"status": "exact", "portable": True},
        "limit": {"status": "exact", "portable": False},
        "neg_limit": {"status": "exact", "portable": False},
        "nested": {"status": "exact", "portable": False},
        "flag": {"status": "exact", "portable": True},
        "as_float": {"status": "exact", "portable": True},
        "tuple": {"status": "changed", "becomes": [2**60], "portable": False},
        "key": {"status": "changed", "becomes": {"7": 2**53}, "portable": False},
        "big_key": {"status": "changed", "becomes": {str(2**60): "ok"}, "portable": True},
    }
    for name, want in expected.items():
        entry = got.get(name)
        check(entry == want, f"for {name!r} the entry should be {want!r}; it was {entry!r}")


@case(
    "4.2",
    0.25,
    "roundtrip_report() must return a new dict with one entry per name, in the order given, "
    "and leave its argument unchanged",
    rules=("4.2-a", "4.2-h"),
)
def test_4_2_order_and_input(learner):
    values = learner.keep({"z": [1, [2]], "a": {"k": "v"}, "m": None})
    got = learner.roundtrip_report(values)
    check(isinstance(got, dict) and list(got) == ["z", "a", "m"], f"it returned {got!r}")
    after = learner.builtin("dict", values)
    check(after == {"z": [1, [2]], "a": {"k": "v"}, "m": None}, f"the argument became {after!r}")
    empty = learner.roundtrip_report({})
    check(empty == {}, f"for an empty dict it returned {empty!r}")
    source = "{'z': [1, (2, 3)], 'a': {'k': {4}}, 't': (5, [6])}"
    mixed = learner.keep(expr(source))
    result = learner.roundtrip_report.live(mixed)
    check(
        not learner.same(result, mixed),
        "roundtrip_report() returned its argument itself, not a new dict",
    )
    after = learner.builtin("repr", mixed)
    check(after == source, f"the argument {source} became {after}")


# --------------------------------------------------------------------------- exercise 4.3
SAMPLE = {"app.name": "Ünicode app ✓", "app.ports": [80, 443], "flags": {"debug": True}}


def exporter(learner, seconds=1700000000.25, include_metadata=True):
    clock = learner.make(expr(f"lambda: {seconds!r}"))
    return learner.ContextExporter(include_metadata=include_metadata, clock=clock)


def expected_export(data, stamp="2023-11-14T22:13:20Z", description=""):
    return {
        "format_version": "1.0",
        "exported_at": stamp,
        "description": description,
        "key_count": len(data),
        "checksum": checksum(data),
        "data": data,
    }


@case(
    "4.3",
    0.75,
    "export_with_metadata() must return format_version, exported_at (UTC, from one call of "
    "the clock, rounded down to whole seconds), description, key_count, checksum and data, "
    "in this order",
    rules=("4.3-b", "4.3-c", "4.3-d", "4.3-e", "4.3-f", "4.3-g", "4.3-h"),
)
def test_4_3_export_shape(learner):
    ctx = make_context(learner, SAMPLE)
    got = exporter(learner).export_with_metadata(ctx, "nightly backup")
    want = expected_export(SAMPLE, description="nightly backup")
    check(got == want, f"it returned {got!r}")
    check(
        isinstance(got, dict) and list(got) == list(want),
        f"the keys must come in the order {list(want)}; they were {list(got)}",
    )
    stamps = (
        (0, "1970-01-01T00:00:00Z"),
        (1234567890.9, "2009-02-13T23:31:30Z"),
        (-0.5, "1969-12-31T23:59:59Z"),
    )
    for seconds, stamp in stamps:
        moment = exporter(learner, seconds).export_with_metadata(learner.Context())
        check(
            moment == expected_export({}, stamp),
            f"with a clock returning {seconds} and an empty context it returned {moment!r}",
        )
    counting = learner.make(expr(COUNTING_CLOCK))
    learner.ContextExporter(clock=counting).export_with_metadata(ctx, "once")
    calls = counting.calls.value()
    check(calls == 1, f"export_with_metadata() called the clock {calls!r} times, not once")
    default = learner.ContextExporter().export_with_metadata(ctx)
    stamp = default.get("exported_at") if isinstance(default, dict) else None
    now = time.time()
    ok = isinstance(stamp, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    check(
        bool(ok) and abs(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - now) < 300,
        f"with the default clock exported_at was {stamp!r}; it should be the current UTC time",
    )


COUNTING_CLOCK = (
    "type('Clock', (), {'__module__': 'grader', 'calls': 0, "
    "'__call__': lambda self: (setattr(self, 'calls', self.calls + 1), 1700000000.25)[1]})()"
)


@case(
    "4.3",
    0.25,
    "export_with_metadata() must return a new dict whose data is a copy of the context's "
    "data: changing the export must not change the context",
    rules=("4.3-a", "4.3-h"),
)
def test_4_3_export_copy(learner):
    ctx = make_context(learner, SAMPLE)
    for include_metadata in (True, False):
        exp = exporter(learner, include_metadata=include_metadata)
        first = exp.export_with_metadata.live(ctx)
        second = exp.export_with_metadata.live(ctx)
        check(
            not learner.same(first, second),
            f"with include_metadata={include_metadata}, two calls returned the same dict",
        )
        data = first.get.live("data")
        ports = data.get.live("app.ports")
        ports.append(8443)
        data.pop("flags")
        data.update({"app.name": "changed"})
        state = ctx.to_dict()
        check(
            state == SAMPLE,
            f"with include_metadata={include_metadata}, changing the export's data changed "
            f"the context: it now holds {state!r}",
        )
        again = second.get("data")
        check(
            again == SAMPLE,
            f"with include_metadata={include_metadata}, changing one export's data changed "
            f"another export's: it became {again!r}",
        )


@case(
    "4.3",
    0.5,
    "with include_metadata=False the export must be exactly {format_version, data}, "
    "without calling the clock",
    rules=("4.3-c", "4.3-i"),
)
def test_4_3_export_without_metadata(learner):
    ctx = make_context(learner, SAMPLE)
    clock = learner.make(expr("lambda: 1 / 0"))
    plain = learner.ContextExporter(include_metadata=False, clock=clock)
    check(plain.export_version.value() == "1.0", "export_version must be '1.0'")
    got = plain.export_with_metadata(ctx, "ignored")
    check(got == {"format_version": "1.0", "data": SAMPLE}, f"it returned {got!r}")


def names_key(message, key):
    """Does ``message`` name ``key`` as a whole key (not as part of a longer one)?"""
    return re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", message) is not None


def imported_state(ctx):
    return ctx.to_dict(), ctx.get_history(), ctx.pop_dirty_keys()


@case(
    "4.3",
    0.75,
    "import_with_validation() must return a new Context holding exactly the data, with no "
    "history and no dirty keys, for every 1.x export, whatever its other fields hold",
    rules=("4.3-j", "4.3-p", "4.3-u", "4.3-v"),
)
def test_4_3_import(learner):
    exp = exporter(learner)
    ctx = make_context(learner, SAMPLE)
    restored = exp.import_with_validation(exp.export_with_metadata(ctx, "x"))
    check(is_a(learner, restored, "Context"), f"it returned {restored!r}")
    check(
        imported_state(restored) == (SAMPLE, [], []),
        f"(data, history, dirty keys) were {imported_state(restored)!r}",
    )
    variants = {
        "version 1.1 with a new field": dict(
            expected_export(SAMPLE), format_version="1.1", compression=None
        ),
        "version 1.12": dict(expected_export(SAMPLE), format_version="1.12"),
        "an export without metadata": {"format_version": "1.0", "data": SAMPLE},
        "an export whose other fields are odd": dict(
            expected_export(SAMPLE), exported_at=17, description=None, extra={"x": [1]}
        ),
    }
    for label, export in variants.items():
        got = exp.import_with_validation(export)
        check(is_a(learner, got, "Context"), f"for {label} it returned {got!r}")
        check(
            imported_state(got) == (SAMPLE, [], []),
            f"for {label}, (data, history, dirty keys) were {imported_state(got)!r}",
        )
    empty = exp.import_with_validation({"format_version": "1.0", "data": {}})
    check(imported_state(empty) == ({}, [], []), "an export with no data gave a non-empty Context")


@case(
    "4.3",
    0.75,
    "import_with_validation() must refuse any major version but 1 with a ValueError "
    "naming the version",
    rules=("4.3-o", "4.3-p"),
)
def test_4_3_import_versions(learner):
    exp = exporter(learner)
    for version in ("2.0", "10.0", "0.9", "3.1"):
        export = dict(expected_export(SAMPLE), format_version=version)
        exc = raises(
            lambda export=export: exp.import_with_validation(export),
            "ValueError",
            f"format_version {version!r}",
        )
        check(
            version in exc.message,
            f"for format_version {version!r} the message {exc.message!r} does not name it",
        )


@case(
    "4.3",
    0.75,
    "import_with_validation() must raise TypeError for a non-dict, and ValueError naming "
    "format_version or data when they are missing or malformed",
    rules=("4.3-l", "4.3-m", "4.3-n", "4.3-q"),
)
def test_4_3_import_malformed(learner):
    exp = exporter(learner)
    for bad in ([], "text", None):
        raises(lambda bad=bad: exp.import_with_validation(bad), "TypeError", f"for {bad!r}")
    cases = [({"data": {}}, "format_version")]
    cases += [
        ({"format_version": version, "data": {}}, "format_version")
        for version in ("1", "v1.0", "1.0.0", 1.0, None, "", "1.x")
    ]
    cases += [
        ({"format_version": "1.0"}, "data"),
        ({"format_version": "1.0", "data": []}, "data"),
        ({"format_version": "1.0", "data": "{}"}, "data"),
    ]
    for bad, word in cases:
        exc = raises(lambda bad=bad: exp.import_with_validation(bad), "ValueError", f"for {bad!r}")
        check(word in exc.message, f"for {bad!r} the message {exc.message!r} does not name {word}")


@case(
    "4.3",
    0.75,
    "import_with_validation() must check key_count and checksum when present, and raise "
    "ValueError naming the key the Context refuses",
    critical=True,
    rules=("4.3-r", "4.3-s", "4.3-t"),
)
def test_4_3_import_integrity(learner):
    exp = exporter(learner)
    good = expected_export(SAMPLE)
    for stated in (len(SAMPLE) + 1, len(SAMPLE) - 1):  # too many and too few
        bad_count = dict(good, key_count=stated)
        exc = raises(
            lambda bad=bad_count: exp.import_with_validation(bad),
            "ValueError",
            f"key_count {stated} for {len(SAMPLE)} keys",
        )
        check("key_count" in exc.message, f"the message {exc.message!r} does not name key_count")
    tampered = dict(good, data=dict(SAMPLE, flags={"debug": False}))
    exc = raises(lambda: exp.import_with_validation(tampered), "ValueError", "changed data")
    check("checksum" in exc.message, f"the message {exc.message!r} does not name checksum")
    for stated in ("0" * 64, "f" * 64):  # a wrong checksum sorting before and after the right one
        exc = raises(
            lambda c=stated: exp.import_with_validation(dict(good, checksum=c)),
            "ValueError",
            f"the checksum {stated[:8]}...",
        )
        check("checksum" in exc.message, f"the message {exc.message!r} does not name checksum")
    nan_data = {
        "format_version": "1.0",
        "data": {"température_max": 1, "température": float("nan"), "ok": 2},
    }
    exc = raises(lambda: exp.import_with_validation(nan_data), "ValueError", "NaN in the data")
    check(
        names_key(exc.message, "température"),
        f"for NaN under the key 'température' (next to 'température_max') the message "
        f"{exc.message!r} does not name the key 'température'",
    )


@case(
    "4.3",
    0.25,
    "import_with_validation() must make its checks in the documented order: an export "
    "with several problems is refused for the first one",
    rules=("4.3-k",),
)
def test_4_3_import_order(learner):
    exp = exporter(learner)
    nan_data = {"ok": 1, "ratio": float("nan")}
    cases = [
        ({"format_version": "2.5"}, "2.5", "a version 2.5 export without data"),
        ({"format_version": "1", "data": []}, "format_version", "version '1' and a list as data"),
        (
            {"format_version": "1.0", "data": {"a": 1}, "key_count": 5, "checksum": "0" * 64},
            "key_count",
            "a wrong key_count and a wrong checksum",
        ),
        (
            {"format_version": "1.0", "data": nan_data, "checksum": checksum({"ok": 1})},
            "checksum",
            "a wrong checksum and NaN in the data",
        ),
    ]
    for bad, word, label in cases:
        exc = raises(lambda bad=bad: exp.import_with_validation(bad), "ValueError", f"for {label}")
        check(
            word in exc.message,
            f"for {label} the message {exc.message!r} does not name {word}, the first problem",
        )


@contextlib.contextmanager
def worker_folder(learner):
    """A fresh folder that both the grader and the learner's (sandboxed) worker can see.

    The worker sees only its own home folder (its /tmp is private), so the folder is made
    there, at a path that is the same in both processes.
    """
    learner.has("ContextExporter")  # starts the worker (its HOME is learner.workdir)
    home = learner.workdir  # known here: never ask the learner's process where it lives
    if not isinstance(home, str) or not os.path.isdir(home):
        raise AssertionError(f"the grader cannot reach the worker's folder {home!r}")
    folder = tempfile.mkdtemp(prefix="export-test-", dir=home)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def listing(folder):
    return sorted(os.listdir(folder))


def file_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@case(
    "4.3",
    0.5,
    "export_to_file() must write the export as indented UTF-8 JSON (ensure_ascii=False) with a "
    "final newline, return True, and leave no other file",
    rules=("4.3-w", "4.3-x"),
)
def test_4_3_file_written(learner):
    exp = exporter(learner)
    ctx = make_context(learner, SAMPLE)
    with worker_folder(learner) as folder:
        target = os.path.join(folder, "export.json")
        check(exp.export_to_file(ctx, target) is True, "it did not return True")
        check(listing(folder) == ["export.json"], f"the folder holds {listing(folder)!r}")
        text = file_text(target)
        parsed = json.loads(text)
        check(parsed == expected_export(SAMPLE), f"the file holds {parsed!r}")
        check(
            text == json.dumps(parsed, indent=2, ensure_ascii=False) + "\n",
            "the text must be json.dumps(export, indent=2, ensure_ascii=False) plus a newline",
        )
        ctx.set("app.ports", [8080], who="grader")
        check(exp.export_to_file(ctx, target) is True, "overwriting a file did not return True")
        check(
            json.loads(file_text(target))["data"]["app.ports"] == [8080],
            "overwriting did not write the new data",
        )
        check(listing(folder) == ["export.json"], f"the folder holds {listing(folder)!r}")


@case(
    "4.3",
    0.5,
    "export_to_file() must return False when the folder does not exist or the path is a "
    "directory, creating nothing and leaving nothing behind",
    critical=True,
    rules=("4.3-y", "4.3-z", "4.3-aa", "4.3-ab"),
)
def test_4_3_file_errors(learner):
    exp = exporter(learner)
    ctx = make_context(learner, SAMPLE)
    with worker_folder(learner) as folder:
        missing = os.path.join(folder, "no", "such", "export.json")
        result = exp.export_to_file(ctx, missing)
        check(result is False, f"for a missing folder it returned {result!r}")
        check(listing(folder) == [], f"a folder was created: {listing(folder)!r}")
        directory = os.path.join(folder, "already_a_folder")
        os.mkdir(directory)
        with open(os.path.join(directory, "inside.txt"), "w") as f:
            f.write("keep")
        result = exp.export_to_file(ctx, directory)
        check(result is False, f"for a path that is a directory it returned {result!r}")
        check(
            os.path.isdir(directory) and listing(directory) == ["inside.txt"],
            "the directory was changed",
        )
        check(
            listing(folder) == ["already_a_folder"],
            f"files were left behind: {listing(folder)!r}",
        )


@case(
    "4.3",
    0.25,
    "export_to_file() must never half-write: when encoding fails, the old file stays intact "
    "and no temporary file is left",
    critical=True,
    rules=("4.3-x", "4.3-y", "4.3-z", "4.3-ab"),
)
def test_4_3_file_atomic(learner):
    exp = exporter(learner)
    ctx = make_context(learner, {"good": "data", "note": "half an emoji: \ud83d"})
    with worker_folder(learner) as folder:
        target = os.path.join(folder, "state.json")
        with open(target, "w", encoding="utf-8") as f:
            f.write('{"previous": "export"}\n')
        result = exp.export_to_file(ctx, target)
        check(result is False, f"for data holding a lone surrogate it returned {result!r}")
        check(
            file_text(target) == '{"previous": "export"}\n',
            "the previous file was changed or emptied",
        )
        check(listing(folder) == ["state.json"], f"files were left behind: {listing(folder)!r}")
