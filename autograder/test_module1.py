"""Hidden suite for module 1 (Fundamentals). Instructor-only: never released to learners.

Every case checks one sentence of the notebook's exercise text and says, in its message,
which behaviour is wrong. The learner's code is reached through the ``learner`` fixture
(``academy.bridge``); every comparison happens here, on plain data.
"""

from __future__ import annotations

import json
import re
import secrets
import time

import pytest

from academy.bridge.client import expr
from academy.grading.cases import (
    case,
    changed_in_worker,
    check,
    confirm,
    is_a,
    make_context,
    raises,
    read_back,
)

SEED_KEYS = {
    "user.profile.name": "Bob Smith",
    "user.profile.email": "bob@example.com",
    "user.settings.theme": "dark",
    "user.settings.notifications": True,
    "system.version": "1.0.0",
    "system.startup_time": "2024-01-01T00:00:00Z",
    "system.config.debug": True,
    "app.session.id": "sess_12345",
    "app.session.expires": "2024-12-31T23:59:59Z",
    "app.metrics.page_views": 42,
}


def untouched(ctx):
    """What a read-only function must leave as it was."""
    return len(ctx.get_history()), ctx.version.value()


# --------------------------------------------------------------------------- exercise 1.1
@case("1.1", 0.5, "create_app_context() must return a framework0 Context", rules=("1.1-a",))
def test_1_1_returns_context(learner):
    ctx = learner.create_app_context()
    check(is_a(learner, ctx, "Context"), f"it returned {ctx!r}")


@case(
    "1.1",
    0.5,
    "create_app_context() must hold exactly app.name='MyApp', "
    "app.version='1.0.0' and app.environment='development'",
    rules=("1.1-a",),
)
def test_1_1_values(learner):
    data = learner.create_app_context().to_dict()
    expected = {"app.name": "MyApp", "app.version": "1.0.0", "app.environment": "development"}
    check(data == expected, f"the context held {data!r}")


@case(
    "1.1",
    0.5,
    "create_app_context() must set the three keys once each, in the order "
    "given, with who='exercise_1_1'",
    rules=("1.1-b",),
)
def test_1_1_history(learner):
    history = learner.create_app_context().get_history()
    seen = [(e["key"], e["step"]) for e in history]
    expected = [
        ("app.name", "exercise_1_1"),
        ("app.version", "exercise_1_1"),
        ("app.environment", "exercise_1_1"),
    ]
    check(seen == expected, f"the history recorded (key, who) = {seen!r}")


@case(
    "1.1",
    0.5,
    "every call to create_app_context() must return a new, independent Context",
    rules=("1.1-c",),
)
def test_1_1_fresh(learner):
    first = learner.create_app_context()
    first.set("app.name", "Changed", who="grader")
    first.set("extra.key", 1, who="grader")
    second = learner.create_app_context()
    check(
        second.to_dict()
        == {"app.name": "MyApp", "app.version": "1.0.0", "app.environment": "development"},
        "changing one returned context changed the next one",
    )
    check(
        not learner.same(first, second),
        "two calls returned the same Context object (reset or not), not a new one each",
    )
    check(
        first.get("app.name") == "Changed" and len(first.get_history()) == 5,
        "the next call changed the context an earlier call had returned",
    )


# --------------------------------------------------------------------------- exercise 1.2
FULL = {"app.name": "MyApp", "app.version": "1.0.0", "app.environment": "development"}


@case(
    "1.2",
    0.5,
    "describe_app() must return the three lines 'name: ...', 'version: ...', "
    "'environment: ...' joined with newlines",
    rules=("1.2-a", "1.2-b"),
)
def test_1_2_full(learner):
    ctx = make_context(learner, {"app.environment": "prod", "app.version": "2.1", "app.name": "X"})
    text = learner.describe_app(ctx)
    check(text == "name: X\nversion: 2.1\nenvironment: prod", f"it returned {text!r}")
    ctx = make_context(
        learner,
        {"app.environment": ["prod", "eu-1"], "app.name": "Zoë ✓", "app.version": 2.5},
    )
    text = learner.describe_app(ctx)
    check(
        text == "name: Zoë ✓\nversion: 2.5\nenvironment: ['prod', 'eu-1']",
        f"values that are not plain ASCII strings must be written with str(); it returned {text!r}",
    )


@case(
    "1.2",
    0.5,
    "describe_app() must write <missing> for each missing key, without raising",
    rules=("1.2-c",),
)
def test_1_2_missing(learner):
    only_version = make_context(learner, {"app.version": "3"})
    text = learner.describe_app(only_version)
    check(
        text == "name: <missing>\nversion: 3\nenvironment: <missing>",
        f"with only app.version set it returned {text!r}",
    )
    empty = learner.describe_app(learner.Context())
    check(
        empty == "name: <missing>\nversion: <missing>\nenvironment: <missing>",
        f"with an empty context it returned {empty!r}",
    )


@case(
    "1.2",
    0.5,
    "describe_app() must show a key that was set to None, '' or 0 with str() "
    "of its value, not as <missing>",
    rules=("1.2-d",),
)
def test_1_2_falsy_values(learner):
    ctx = make_context(learner, {"app.name": None, "app.version": "", "app.environment": 0})
    text = learner.describe_app(ctx)
    check(text == "name: None\nversion: \nenvironment: 0", f"it returned {text!r}")


@case(
    "1.2",
    0.5,
    "describe_app() must only read the context (no set, no new history)",
    rules=("1.2-e",),
)
def test_1_2_read_only(learner):
    ctx = make_context(learner, FULL)
    ctx.pop_dirty_keys()
    before = untouched(ctx)
    text = learner.describe_app(ctx)
    check(text == "name: MyApp\nversion: 1.0.0\nenvironment: development", f"it returned {text!r}")
    check(
        untouched(ctx) == before and ctx.pop_dirty_keys() == [],
        "the context's history or dirty keys changed",
    )


# --------------------------------------------------------------------------- exercise 1.3
@case(
    "1.3",
    0.75,
    "group_by_namespace() must map each top-level namespace to the sorted list of its full keys",
    rules=("1.3-b",),
)
def test_1_3_group_seed(learner):
    groups = learner.group_by_namespace(make_context(learner, SEED_KEYS))
    expected: dict[str, list[str]] = {}
    for key in SEED_KEYS:
        expected.setdefault(key.split(".")[0], []).append(key)
    expected = {k: sorted(v) for k, v in expected.items()}
    check(groups == expected, f"for the namespace demo's context it returned {groups!r}")


@case("1.3", 0.25, "group_by_namespace() of an empty context must be {}", rules=("1.3-d",))
def test_1_3_group_empty(learner):
    groups = learner.group_by_namespace(learner.Context())
    check(groups == {}, f"it returned {groups!r}")


@case(
    "1.3",
    0.5,
    "group_by_namespace() must treat a key without a dot as its own namespace, and sort each group",
    rules=("1.3-b", "1.3-c"),
)
def test_1_3_group_plain_keys(learner):
    ctx = make_context(learner, {"zeta": 1, "b.y": 2, "b.a": 3, "b": 4, "a.z.q": 5})
    groups = learner.group_by_namespace(ctx)
    expected = {"zeta": ["zeta"], "b": ["b", "b.a", "b.y"], "a": ["a.z.q"]}
    check(groups == expected, f"it returned {groups!r}")


@case(
    "1.3",
    0.5,
    "namespace_tree() must nest the dotted keys into dicts with the values at the leaves",
    rules=("1.3-e", "1.3-f"),
)
def test_1_3_tree_seed(learner):
    tree = learner.namespace_tree(make_context(learner, SEED_KEYS))
    expected: dict = {}
    for key, value in SEED_KEYS.items():
        node = expected
        *branches, leaf = key.split(".")
        for part in branches:
            node = node.setdefault(part, {})
        node[leaf] = value
    check(tree == expected, f"for the namespace demo's context it returned {tree!r}")


@case(
    "1.3",
    0.25,
    "namespace_tree() must keep stored values unchanged at the leaves "
    "(lists and dicts included) and give {} for an empty context",
    rules=("1.3-e", "1.3-g"),
)
def test_1_3_tree_values(learner):
    ctx = make_context(
        learner, {"cfg.servers": [{"port": 80}], "cfg.db": {"host": "h"}, "flag": False}
    )
    tree = learner.namespace_tree(ctx)
    expected = {"cfg": {"servers": [{"port": 80}], "db": {"host": "h"}}, "flag": False}
    check(tree == expected, f"it returned {tree!r}")
    check(learner.namespace_tree(learner.Context()) == {}, "an empty context must give {}")


@case(
    "1.3",
    0.5,
    "namespace_tree() must raise ValueError naming both keys when one key is a prefix of another "
    "in whole dotted segments, and only then",
    rules=("1.3-h",),
)
def test_1_3_tree_conflict(learner):
    for items in ({"a.b": 1, "a.b.c": 2}, {"a.b.c": 2, "a.b": 1}, {"x": 1, "x.y.z": 2}):
        ctx = make_context(learner, items)
        exc = raises(
            lambda ctx=ctx: learner.namespace_tree(ctx), "ValueError", f"with keys {list(items)}"
        )
        for key in items:
            check(
                names_key(exc.message, key),
                f"with keys {list(items)} the message {exc.message!r} does not name {key!r}",
            )
    ctx = make_context(learner, {"a.b": 1, "a.bc": 2, "xy.z": 3, "x": 4})
    tree = learner.namespace_tree(ctx)
    check(
        tree == {"a": {"b": 1, "bc": 2}, "xy": {"z": 3}, "x": 4},
        "a key is a prefix of another only in whole dotted segments (a.b and a.bc, or x and "
        f"xy.z, are no conflict); it returned {tree!r}",
    )


def names_key(message, key):
    """Does ``message`` name ``key`` on its own? The shorter key always occurs inside the
    longer one ('a.b' in 'a.b.c'), and 'x' inside words such as 'prefix', so only an
    occurrence that is not part of a longer key or word counts."""
    if not isinstance(message, str):
        return False
    alone = rf"(?<![\w.]){re.escape(key)}(?!\.?\w)"
    return re.search(alone, message) is not None


@case(
    "1.3",
    0.25,
    "group_by_namespace() and namespace_tree() must only read the context",
    rules=("1.3-a",),
)
def test_1_3_read_only(learner):
    ctx = make_context(learner, SEED_KEYS)
    before = untouched(ctx)
    groups = learner.group_by_namespace(ctx)
    tree = learner.namespace_tree(ctx)
    check(
        isinstance(groups, dict) and isinstance(tree, dict) and len(groups) == 3,
        "the functions must work on the namespace demo's context",
    )
    check(untouched(ctx) == before, "the context's history changed")


# --------------------------------------------------------------------------- exercise 1.4
@case(
    "1.4",
    0.5,
    "get_setting() must return the context's value when the key is set",
    rules=("1.4-a",),
)
def test_1_4_present(learner):
    ctx = make_context(learner, {"app.timeout": 10, "app.tags": ["a"]})
    check(
        learner.get_setting(ctx, "app.timeout", {"app.timeout": 30}) == 10,
        "a set key should win over its default",
    )
    check(learner.get_setting(ctx, "app.tags", {}) == ["a"], "a set key needs no default")


@case(
    "1.4",
    0.5,
    "get_setting() must return a stored None (the key is set) rather than the default",
    rules=("1.4-a",),
)
def test_1_4_stored_none(learner):
    ctx = make_context(learner, {"app.proxy": None, "app.port": 8080})
    value = learner.get_setting(ctx, "app.proxy", {"app.proxy": "http://default"})
    check(value is None, f"it returned {value!r}")
    port = learner.get_setting(ctx, "app.port", {"app.port": 80})
    check(port == 8080, f"for a key stored as 8080 it returned {port!r}")


@case(
    "1.4",
    0.5,
    "get_setting() must return defaults[key] when the key is not set",
    rules=("1.4-b", "1.4-d"),
)
def test_1_4_default(learner):
    ctx = make_context(learner, {"other": 1})
    check(
        learner.get_setting(ctx, "app.retries", {"app.retries": 3}) == 3,
        "the default was not returned",
    )
    check(
        learner.get_setting(ctx, "app.mode", {"app.mode": None}) is None,
        "a default of None should be returned as None",
    )
    before = untouched(ctx)
    learner.get_setting(ctx, "app.retries", {"app.retries": 3})
    check(untouched(ctx) == before, "get_setting() changed the context")


@case(
    "1.4",
    0.5,
    "get_setting() must raise KeyError naming the key when there is no value and no default",
    rules=("1.4-c", "1.4-d"),
)
def test_1_4_keyerror(learner):
    ctx = make_context(learner, {"other": 1})
    before = untouched(ctx)
    key = "db.pässwort.file"
    exc = raises(lambda: learner.get_setting(ctx, key, {"db.pässwort": 1}), "KeyError")
    check(names_key(exc.message, key), f"the message {exc.message!r} does not name the key")
    check(untouched(ctx) == before, "get_setting() changed the context")


@case(
    "1.4",
    0.5,
    "safe_set() must store JSON data with the given who and return True",
    rules=("1.4-e",),
)
def test_1_4_safe_set_ok(learner):
    ctx = learner.Context()
    result = learner.safe_set(ctx, "app.tags", {"a": [1, 2.5, None]}, "stepX")
    check(result is True, f"it returned {result!r}")
    check(ctx.get("app.tags") == {"a": [1, 2.5, None]}, "the value was not stored")
    check([e["step"] for e in ctx.get_history()] == ["stepX"], "who was not recorded")


@case(
    "1.4",
    0.5,
    "safe_set() must return False for a value that is not JSON data and leave "
    "the context unchanged",
    critical=True,
    rules=("1.4-f",),
)
def test_1_4_safe_set_rejects(learner):
    ctx = make_context(learner, {"keep": 1})
    before = (untouched(ctx), ctx.to_dict())
    for bad in ("{1, 2}", "object()", "{'a': {1: 'x'}}", "float('nan')"):
        result = learner.safe_set(ctx, "app.bad", expr(bad), "stepX")
        check(result is False, f"for the value {bad} it returned {result!r}")
    check((untouched(ctx), ctx.to_dict()) == before, "a rejected value changed the context")


# --------------------------------------------------------------------------- exercise 1.5
def mini(learner):
    return learner.MiniContext()


@case(
    "1.5",
    0.25,
    "a new MiniContext must be empty: no keys, no history, no dirty keys",
    rules=("1.5-a",),
)
def test_1_5_empty(learner):
    m = mini(learner)
    check(m.to_dict() == {}, "to_dict() of a new MiniContext is not {}")
    check(m.get_history() == [], "a new MiniContext already has history")
    check(m.pop_dirty_keys() == [], "a new MiniContext already has dirty keys")


@case(
    "1.5",
    0.5,
    "MiniContext.get() must return the default for a key never set, and the "
    "stored value (even None) for a key that was set",
    rules=("1.5-b",),
)
def test_1_5_get_default(learner):
    m = mini(learner)
    check(m.get("missing") is None, "get(missing) should be None")
    check(m.get("missing", 5) == 5, "get(missing, 5) should be 5")
    m.set("k", None)
    check(m.get("k", 5) is None, "get() of a key set to None returned the default")


@case(
    "1.5",
    0.5,
    "MiniContext.set()/get() must store and return JSON values exactly",
    rules=("1.5-b", "1.5-f"),
)
def test_1_5_round_trip(learner):
    m = mini(learner)
    values = {
        "s": "héllo ✓",
        "i": 2**70,
        "f": -0.5,
        "t": True,
        "n": None,
        "l": [1, [2, {"x": False}]],
        "d": {"a": {"b": []}},
        "e": {},
    }
    for key, value in values.items():
        m.set(key, value, who="grader")
    got = {key: m.get(key) for key in values}
    check(
        got == values and all(type(got[k]) is type(values[k]) for k in values),
        f"stored {values!r} but read back {got!r}",
    )


@case(
    "1.5",
    0.5,
    "MiniContext.set() must append one history entry {timestamp, step, key, "
    "before, after} per call",
    rules=("1.5-j", "1.5-l"),
)
def test_1_5_history_entries(learner):
    m = mini(learner)
    start = time.time()
    m.set("a", 1, who="first")
    m.set("a", 2, who="second")
    m.set("b", [3])
    end = time.time()
    history = m.get_history()
    check(isinstance(history, list) and len(history) == 3, f"expected 3 entries, got {history!r}")
    keys = [sorted(e) for e in history if isinstance(e, dict)]
    check(
        keys == [["after", "before", "key", "step", "timestamp"]] * 3,
        f"entries must have exactly the five fields; got {keys!r}",
    )
    core = [(e["step"], e["key"], e["before"], e["after"]) for e in history]
    check(
        core == [("first", "a", None, 1), ("second", "a", 1, 2), (None, "b", None, [3])],
        f"(step, key, before, after) were {core!r}",
    )
    stamps = [e["timestamp"] for e in history]
    check(
        all(type(t) is float and start - 1 <= t <= end + 1 for t in stamps),
        f"timestamps should be time.time() floats of the moment of set; got {stamps!r}",
    )


@case(
    "1.5",
    0.5,
    "MiniContext.set() must store a copy: changing the object afterwards must "
    "not change the stored value or the history",
    rules=("1.5-i",),
)
def test_1_5_set_copies(learner):
    m = mini(learner)
    tags = learner.keep(["a"])
    value = learner.keep({"tags": tags})
    m.set("k", value, who="w")
    mark = secrets.token_hex(4)
    tags.append(mark)  # the learner's list method, called over the bridge: no grader code there
    confirm(read_back(learner, value) == {"tags": ["a", mark]}, "changing the object after set()")
    check(m.get("k") == {"tags": ["a"]}, "the stored value changed with the caller's object")
    check(
        m.get_history()[0]["after"] == {"tags": ["a"]},
        "the history entry changed with the caller's object",
    )


@case(
    "1.5",
    0.5,
    "MiniContext.get(), to_dict() and get_history() must return copies",
    rules=("1.5-c", "1.5-l", "1.5-o"),
)
def test_1_5_reads_copy(learner):
    m = mini(learner)
    m.set("k", {"tags": ["a"]}, who="w")
    # Each grader lambda changes what a read returned and returns the changed object, so this
    # side confirms the change was made (skipping it must not pass the check).
    mark = secrets.token_hex(4)
    changed_in_worker(
        learner,
        "lambda m, x: (lambda v: (v['tags'].append(x), v)[1])(m.get('k'))",
        m,
        mark,
        expect={"tags": ["a", mark]},
        what="changing what get() returned",
    )
    check(m.get("k") == {"tags": ["a"]}, "changing what get() returned changed the stored value")
    changed_in_worker(
        learner,
        "lambda m, x: (lambda v: (v['tags'].append(x), v)[1])(m.to_dict()['k'])",
        m,
        mark,
        expect={"tags": ["a", mark]},
        what="changing what to_dict() returned",
    )
    check(m.get("k") == {"tags": ["a"]}, "changing what to_dict() returned changed the state")
    changed_in_worker(
        learner,
        "lambda m, x: (lambda v: (v['tags'].append(x), v)[1])(m.get_history()[0]['after'])",
        m,
        mark,
        expect={"tags": ["a", mark]},
        what="changing what get_history() returned",
    )
    check(
        m.get_history()[0]["after"] == {"tags": ["a"]},
        "changing what get_history() returned changed the recorded history",
    )


@case(
    "1.5",
    0.5,
    "MiniContext.pop_dirty_keys() must return the keys set since the last call, "
    "each once, in first-set order, then clear them",
    rules=("1.5-m", "1.5-n"),
)
def test_1_5_dirty(learner):
    m = mini(learner)
    for key in ("b", "a", "b", "c", "a"):
        m.set(key, 1)
    first = m.pop_dirty_keys()
    check(first == ["b", "a", "c"], f"first call returned {first!r}")
    second = m.pop_dirty_keys()
    check(second == [], f"an immediate second call returned {second!r}")
    for key in ("c", "z", "b", "c"):
        m.set(key, 2)
    third = m.pop_dirty_keys()
    check(
        third == ["c", "z", "b"],
        "after clearing, the keys must come in the order each was first set since then; "
        f"it returned {third!r}",
    )


@case(
    "1.5",
    0.5,
    "MiniContext.set() must mark a key dirty even when the value is unchanged",
    rules=("1.5-k",),
)
def test_1_5_dirty_same_value(learner):
    m = mini(learner)
    m.set("a", [1])
    m.pop_dirty_keys()
    m.set("a", [1])
    check(m.pop_dirty_keys() == ["a"], "setting the same value again did not mark it dirty")
    check(len(m.get_history()) == 2, "setting the same value again was not recorded")


@case(
    "1.5",
    0.5,
    "MiniContext.set() must raise TypeError for values that are not JSON data, at any depth",
    critical=True,
    rules=("1.5-e", "1.5-f", "1.5-g"),
)
def test_1_5_rejects_non_json(learner):
    bad_values = [
        "{1, 2}",
        "(1, 2)",
        "object()",
        "{1: 'a'}",
        "float('nan')",
        "float('inf')",
        "[1, {2}]",
        "{'a': {'b': [b'bytes']}}",
        "{'x': [1, (2,)]}",
    ]
    m = mini(learner)
    for source in bad_values:
        raises(
            lambda source=source: m.set("bad", expr(source)),
            "TypeError",
            f"set() accepted {source}",
        )


@case(
    "1.5",
    0.5,
    "a rejected MiniContext.set() must change nothing: no value, no history entry, no dirty key",
    critical=True,
    rules=("1.5-h",),
)
def test_1_5_rejected_unchanged(learner):
    m = mini(learner)
    m.set("keep", 1, who="w")
    m.pop_dirty_keys()
    for source in ("{'ok': 1, 'bad': {1, 2}}", "[1, 2, object()]"):
        try:
            m.set("keep", expr(source))
        except Exception:  # noqa: BLE001 - whether it raised is graded elsewhere
            pass
    check(m.to_dict() == {"keep": 1}, f"the data became {m.to_dict()!r}")
    check(len(m.get_history()) == 1, "a rejected set added a history entry")
    check(m.pop_dirty_keys() == [], "a rejected set marked a key dirty")


@case(
    "1.5",
    0.25,
    "MiniContext.set() must raise TypeError for a non-str key and ValueError for the empty key, "
    "and change nothing",
    rules=("1.5-d", "1.5-h"),
)
def test_1_5_keys(learner):
    m = mini(learner)
    raises(lambda: m.set(5, "x"), "TypeError", "set(5, ...)")
    raises(lambda: m.set(expr("('a',)"), "x"), "TypeError", "set(('a',), ...)")
    raises(lambda: m.set("", "x"), "ValueError", "set('', ...)")
    check(m.to_dict() == {}, "a rejected key was stored")
    check(m.get_history() == [], "a rejected key added a history entry")
    check(m.pop_dirty_keys() == [], "a rejected key was marked dirty")


@case(
    "1.5",
    0.5,
    "MiniContext.to_json() must return a str holding the data as a JSON object, and nothing else",
    rules=("1.5-p",),
)
def test_1_5_to_json(learner):
    m = mini(learner)
    m.set("a.b", [1, {"c": None}], who="w")
    m.set("n", 1.5, who="w")
    text = m.to_json()
    check(type(text) is str, f"to_json() returned {text!r}")
    try:
        parsed = json.loads(text)
    except ValueError:
        pytest.fail("to_json() did not return valid JSON")
    check(
        parsed == {"a.b": [1, {"c": None}], "n": 1.5},
        f"to_json() should hold only the data; it held {parsed!r}",
    )


@case(
    "1.5",
    0.5,
    "MiniContext.from_json() must be a classmethod returning a new MiniContext "
    "with the data, an empty history and no dirty keys",
    rules=("1.5-q",),
)
def test_1_5_from_json(learner):
    m = mini(learner)
    m.set("a.b", [1, {"c": None}], who="w")
    m.set("u", "ünï", who="w")
    restored = learner.MiniContext.from_json(m.to_json())
    check(is_a(learner, restored, "MiniContext"), f"from_json returned {restored!r}")
    check(
        restored.to_dict() == {"a.b": [1, {"c": None}], "u": "ünï"},
        f"the restored data was {restored.to_dict()!r}",
    )
    check(restored.get_history() == [], "the restored MiniContext has history")
    check(restored.pop_dirty_keys() == [], "the restored MiniContext has dirty keys")
    restored.set("new", 1)
    check(m.get("new") is None, "the restored MiniContext shares state with the original")
