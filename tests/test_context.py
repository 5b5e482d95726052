"""The Context contract: JSON data only, every set recorded, dirty tracking, isolation,
merging, serialization and thread safety.

Property tests (hypothesis) check the promises for arbitrary data; the example tests pin
the exact behaviour a learner sees in the curriculum.
"""

from __future__ import annotations

import collections
import copy
import datetime
import decimal
import enum
import itertools
import json
import math
import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework0.context import Context
from framework0.errors import (
    ContextDecodeError,
    ContextError,
    Framework0Error,
    InvalidKeyError,
    NotJSONError,
)

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------------------ helpers


def same(a: Any, b: Any) -> bool:
    """Equal as JSON data, types included: 1, 1.0 and True differ, and so do 0.0 and -0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


def state(ctx: Context) -> tuple[Any, ...]:
    """Everything observable about a context except its dirty keys (which popping clears)."""
    return ctx.to_dict(), ctx.get_history(), ctx.version, len(ctx), repr(ctx)


def assert_unchanged(ctx: Context, before: tuple[Any, ...]) -> None:
    after = state(ctx)
    assert same(after[0], before[0])
    assert after[1] == before[1]
    assert after[2:] == before[2:]
    assert ctx.pop_dirty_keys() == [], "a rejected set must not mark its key dirty"


def scribble(obj: Any, draw: Any = None) -> None:
    """Mutate every container inside ``obj`` in place (at random when ``draw`` is given).

    Every dict gains a key and every list an item, so any container still shared with
    a context shows up as a change.
    """
    if isinstance(obj, dict):
        for value in list(obj.values()):
            scribble(value, draw)
        if draw is not None and obj and draw(st.booleans()):
            victim = draw(st.sampled_from(sorted(obj)))
            if draw(st.booleans()):
                del obj[victim]
            else:
                obj[victim] = ["replaced"]
        obj["\x00scribbled"] = {"by": "test"}
    elif isinstance(obj, list):
        for value in list(obj):
            scribble(value, draw)
        if draw is not None and obj and draw(st.booleans()):
            index = draw(st.integers(0, len(obj) - 1))
            if draw(st.booleans()):
                del obj[index]
            else:
                obj[index] = {"replaced": True}
        obj.append("scribbled")


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


class Color(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


# ----------------------------------------------------------------------------- strategies

names = st.text(alphabet="abcxyz_.[]0", min_size=1, max_size=4)
keys = st.text(min_size=1, max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(names, kids, max_size=4),
    max_leaves=15,
)
containers = st.lists(json_values, min_size=1, max_size=4) | st.dictionaries(
    names, json_values, min_size=1, max_size=4
)
whos = st.none() | st.sampled_from(["loader", "step.a", "worker-2"])
set_ops = st.lists(st.tuples(keys, json_values, whos), max_size=15)

BAD_VALUES = {
    "set": lambda: {1, 2},
    "frozenset": lambda: frozenset({"a"}),
    "tuple": lambda: (1, 2),
    "bytes": lambda: b"raw",
    "datetime": lambda: datetime.datetime(2024, 1, 1, 12, 0),
    "date": lambda: datetime.date(2024, 1, 1),
    "decimal": lambda: decimal.Decimal("1.5"),
    "complex": lambda: 1 + 2j,
    "object": Opaque,
    "function": lambda: len,
    "nan": lambda: float("nan"),
    "inf": lambda: float("inf"),
    "-inf": lambda: float("-inf"),
    "int-keyed dict": lambda: {1: "one"},
    "none-keyed dict": lambda: {None: "x"},
    "tuple-keyed dict": lambda: {("a", "b"): 1},
    "deque": lambda: collections.deque([1]),
}


@st.composite
def poisoned_values(draw: Any) -> tuple[str, Any, str]:
    """``(key, value, path)``: JSON data with one bad value (or a cycle) at ``path``."""
    key = draw(keys)
    kind = draw(st.sampled_from(sorted(BAD_VALUES) + ["cycle"]))
    if kind != "cycle" and draw(st.integers(0, 5)) == 0:
        return key, BAD_VALUES[kind](), key
    root = draw(containers)
    node, path = root, key
    while True:
        children = (
            [(f"{path}.{k}", v) for k, v in node.items()]
            if isinstance(node, dict)
            else [(f"{path}[{i}]", v) for i, v in enumerate(node)]
        )
        children = [(p, v) for p, v in children if isinstance(v, (dict, list))]
        if not children or not draw(st.booleans()):
            break
        path, node = draw(st.sampled_from(children))
    bad = root if kind == "cycle" else BAD_VALUES[kind]()
    if isinstance(node, dict):
        name = draw(names.filter(lambda n: n not in node))
        node[name] = bad
        path = f"{path}.{name}"
    else:
        index = draw(st.integers(0, len(node)))
        node.insert(index, bad)
        path = f"{path}[{index}]"
    return key, root, path


# --------------------------------------------------------------------------- basic use


def test_new_context_is_empty() -> None:
    ctx = Context()
    assert ctx.get("missing") is None
    assert ctx.to_dict() == {}
    assert ctx.get_history() == []
    assert ctx.pop_dirty_keys() == []
    assert ctx.version == 0
    assert ctx.max_history is None
    assert ctx.to_json() == "{}"


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**80,
        0.0,
        -0.0,
        3.14159,
        1e308,
        "",
        "Alice",
        "Unicode: 🚀 ñáéíóú 中文",
        [],
        {},
        [1, "two", None, [3.0, {"four": False}]],
        {"servers": [{"host": "a", "port": 1}], "": {"empty key": True}},
    ],
)
def test_set_then_get_returns_an_equal_value_of_the_same_type(value: Any) -> None:
    ctx = Context()
    ctx.set("k", value)
    assert same(ctx.get("k"), value)
    assert same(ctx.to_dict(), {"k": value})
    assert same(json.loads(ctx.to_json()), {"k": value})


def test_get_default_is_returned_only_for_keys_never_set() -> None:
    ctx = Context()
    marker = object()
    assert ctx.get("timeout", marker) is marker
    assert ctx.get("timeout", default=30) == 30
    ctx.set("timeout", None)
    assert ctx.get("timeout", 30) is None
    ctx.set("retries", 0)
    assert ctx.get("retries", 5) == 0


def test_later_set_replaces_the_value() -> None:
    ctx = Context()
    ctx.set("a", {"x": 1})
    ctx.set("a", [1])
    ctx.set("b", "kept")
    ctx.set("a", "last")
    assert ctx.to_dict() == {"a": "last", "b": "kept"}
    assert ctx.version == 4


def test_membership_length_and_keys() -> None:
    ctx = Context()
    ctx.set("b", 1)
    ctx.set("a", 2)
    ctx.set("b", 3)
    assert "a" in ctx and "b" in ctx and "c" not in ctx
    assert len(ctx) == 2
    assert sorted(ctx.keys()) == ["a", "b"]


@pytest.mark.parametrize("key", ["", 1, None, 1.5, b"key", ("a",), ["a"]])
def test_keys_must_be_non_empty_strings(key: Any) -> None:
    ctx = Context()
    ctx.set("ok", 1)
    ctx.pop_dirty_keys()
    before = state(ctx)
    with pytest.raises(InvalidKeyError) as info:
        ctx.set(key, "value")
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ContextError) and isinstance(info.value, Framework0Error)
    assert_unchanged(ctx, before)


def test_str_subclass_keys_are_stored_as_plain_str() -> None:
    class Name(str):
        pass

    ctx = Context()
    ctx.set(Name("user.name"), "Ann")
    assert ctx.get("user.name") == "Ann"
    assert [type(k) for k in ctx.to_dict()] == [str]
    assert type(ctx.get_history()[0]["key"]) is str


# ------------------------------------------------------------------ history and dirty


def test_every_set_is_recorded_with_who_before_and_after() -> None:
    ctx = Context()
    t0 = time.time()
    ctx.set("user.name", "Ann", who="loader")
    ctx.set("user.age", 30)
    ctx.set("user.name", "Bob", who="editor")
    t1 = time.time()
    history = ctx.get_history()
    assert [set(e) for e in history] == [{"timestamp", "step", "key", "before", "after"}] * 3
    assert [(e["step"], e["key"], e["before"], e["after"]) for e in history] == [
        ("loader", "user.name", None, "Ann"),
        (None, "user.age", None, 30),
        ("editor", "user.name", "Ann", "Bob"),
    ]
    stamps = [e["timestamp"] for e in history]
    assert all(isinstance(t, float) and t0 <= t <= t1 for t in stamps)
    assert stamps == sorted(stamps)


def test_setting_the_same_value_is_still_recorded_and_dirty() -> None:
    """The seed's exercise 3.2 relies on this: re-setting a value must reach the next delta."""
    ctx = Context()
    ctx.set("app.features", ["auth", "api"], who="developer")
    assert ctx.pop_dirty_keys() == ["app.features"]
    ctx.set("app.features", ["auth", "api"], who="developer")
    assert ctx.pop_dirty_keys() == ["app.features"]
    assert ctx.version == 2
    last = ctx.get_history()[-1]
    assert last["before"] == last["after"] == ["auth", "api"]


def test_pop_dirty_keys_returns_each_key_once_then_clears() -> None:
    ctx = Context()
    for key in ["b", "a", "b", "c", "a", "b"]:
        ctx.set(key, 1)
    popped = ctx.pop_dirty_keys()
    assert sorted(popped) == ["a", "b", "c"]
    assert len(popped) == len(set(popped))
    assert ctx.pop_dirty_keys() == []
    ctx.set("c", 2)
    assert ctx.pop_dirty_keys() == ["c"]
    assert ctx.to_dict() == {"b": 1, "a": 1, "c": 2}, "popping must not touch the data"


def test_reading_does_not_change_version_history_or_dirty_keys() -> None:
    ctx = Context()
    ctx.set("a", {"x": [1]})
    ctx.pop_dirty_keys()
    before = state(ctx)
    ctx.get("a")
    ctx.get("missing", 1)
    ctx.to_dict()
    ctx.to_json()
    ctx.get_history()
    ctx._repr_html_()
    assert_unchanged(ctx, before)


def test_pop_dirty_items_is_a_consistent_cut() -> None:
    ctx = Context()
    ctx.set("a", 1)
    ctx.set("b", {"n": [1]})
    ctx.pop_dirty_keys()
    ctx.set("b", {"n": [2]})
    ctx.set("c", None)
    version, items = ctx.pop_dirty_items()
    assert version == ctx.version == 4
    assert items == {"b": {"n": [2]}, "c": None}
    assert ctx.pop_dirty_keys() == []
    assert ctx.pop_dirty_items() == (4, {})


def test_take_snapshot_copies_everything_and_clears_dirty() -> None:
    ctx = Context()
    ctx.set("a", 1)
    ctx.set("b", [1, 2])
    version, snapshot = ctx.take_snapshot()
    assert (version, snapshot) == (2, {"a": 1, "b": [1, 2]})
    assert ctx.pop_dirty_keys() == []
    assert len(ctx.get_history()) == 2, "a snapshot does not touch the history"


# ------------------------------------------------------------------------- max_history


def test_max_history_keeps_the_newest_entries() -> None:
    ctx = Context(max_history=3)
    assert ctx.max_history == 3
    for i in range(10):
        ctx.set(f"k{i % 4}", i, who=f"s{i}")
    history = ctx.get_history()
    assert [e["after"] for e in history] == [7, 8, 9]
    assert [e["step"] for e in history] == ["s7", "s8", "s9"]
    assert ctx.version == 10
    assert ctx.to_dict() == {"k0": 8, "k1": 9, "k2": 6, "k3": 7}
    assert sorted(ctx.pop_dirty_keys()) == ["k0", "k1", "k2", "k3"]


def test_max_history_zero_records_nothing_but_still_tracks_state() -> None:
    ctx = Context(max_history=0)
    ctx.set("a", 1)
    assert ctx.get_history() == []
    assert ctx.version == 1
    assert ctx.pop_dirty_keys() == ["a"]


def test_unbounded_history_keeps_everything() -> None:
    ctx = Context()
    for i in range(5000):
        ctx.set("n", i)
    assert len(ctx.get_history()) == 5000


@pytest.mark.parametrize("bad", [-1, "3", 2.5, [3]])
def test_max_history_must_be_a_non_negative_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_history"):
        Context(max_history=bad)


# --------------------------------------------------------------------- JSON data only


@pytest.mark.parametrize("kind", sorted(BAD_VALUES))
def test_non_json_values_are_rejected_naming_key_and_path(kind: str) -> None:
    ctx = Context()
    ctx.set("config", {"servers": [{"port": 1}]}, who="init")
    ctx.set("other", 1)
    ctx.pop_dirty_keys()
    before = state(ctx)
    value = {"servers": [{"port": 80}, {"port": 81}, {"port": BAD_VALUES[kind]()}]}
    with pytest.raises(TypeError) as info:
        ctx.set("config", value, who="bad")
    assert isinstance(info.value, NotJSONError)
    assert isinstance(info.value, ContextError)
    message = str(info.value)
    assert "config.servers[2].port" in message
    assert info.value.key == "config"
    assert info.value.path == "config.servers[2].port"
    assert_unchanged(ctx, before)


@pytest.mark.parametrize("kind", sorted(BAD_VALUES))
def test_non_json_top_level_values_are_rejected(kind: str) -> None:
    ctx = Context()
    with pytest.raises(NotJSONError) as info:
        ctx.set("when", BAD_VALUES[kind]())
    assert info.value.path == "when"
    assert "'when'" in str(info.value)
    assert_unchanged(ctx, ({}, [], 0, 0, repr(Context())))


def test_cycles_are_rejected_with_the_path_of_the_back_reference() -> None:
    ctx = Context()
    loop: dict[str, Any] = {"a": [1, 2]}
    loop["a"].append(loop)
    with pytest.raises(NotJSONError, match=r"data\.a\[2\]"):
        ctx.set("data", loop)
    selfish: list[Any] = []
    selfish.append(selfish)
    with pytest.raises(NotJSONError, match=r"'l'"):
        ctx.set("l", selfish)
    assert ctx.version == 0 and ctx.to_dict() == {}


def test_shared_references_that_are_not_cycles_are_fine() -> None:
    shared = {"x": [1]}
    ctx = Context()
    ctx.set("k", {"a": shared, "b": shared, "c": [shared, shared]})
    value = ctx.get("k")
    assert value == {"a": shared, "b": shared, "c": [shared, shared]}
    value["a"]["x"].append(2)
    assert value["b"] == {"x": [1]}, "copies of a shared value are independent"
    assert ctx.get("k")["c"][1] == {"x": [1]}


def test_subclasses_of_json_types_are_stored_as_the_plain_types() -> None:
    ctx = Context()
    ordered = collections.OrderedDict([("b", 1), ("a", 2)])
    ctx.set("od", ordered)
    ctx.set("dd", collections.defaultdict(list, {"k": [1]}))
    ctx.set("level", Level.HIGH)
    assert type(ctx.get("od")) is dict and list(ctx.get("od")) == ["b", "a"]
    assert type(ctx.get("dd")) is dict and ctx.get("dd") == {"k": [1]}
    assert type(ctx.get("level")) is int and ctx.get("level") == 3
    assert ctx.to_json() == '{"od": {"b": 1, "a": 2}, "dd": {"k": [1]}, "level": 3}'


def test_str_enum_is_stored_as_the_string_json_carries() -> None:
    ctx = Context()
    ctx.set("color", Color.RED)
    ctx.set("by_color", {Color.RED: [Color.RED]})
    assert ctx.to_dict() == json.loads(
        json.dumps({"color": Color.RED, "by_color": {Color.RED: [Color.RED]}})
    )
    assert type(ctx.get("color")) is str


def test_deep_json_data_is_stored_or_cleanly_rejected() -> None:
    deep: Any = "leaf"
    for _ in range(600):
        deep = [deep]
    json.dumps(deep)  # the json module carries it
    ctx = Context()
    try:
        ctx.set("deep", deep)
    except NotJSONError as exc:
        assert "deep" in str(exc)
        assert ctx.version == 0
        return
    assert ctx.to_json() == json.dumps({"deep": deep})
    assert ctx.get("deep") == deep


@PROPERTY
@given(poisoned_values(), st.dictionaries(keys, json_values, max_size=3))
def test_property_bad_values_anywhere_are_rejected_and_change_nothing(
    poisoned: tuple[str, Any, str], existing: dict[str, Any]
) -> None:
    key, value, path = poisoned
    ctx = Context()
    for k, v in existing.items():
        ctx.set(k, v, who="setup")
    ctx.pop_dirty_keys()
    before = state(ctx)
    with pytest.raises(TypeError) as info:
        ctx.set(key, value, who="bad")
    assert isinstance(info.value, NotJSONError)
    assert info.value.key == key
    assert info.value.path == path
    assert repr(key) in str(info.value) and path in str(info.value)
    assert_unchanged(ctx, before)


# --------------------------------------------------------------------------- isolation


def test_mutating_the_value_after_set_changes_nothing() -> None:
    value = {"servers": [{"port": 80}], "tags": ["a"]}
    ctx = Context()
    ctx.set("config", value)
    value["servers"][0]["port"] = 9999
    value["tags"].append("b")
    value["new"] = True
    assert ctx.get("config") == {"servers": [{"port": 80}], "tags": ["a"]}
    assert ctx.get_history()[0]["after"] == {"servers": [{"port": 80}], "tags": ["a"]}


def test_mutating_what_readers_return_changes_nothing() -> None:
    ctx = Context()
    ctx.set("config", {"servers": [{"port": 80}]})
    ctx.set("config", {"servers": [{"port": 81}]})
    ctx.get("config")["servers"][0]["port"] = 1
    ctx.to_dict()["config"]["servers"].clear()
    history = ctx.get_history()
    history[0]["after"]["servers"].append("x")
    history[1]["before"]["servers"][0]["port"] = 2
    history[1]["key"] = "changed"
    history.clear()
    ctx.pop_dirty_items()[1]["config"]["servers"].append(None)
    ctx.take_snapshot()[1]["config"]["servers"].append(None)
    assert ctx.get("config") == {"servers": [{"port": 81}]}
    assert [(e["key"], e["before"], e["after"]) for e in ctx.get_history()] == [
        ("config", None, {"servers": [{"port": 80}]}),
        ("config", {"servers": [{"port": 80}]}, {"servers": [{"port": 81}]}),
    ]


@PROPERTY
@given(keys, containers, st.data())
def test_property_no_caller_mutation_reaches_the_state_or_history(
    key: str, value: Any, data: st.DataObject
) -> None:
    expected = copy.deepcopy(value)
    ctx = Context()
    ctx.set(key, value, who="first")
    ctx.set(key, value, who="again")
    ctx.set(f"{key}.copy", ctx.get(key))
    scribble(value, data.draw)
    scribble(ctx.get(key), data.draw)
    scribble(ctx.to_dict(), data.draw)
    for entry in ctx.get_history():
        scribble(entry, data.draw)
    scribble(ctx.pop_dirty_items()[1], data.draw)
    scribble(ctx.take_snapshot()[1], data.draw)
    assert same(ctx.get(key), expected)
    assert same(ctx.get(f"{key}.copy"), expected)
    history = ctx.get_history()
    assert same(history[0]["after"], expected)
    assert same(history[1]["before"], expected) and same(history[1]["after"], expected)
    assert history[0]["before"] is None
    assert json.loads(ctx.to_json()) == {key: expected, f"{key}.copy": expected}


@PROPERTY
@given(st.dictionaries(keys, json_values, max_size=4), st.data())
def test_property_from_dict_copies_its_input(data_in: dict[str, Any], data: st.DataObject) -> None:
    expected = copy.deepcopy(data_in)
    ctx = Context.from_dict(data_in)
    scribble(data_in, data.draw)
    assert same(ctx.to_dict(), expected)


# ---------------------------------------------------------------------------- from_dict


def test_from_dict_has_data_but_no_history_or_dirty_keys() -> None:
    ctx = Context.from_dict({"a": 1, "b": {"c": [True]}}, max_history=5)
    assert ctx.to_dict() == {"a": 1, "b": {"c": [True]}}
    assert ctx.get_history() == []
    assert ctx.pop_dirty_keys() == []
    assert ctx.max_history == 5


def test_from_dict_validates_keys_and_values() -> None:
    with pytest.raises(NotJSONError, match=r"b\.c\[0\]"):
        Context.from_dict({"a": 1, "b": {"c": [{1, 2}]}})
    with pytest.raises(InvalidKeyError):
        Context.from_dict({"": 1})
    with pytest.raises(InvalidKeyError):
        Context.from_dict({3: 1})


# ----------------------------------------------------------------- to_json / from_json


def test_json_round_trip_keeps_data_only() -> None:
    ctx = Context()
    ctx.set("user", {"name": "Zoë", "roles": ["a", "b"], "score": -0.0}, who="x")
    ctx.set("count", 2**70)
    ctx.set("quote", 'say "hi"\n\t\\')
    text = ctx.to_json()
    assert json.loads(text) == ctx.to_dict()
    assert "history" not in text and "who" not in text and "x" not in json.loads(text)
    restored = Context.from_json(text)
    assert same(restored.to_dict(), ctx.to_dict())
    assert restored.get_history() == []
    assert restored.pop_dirty_keys() == []
    assert Context.from_json(text.encode("utf-8")).to_dict() == ctx.to_dict()
    assert json.loads(ctx.to_json(indent=2)) == ctx.to_dict()
    assert "\n" in ctx.to_json(indent=2)


def test_restored_context_works_like_a_new_one() -> None:
    restored = Context.from_json('{"a": 1}', max_history=2)
    assert restored.max_history == 2
    restored.set("a", 2, who="after")
    assert restored.get_history()[0]["before"] == 1
    assert restored.pop_dirty_keys() == ["a"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "not json",
        "{'a': 1}",
        '{"a": 1,}',
        '{"a": NaN}',
        '{"a": [Infinity]}',
        '{"a": -Infinity}',
        b"\xff\xfe\x00",
    ],
)
def test_from_json_rejects_invalid_json_with_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError) as info:
        Context.from_json(text)
    assert isinstance(info.value, ContextDecodeError)
    assert "JSON" in str(info.value)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[1, 2]", "array"),
        ('"text"', "string"),
        ("3", "number"),
        ("null", "null"),
        ("true", "boolean"),
    ],
)
def test_from_json_needs_a_json_object(text: str, kind: str) -> None:
    with pytest.raises(ContextDecodeError, match=f"JSON {kind}"):
        Context.from_json(text)


def test_from_json_rejects_empty_keys_and_non_text() -> None:
    with pytest.raises(ValueError):
        Context.from_json('{"": 1}')
    with pytest.raises(ValueError):
        Context.from_json(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ['{"a": 1e400}', '{"a": {"b": [-1e999]}}'])
def test_from_json_rejects_numbers_that_overflow_to_infinity(text: str) -> None:
    with pytest.raises(ValueError):
        Context.from_json(text)


@PROPERTY
@given(set_ops)
def test_property_sets_then_json_round_trip_equals_the_model(
    ops: list[tuple[str, Any, str | None]],
) -> None:
    ctx = Context()
    model: dict[str, Any] = {}
    expected_history = []
    for key, value, who in ops:
        expected_history.append((who, key, model.get(key), value))
        ctx.set(key, value, who=who)
        model[key] = value
    assert same(ctx.to_dict(), model)
    assert all(same(ctx.get(k), v) for k, v in model.items())
    assert ctx.version == len(ops)
    history = ctx.get_history()
    assert len(history) == len(ops)
    for entry, (who, key, before, after) in zip(history, expected_history, strict=True):
        assert (entry["step"], entry["key"]) == (who, key)
        assert same(entry["before"], before) and same(entry["after"], after)
    dirty = ctx.pop_dirty_keys()
    assert sorted(dirty) == sorted(model) and len(dirty) == len(model)
    restored = Context.from_json(ctx.to_json())
    assert same(restored.to_dict(), ctx.to_dict())
    assert restored.get_history() == [] and restored.pop_dirty_keys() == []
    assert restored.to_json() == ctx.to_json()


# ------------------------------------------------------------------------------ merging


def test_merge_from_replays_history_in_order_with_each_writer() -> None:
    other = Context()
    other.set("a", 1, who="w1")
    other.set("b", [1], who="w2")
    other.set("a", 3, who="w3")
    ctx = Context()
    ctx.set("a", 0, who="mine")
    ctx.set("c", "kept", who="mine")
    ctx.pop_dirty_keys()
    ctx.merge_from(other)
    assert ctx.to_dict() == {"a": 3, "c": "kept", "b": [1]}
    replayed = [(e["step"], e["key"], e["before"], e["after"]) for e in ctx.get_history()[2:]]
    assert replayed == [("w1", "a", 0, 1), ("w2", "b", None, [1]), ("w3", "a", 1, 3)]
    assert sorted(ctx.pop_dirty_keys()) == ["a", "b"]
    assert ctx.version == 5


def test_merge_from_with_prefix() -> None:
    other = Context()
    other.set("status", "ok", who="node")
    other.set("metrics", {"cpu": 0.5}, who="node")
    ctx = Context()
    ctx.set("status", "local")
    ctx.merge_from(other, prefix="node1.")
    assert ctx.to_dict() == {
        "status": "local",
        "node1.status": "ok",
        "node1.metrics": {"cpu": 0.5},
    }
    assert [e["key"] for e in ctx.get_history()[1:]] == ["node1.status", "node1.metrics"]
    assert [e["step"] for e in ctx.get_history()[1:]] == ["node", "node"]


def test_merge_from_brings_keys_that_have_no_history() -> None:
    restored = Context.from_json('{"a": 1, "b": {"x": [2]}}')
    restored.set("c", 3, who="late")
    bounded = Context(max_history=2)
    for i in range(6):
        bounded.set(f"k{i}", i, who=f"w{i}")
    ctx = Context()
    ctx.merge_from(restored)
    ctx.merge_from(bounded, prefix="b.")
    expected = {"a": 1, "b": {"x": [2]}, "c": 3}
    expected.update({f"b.k{i}": i for i in range(6)})
    assert ctx.to_dict() == expected
    assert sorted(ctx.pop_dirty_keys()) == sorted(expected)
    steps = {e["key"]: e["step"] for e in ctx.get_history()}
    assert (steps["c"], steps["b.k4"], steps["b.k5"]) == ("late", "w4", "w5")


def test_merge_from_leaves_other_alone_and_stays_isolated() -> None:
    other = Context()
    other.set("cfg", {"list": [1]}, who="o")
    other_before = state(other)
    ctx = Context()
    ctx.merge_from(other)
    assert_unchanged_other = state(other)
    assert assert_unchanged_other[:3] == other_before[:3]
    assert other.pop_dirty_keys() == ["cfg"], "merging must not pop other's dirty keys"
    other.set("cfg", {"list": [2]})
    ctx.get("cfg")["list"].append(9)
    assert ctx.get("cfg") == {"list": [1]}
    assert other.get("cfg") == {"list": [2]}


def test_merge_from_itself_does_not_deadlock() -> None:
    ctx = Context()
    ctx.set("a", 1, who="w")
    done = threading.Event()

    def merge() -> None:
        ctx.merge_from(ctx, prefix="copy.")
        done.set()

    worker = threading.Thread(target=merge, daemon=True)
    worker.start()
    assert done.wait(5), "merge_from(self) hung"
    assert ctx.to_dict() == {"a": 1, "copy.a": 1}


def test_merge_from_checks_its_arguments() -> None:
    ctx = Context()
    with pytest.raises(TypeError):
        ctx.merge_from({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ctx.merge_from(Context(), prefix=3)  # type: ignore[arg-type]
    assert ctx.version == 0


@PROPERTY
@given(
    set_ops,
    st.dictionaries(keys, json_values, max_size=3),
    set_ops,
    st.sampled_from([None, "", "node1.", "n/"]),
    st.sampled_from([None, 0, 1, 3]),
)
def test_property_merge_from_equals_applying_others_to_dict(
    mine: list[tuple[str, Any, str | None]],
    restored: dict[str, Any],
    theirs: list[tuple[str, Any, str | None]],
    prefix: str | None,
    other_max_history: int | None,
) -> None:
    ctx = Context()
    for key, value, who in mine:
        ctx.set(key, value, who=who)
    other = Context.from_json(json.dumps(restored), max_history=other_max_history)
    for key, value, who in theirs:
        other.set(key, value, who=who)
    expected = ctx.to_dict()
    expected.update({(prefix or "") + k: v for k, v in other.to_dict().items()})
    other_history = other.get_history()
    other_data = other.to_dict()
    ctx.pop_dirty_keys()

    ctx.merge_from(other, prefix=prefix)

    assert same(ctx.to_dict(), expected)
    assert same(other.to_dict(), other_data) and other.get_history() == other_history
    merged_keys = {(prefix or "") + k for k in other_data}
    assert set(ctx.pop_dirty_keys()) == merged_keys
    if other_history:
        tail = ctx.get_history()[-len(other_history) :]
        assert [(e["key"], e["step"]) for e in tail] == [
            ((prefix or "") + e["key"], e["step"]) for e in other_history
        ]
        assert all(same(a["after"], b["after"]) for a, b in zip(tail, other_history, strict=True))


# ------------------------------------------------------------------------------ threads


@pytest.fixture
def busy_switching():
    """Switch threads very often so that a missing lock shows up as a lost update."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(count: int, target: Any) -> None:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            start.wait()
            target(index)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "threads hung"
    assert errors == []


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_sets_lose_no_update_and_no_history_entry() -> None:
    threads, per_thread = 8, 2000
    ctx = Context()

    def writer(index: int) -> None:
        for n in range(per_thread):
            ctx.set(f"t{index}", n, who=f"thread-{index}")
            ctx.set("shared", [index, n], who=f"thread-{index}")

    run_threads(threads, writer)
    total = threads * per_thread * 2
    assert ctx.version == total
    history = ctx.get_history()
    assert len(history) == total
    data = ctx.to_dict()
    assert data.pop("shared") in [[i, per_thread - 1] for i in range(threads)]
    assert data == {f"t{i}": per_thread - 1 for i in range(threads)}
    for i in range(threads):
        own = [e for e in history if e["key"] == f"t{i}"]
        assert [e["after"] for e in own] == list(range(per_thread))
        assert [e["before"] for e in own] == [None, *range(per_thread - 1)]
        assert {e["step"] for e in own} == {f"thread-{i}"}
    shared = [e for e in history if e["key"] == "shared"]
    assert all(a["after"] == b["before"] for a, b in itertools.pairwise(shared)), (
        "each shared write must see the previous one as its 'before'"
    )
    assert shared[-1]["after"] == ctx.get("shared")


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_pops_see_every_dirty_key_exactly_once() -> None:
    ctx = Context()
    popped: list[str] = []
    stop = threading.Event()

    def popper() -> None:
        while not stop.is_set():
            popped.extend(ctx.pop_dirty_keys())

    thread = threading.Thread(target=popper)
    thread.start()
    try:
        run_threads(4, lambda i: [ctx.set(f"w{i}.{n}", n) for n in range(1500)])
    finally:
        stop.set()
        thread.join(10)
    popped.extend(ctx.pop_dirty_keys())
    assert len(popped) == 6000
    assert set(popped) == {f"w{i}.{n}" for i in range(4) for n in range(1500)}


@pytest.mark.usefixtures("busy_switching")
def test_readers_and_merges_run_safely_while_writers_add_keys() -> None:
    ctx = Context(max_history=500)
    sink = Context()
    writers_left = [3]
    lock = threading.Lock()

    def worker(index: int) -> None:
        if index < 3:
            for n in range(600):
                ctx.set(f"w{index}.{n}", {"n": [n]})
            with lock:
                writers_left[0] -= 1
            return
        while writers_left[0]:
            if index == 3:
                json.loads(ctx.to_json())
                ctx.to_dict()
                ctx.get_history()
            elif index == 4:
                repr(ctx)
                ctx._repr_html_()
                ctx.pop_dirty_items()
            else:
                ctx.take_snapshot()
                sink.merge_from(ctx, prefix="copy.")

    run_threads(6, worker)
    sink.merge_from(ctx, prefix="copy.")
    assert ctx.version == 1800 and len(ctx) == 1800
    assert sink.to_dict() == {f"copy.{k}": v for k, v in ctx.to_dict().items()}


# ----------------------------------------------------------------------------- display


def test_repr_is_short_and_readable() -> None:
    ctx = Context()
    assert "Context" in repr(ctx) and "0" in repr(ctx)
    ctx.set("user.name", "Ann")
    ctx.set("user.age", 3)
    text = repr(ctx)
    assert text.startswith("<Context") and "user.name" in text and "user.age" in text
    assert "2 keys" in text
    for i in range(10_000):
        ctx.set(f"k{i}", i)
    assert len(repr(ctx)) < 200
    assert "10002 keys" in repr(ctx)


def test_repr_html_shows_keys_values_and_writers_escaped() -> None:
    ctx = Context()
    ctx.set("app.db.host", "localhost", who="setup")
    ctx.set("app.db.port", 5432, who="setup")
    ctx.set("danger", "<script>alert(1)</script>", who="<evil>")
    html = ctx._repr_html_()
    assert html.startswith("<div>") and "<table>" in html
    for text in ("app", "db", "host", "port", "localhost", "5432", "setup"):
        assert text in html
    assert "<script>" not in html and "<evil>" not in html
    assert "&lt;script&gt;" in html
