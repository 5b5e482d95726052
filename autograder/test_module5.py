"""Hidden suite for module 5 (Merging and distributed integration). Instructor-only: never
released to learners.

Every case checks one sentence of the notebook's exercise text and says, in its message,
which behaviour is wrong. The learner's code is reached through the ``learner`` fixture
(``academy.bridge``); every comparison happens here, on plain data.

Exercise 5.1 is graded with strategies the grader writes itself (plain callables built in the
worker), so a learner's aggregator is never marked down for exercise 5.2's strategies.
Exercise 5.2 calls the strategies directly, with ``ConflictInfo`` records (given in the
notebook's setup cell) that the grader computes here. The property tests generate the
contexts' contents here, as plain data, and build the learner-side contexts from them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from academy.bridge.client import LearnerException, Remote, expr
from academy.grading.cases import CaseFailed, case, check, confirm, in_worker, is_a, raises

FIELDS = ("key", "original_value", "new_value", "original_who", "new_who", "timestamp")
NAMES = ("last_write_wins", "first_write_wins", "numeric_aggregation", "conflict_detection")
CLOCK = 7.5

# Grader-written strategies, built in the worker (the learner's notebook does not define them).
COPY_ALL = "(lambda f: setattr(f, '__name__', 'copy_all') or f)(lambda t, s, c: t.merge_from(s))"
KEEP_ALL = "(lambda f: setattr(f, '__name__', 'keep_all') or f)(lambda t, s, c: None)"
PROBE = (
    "(lambda f: setattr(f, '__name__', 'probe') or f)(lambda t, s, c: t.set('probe', "
    "{'target': t.to_dict(), 'source': s.to_dict(), 'conflicts': [x.to_dict() for x in c]}, "
    "who='probe'))"
)

Writes = list[tuple[str, Any, Any]]  # (key, value, who), in the order they are set


# --------------------------------------------------------------------------- helpers
def build(learner, writes: Writes) -> Remote:
    """A framework0 Context in the learner's process, with these writes in this order."""
    ctx = learner.Context()
    for key, value, who in writes:
        ctx.set(key, value, who=who)
    return ctx


def from_items(items: dict[str, tuple[Any, str]]) -> Writes:
    return [(key, value, who) for key, (value, who) in items.items()]


def data_of(writes: Writes) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value, _ in writes:
        data[key] = value
    return data


def who_of(writes: Writes) -> dict[str, Any]:
    return {key: who for key, _, who in writes}


def last_writers(ctx: Remote) -> dict[str, Any]:
    return {entry["key"]: entry["step"] for entry in ctx.get_history()}


def expected_conflicts(t_data, t_who, s_data, s_who, timestamp=CLOCK) -> list[dict[str, Any]]:
    """What detect_conflicts must find: keys in both with values that differ, source order."""
    return [
        {
            "key": key,
            "original_value": t_data[key],
            "new_value": value,
            "original_who": t_who.get(key),
            "new_who": s_who.get(key),
            "timestamp": timestamp,
        }
        for key, value in s_data.items()
        if key in t_data and t_data[key] != value
    ]


def read_conflicts(learner, items, what: str) -> list[dict[str, Any]]:
    """The learner's list of ConflictInfo as plain dicts (fails the case on any other shape)."""
    if not isinstance(items, list):
        raise CaseFailed(f"{what} returned {items!r}, not a list")
    out = []
    for item in items:
        if not is_a(learner, item, "ConflictInfo"):
            raise CaseFailed(f"{what} returned a list holding {item!r}, not ConflictInfo objects")
        out.append(item.to_dict())
    return out


def aggregator(learner) -> Remote:
    return learner.DistributedAggregator(clock=learner.make(expr(f"lambda: {CLOCK}")))


def records(agg: Remote) -> tuple[Any, Any, Any]:
    conflicts = agg.conflicts.value()
    count = len(conflicts) if isinstance(conflicts, list) else conflicts
    return count, agg.merge_stats.value(), agg.strategy_counts.value()


NO_RECORDS = (0, {"total_merges": 0, "total_conflicts": 0, "keys_merged": 0}, {})


def untouched(ctx: Remote) -> tuple[Any, Any]:
    return ctx.to_dict(), ctx.version.value()


def show(items: dict[str, tuple[Any, str]]) -> str:
    """A generated context, readably: {'a': 1 by w1, ...}."""
    return "{" + ", ".join(f"{k!r}: {v!r} by {w}" for k, (v, w) in items.items()) + "}"


def holds(strategy, prop: Callable[[Any], None], describe: Callable[[Any], str], examples=40):
    """Check ``prop`` on generated examples; a failure reports the shrunk example readably."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(strategy)
    def run(example):
        try:
            prop(example)
        except LearnerException as exc:
            raise CaseFailed(f"for {describe(example)}, your code raised {exc}") from None

    run()


KEYS = st.sampled_from(["a", "b", "c", "x.y", "x.z"])
VALUES = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, 2.25, -1.5]),
    st.booleans(),
    st.sampled_from(["on", "off"]),
    st.none(),
    st.lists(st.integers(0, 1), max_size=2),
    st.dictionaries(st.sampled_from(["p", "q"]), st.integers(0, 2), max_size=2),
)
WHO = st.sampled_from(["w1", "w2", "w3"])
CONTEXTS = st.dictionaries(KEYS, st.tuples(VALUES, WHO), max_size=5)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same(learner, first: Any, second: Any) -> bool:
    """Are these two learner objects one and the same object (``is``, asked in the worker)?"""
    return isinstance(first, Remote) and isinstance(second, Remote) and learner.same(first, second)


def names(message: str, word: str) -> bool:
    """Does ``message`` name ``word`` as a whole word (not as part of a longer name)?"""
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", message) is not None


# --------------------------------------------------------------------------- exercise 5.1
SERVICES_TARGET: Writes = [
    ("users.total_count", 50000, "user_service"),
    ("service.health", "healthy", "user_service"),
    ("api.requests_today", 1200, "user_service"),
]
SERVICES_SOURCE: Writes = [
    ("orders.total_count", 125000, "order_service"),
    ("service.health", "degraded", "order_service"),
    ("api.requests_today", 3400, "order_service"),
]


@case(
    "5.1",
    0.5,
    "detect_conflicts() must return one ConflictInfo per conflicting key, with key, "
    "original_value (target's), new_value (source's), original_who, new_who and "
    "timestamp=self.clock()",
    rules=("5.1-a", "5.1-b", "5.1-c", "5.1-d"),
)
def test_5_1_detect_example(learner):
    target, source = build(learner, SERVICES_TARGET), build(learner, SERVICES_SOURCE)
    found = read_conflicts(
        learner, aggregator(learner).detect_conflicts(target, source), "detect_conflicts()"
    )
    expected = expected_conflicts(
        data_of(SERVICES_TARGET),
        who_of(SERVICES_TARGET),
        data_of(SERVICES_SOURCE),
        who_of(SERVICES_SOURCE),
    )
    check(found == expected, f"for the user and order services it returned {found!r}")


@case(
    "5.1",
    0.5,
    "detect_conflicts() must report only keys both contexts hold with different values "
    "(equal values by ==, such as 1 and 1.0 or equal lists, are not conflicts)",
    rules=("5.1-a", "5.1-f"),
)
def test_5_1_equal_values(learner):
    t_writes: Writes = [
        ("same", "x", "t"),
        ("n", 1, "t"),
        ("flag", True, "t"),
        ("list", [1, {"a": 2}], "t"),
        ("only_target", 5, "t"),
        ("none", None, "t"),
    ]
    s_writes: Writes = [
        ("same", "x", "s"),
        ("n", 1.0, "s"),
        ("flag", 1, "s"),
        ("list", [1, {"a": 2}], "s"),
        ("only_source", 6, "s"),
        ("none", 0, "s"),
    ]
    agg = aggregator(learner)
    found = read_conflicts(
        learner,
        agg.detect_conflicts(build(learner, t_writes), build(learner, s_writes)),
        "detect_conflicts()",
    )
    keys = [c["key"] for c in found]
    check(keys == ["none"], f"only 'none' (None vs 0) conflicts, but it reported the keys {keys}")
    empty = agg.detect_conflicts(build(learner, t_writes), learner.Context())
    check(empty == [], f"with an empty source it returned {empty!r} instead of []")


@case(
    "5.1",
    0.5,
    "detect_conflicts() must list the conflicts in the order of source.keys(), one per key",
    rules=("5.1-a", "5.1-e"),
)
def test_5_1_order(learner):
    t_writes: Writes = [("a", 1, "t"), ("m", 1, "t"), ("z", 1, "t"), ("q", 1, "t")]
    s_writes: Writes = [("z", 2, "s"), ("new", 0, "s"), ("a", 2, "s"), ("m", 2, "s"), ("z", 3, "s")]
    found = read_conflicts(
        learner,
        aggregator(learner).detect_conflicts(build(learner, t_writes), build(learner, s_writes)),
        "detect_conflicts()",
    )
    keys = [c["key"] for c in found]
    check(keys == ["z", "a", "m"], f"the source's keys are z, new, a, m; it reported {keys}")


@case(
    "5.1",
    0.5,
    "detect_conflicts() must take original_who/new_who from each context's last history entry "
    "for the key, and use None when the context has no history entry for it",
    rules=("5.1-c",),
)
def test_5_1_who(learner):
    target = build(learner, [("k", 1, "first"), ("k", 2, "second"), ("j", "a", "t")])
    source = learner.Context.from_json('{"k": 3, "j": "b"}')
    source.set("j", "c", who="late")
    found = read_conflicts(
        learner, aggregator(learner).detect_conflicts(target, source), "detect_conflicts()"
    )
    seen = [(c["key"], c["original_who"], c["new_who"]) for c in found]
    check(
        seen == [("k", "second", None), ("j", "t", "late")],
        f"(key, original_who, new_who) were {seen!r}",
    )


@case(
    "5.1",
    0.25,
    "detect_conflicts() must only look: no change to either context, and nothing recorded "
    "in the aggregator",
    rules=("5.1-g",),
)
def test_5_1_detect_read_only(learner):
    target, source = build(learner, SERVICES_TARGET), build(learner, SERVICES_SOURCE)
    before = (untouched(target), untouched(source))
    agg = aggregator(learner)
    found = agg.detect_conflicts(target, source)
    check(isinstance(found, list) and len(found) == 2, f"it returned {found!r}")
    check((untouched(target), untouched(source)) == before, "a context changed")
    check(records(agg) == NO_RECORDS, f"the aggregator's records became {records(agg)!r}")


@case(
    "5.1",
    0.5,
    "detect_conflicts() must find exactly the keys both contexts hold with different values "
    "(property test on generated contexts)",
    rules=("5.1-a", "5.1-b", "5.1-c", "5.1-d", "5.1-e", "5.1-f"),
)
def test_5_1_detect_property(learner):
    def prop(example):
        t_items, s_items = example
        t_writes, s_writes = from_items(t_items), from_items(s_items)
        found = read_conflicts(
            learner,
            aggregator(learner).detect_conflicts(
                build(learner, t_writes), build(learner, s_writes)
            ),
            "detect_conflicts()",
        )
        expected = expected_conflicts(
            data_of(t_writes), who_of(t_writes), data_of(s_writes), who_of(s_writes)
        )
        check(
            found == expected,
            f"for target {show(t_items)} and source {show(s_items)} it returned {found!r}, "
            f"expected {expected!r}",
        )

    holds(
        st.tuples(CONTEXTS, CONTEXTS),
        prop,
        lambda ex: f"target {show(ex[0])} and source {show(ex[1])}",
    )


@case(
    "5.1",
    0.5,
    "merge_with_strategy() must call a callable strategy as strategy(target, source, "
    "conflicts), with the detected conflicts, and return that list",
    rules=("5.1-h", "5.1-k", "5.1-q", "5.1-r"),
)
def test_5_1_callable_strategy(learner):
    target, source = build(learner, SERVICES_TARGET), build(learner, SERVICES_SOURCE)
    returned = aggregator(learner).merge_with_strategy(target, source, learner.make(expr(PROBE)))
    expected = expected_conflicts(
        data_of(SERVICES_TARGET),
        who_of(SERVICES_TARGET),
        data_of(SERVICES_SOURCE),
        who_of(SERVICES_SOURCE),
    )
    probe = target.get("probe")
    check(isinstance(probe, dict), "the strategy was not called (or not with the target)")
    check(
        probe["target"] == data_of(SERVICES_TARGET),
        f"the strategy's first argument held {probe['target']!r}, not the target",
    )
    check(
        probe["source"] == data_of(SERVICES_SOURCE),
        f"the strategy's second argument held {probe['source']!r}, not the source",
    )
    check(
        probe["conflicts"] == expected,
        f"the strategy's third argument held {probe['conflicts']!r}",
    )
    got = read_conflicts(learner, returned, "merge_with_strategy()")
    check(got == expected, f"merge_with_strategy() returned {got!r}")


@case(
    "5.1",
    0.5,
    "merge_with_strategy() with a prefix must merge every source key as prefix + key "
    "(prepended as is, no dot added) and detect conflicts against the prefixed keys, "
    "keeping each write's who",
    rules=("5.1-n", "5.1-o", "5.1-q"),
)
def test_5_1_prefix(learner):
    target = build(
        learner,
        [
            ("job.status", "processing", "coordinator"),
            ("node1.job.status", "queued", "coordinator"),
        ],
    )
    source = build(learner, [("job.status", "completed", "worker1"), ("rows", 10, "worker1")])
    returned = aggregator(learner).merge_with_strategy(
        target, source, learner.make(expr(COPY_ALL)), prefix="node1."
    )
    got = read_conflicts(learner, returned, "merge_with_strategy()")
    expected = [
        {
            "key": "node1.job.status",
            "original_value": "queued",
            "new_value": "completed",
            "original_who": "coordinator",
            "new_who": "worker1",
            "timestamp": CLOCK,
        }
    ]
    check(got == expected, f"with prefix='node1.' it returned the conflicts {got!r}")
    data = target.to_dict()
    check(
        data == {"job.status": "processing", "node1.job.status": "completed", "node1.rows": 10},
        f"with prefix='node1.' and a plain merge_from strategy the target became {data!r}",
    )
    writers = {k: v for k, v in last_writers(target).items() if k.startswith("node1.")}
    check(
        writers == {"node1.job.status": "worker1", "node1.rows": "worker1"},
        f"with prefix='node1.' the merged keys' last writers were {writers!r}, not the "
        "source's who (stage with merge_from, which keeps it)",
    )
    # no trailing dot: the prefix is still prepended as is
    glued = build(learner, [("w2rows", "old", "coordinator")])
    returned = aggregator(learner).merge_with_strategy(
        glued,
        build(learner, [("rows", 5, "worker2"), ("ok", True, "worker2")]),
        learner.make(expr(COPY_ALL)),
        prefix="w2",
    )
    got = read_conflicts(learner, returned, "merge_with_strategy()")
    data = glued.to_dict()
    check(
        data == {"w2rows": 5, "w2ok": True} and [c["key"] for c in got] == ["w2rows"],
        f"with prefix='w2' (no trailing dot) the target became {data!r} and the conflicts were "
        f"on {[c['key'] for c in got]!r}; the keys must be 'w2rows' and 'w2ok'",
    )
    plain = build(learner, [("a", 1, "t")])
    aggregator(learner).merge_with_strategy(
        plain, build(learner, [("b", 2, "s")]), learner.make(expr(COPY_ALL)), prefix=""
    )
    check(plain.to_dict() == {"a": 1, "b": 2}, f"prefix='' gave {plain.to_dict()!r}")


@case(
    "5.1",
    0.5,
    "merge_with_strategy() must raise ValueError for a string that is not one of the four "
    "names, with that string in its message, and TypeError for a strategy that is neither a "
    "str nor callable, changing nothing",
    rules=("5.1-j", "5.1-l", "5.1-m"),
    critical=True,
)
def test_5_1_bad_strategy(learner):
    target, source = build(learner, SERVICES_TARGET), build(learner, SERVICES_SOURCE)
    before = untouched(target)
    agg = aggregator(learner)
    # part of a real name, another spelling of one, and a name with non-ASCII letters
    for name in ("first_write", "Last_Write_Wins", "größte_zahl"):
        exc = raises(
            lambda name=name: agg.merge_with_strategy(target, source, name),
            "ValueError",
            f"strategy={name!r}",
        )
        check(
            names(exc.message, name),
            f"for strategy={name!r} the message {exc.message!r} does not name {name!r}",
        )
    for value in (42, None):
        raises(
            lambda value=value: agg.merge_with_strategy(target, source, value),
            "TypeError",
            f"strategy={value!r}",
        )
    check(untouched(target) == before, "a rejected strategy changed the target")
    check(records(agg) == NO_RECORDS, f"a rejected strategy was recorded: {records(agg)!r}")


@case(
    "5.1",
    0.5,
    "generate_merge_report() must return exactly total_merges, total_conflicts, keys_merged "
    "(keys added or changed by !=), strategies, conflicted_keys (distinct, sorted) and "
    "conflicts (as to_dict(), in order); the records must be kept by merge_with_strategy",
    rules=("5.1-t", "5.1-u", "5.1-v", "5.1-x", "5.1-y"),
)
def test_5_1_report(learner):
    agg = aggregator(learner)
    fresh = agg.generate_merge_report()
    zero = {
        "total_merges": 0,
        "total_conflicts": 0,
        "keys_merged": 0,
        "strategies": {},
        "conflicted_keys": [],
        "conflicts": [],
    }
    check(fresh == zero, f"a new aggregator reported {fresh!r}")
    copy_all, keep_all = learner.make(expr(COPY_ALL)), learner.make(expr(KEEP_ALL))
    target = learner.Context()
    s1 = [("z", 1, "s1"), ("b", "x", "s1")]
    s2 = [("z", 2, "s2"), ("c", [1], "s2"), ("b", "x", "s2")]
    s3 = [("b", "y", "s3"), ("z", 2, "s3"), ("d", 0, "s3")]
    s4 = [("z", 3, "s4")]
    s5 = [("z", 3.0, "s5")]  # 3.0 == 3: written again, but its value did not change
    steps = [(s1, copy_all, None), (s2, copy_all, None), (s3, keep_all, None)]
    steps += [(s1, copy_all, "p."), (s4, copy_all, None), (s5, copy_all, None)]
    for writes, strategy, prefix in steps:
        agg.merge_with_strategy(target, build(learner, writes), strategy, prefix=prefix)

    def conflict(key, old, new, old_who, new_who):
        return {
            "key": key,
            "original_value": old,
            "new_value": new,
            "original_who": old_who,
            "new_who": new_who,
            "timestamp": CLOCK,
        }

    expected = {
        "total_merges": 6,
        "total_conflicts": 3,
        "keys_merged": 2 + 2 + 0 + 2 + 1 + 0,
        "strategies": {"copy_all": 5, "keep_all": 1},
        "conflicted_keys": ["b", "z"],
        "conflicts": [
            conflict("z", 1, 2, "s1", "s2"),
            conflict("b", "x", "y", "s2", "s3"),
            conflict("z", 2, 3, "s2", "s4"),
        ],
    }
    report = agg.generate_merge_report()
    check(isinstance(report, dict), f"it returned {report!r}")
    wrong = {k: report.get(k, "<missing>") for k in expected if report.get(k) != expected[k]}
    extra = sorted(set(report) - set(expected))
    check(
        not wrong and not extra,
        f"after six merges these entries were wrong: {wrong!r}"
        + (f"; unexpected keys {extra}" if extra else "")
        + f" (expected {expected!r})",
    )


@case(
    "5.1",
    0.25,
    "merge_with_strategy() must never change the source context",
    rules=("5.1-s",),
    critical=True,
)
def test_5_1_source_unchanged(learner):
    source = build(learner, SERVICES_SOURCE)
    before = untouched(source)
    agg = aggregator(learner)
    copy_all = learner.make(expr(COPY_ALL))
    agg.merge_with_strategy(build(learner, SERVICES_TARGET), source, copy_all)
    agg.merge_with_strategy(build(learner, SERVICES_TARGET), source, copy_all, prefix="n.")
    check(untouched(source) == before, f"the source became {source.to_dict()!r}")


def saved_strategy(name: str) -> expr:
    """MergeStrategy's own class attribute ``name`` (the staticmethod object), to put back."""
    return expr(f"vars(__import__('__learner__').MergeStrategy).get({name!r})")


@case(
    "5.1",
    0.5,
    "merge_with_strategy() must use, for a strategy name (and for the default, "
    "last_write_wins), MergeStrategy's static method of that name, and count the merge "
    "under that name in strategy_counts",
    rules=("5.1-h", "5.1-i", "5.1-v"),
)
def test_5_1_strategy_names(learner):
    # MergeStrategy's four methods are replaced, for this case only, by probes that write
    # their own name into the target: exercise 5.1 is graded without exercise 5.2's code.
    cls = learner.MergeStrategy
    originals = {name: learner.make(saved_strategy(name)) for name in NAMES}
    try:
        for name in NAMES:
            probe = f"staticmethod(lambda t, s, c: t.set('chosen', {name!r}, who='probe'))"
            setattr(cls, name, learner.make(expr(probe)))
        trial = learner.Context()
        cls.numeric_aggregation(trial, learner.Context(), [])
        confirm(trial.get("chosen") == "numeric_aggregation", "replacing MergeStrategy's methods")

        agg = aggregator(learner)
        order = [
            "first_write_wins",
            "conflict_detection",
            "first_write_wins",
            None,  # the default strategy
            "numeric_aggregation",
            "first_write_wins",
        ]
        chosen = []
        for name in order:
            target = build(learner, SERVICES_TARGET)
            source = build(learner, SERVICES_SOURCE)
            if name is None:
                agg.merge_with_strategy(target, source)
            else:
                agg.merge_with_strategy(target, source, name)
            chosen.append(target.get("chosen"))
        wanted = [name or "last_write_wins" for name in order]
        check(
            chosen == wanted,
            f"for the strategies {wanted!r}, in this order, MergeStrategy's methods "
            f"{chosen!r} were called (None: none of them)",
        )
        counts = agg.strategy_counts.value()
        expected = {
            "first_write_wins": 3,
            "conflict_detection": 1,
            "last_write_wins": 1,
            "numeric_aggregation": 1,
        }
        check(counts == expected, f"strategy_counts became {counts!r}, expected {expected!r}")
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


# A strategy that keeps, in the grader's list ``box``, what it received and what the
# aggregator had recorded when it was called.
SPY = (
    "lambda box, agg: (lambda t, s, c: box.extend("
    "[s, c, len(agg.conflicts), dict(agg.merge_stats), dict(agg.strategy_counts)]))"
)


@case(
    "5.1",
    0.25,
    "merge_with_strategy() must pass the source itself to the strategy when there is no "
    "prefix (a new staging Context when there is one), record the merge only after the "
    "strategy has returned, and return the very list the strategy received, whose objects "
    "are the ones recorded in conflicts",
    rules=("5.1-p", "5.1-r", "5.1-t", "5.1-w"),
)
def test_5_1_same_objects(learner):
    agg = aggregator(learner)
    box = learner.keep([])
    spy = in_worker(learner, SPY, box, agg)
    recorded_before, stats_before, counts_before = NO_RECORDS
    for round_number, prefix in enumerate((None, "", "ns."), start=1):
        target, source = build(learner, SERVICES_TARGET), build(learner, SERVICES_SOURCE)
        returned = agg.merge_with_strategy.live(target, source, spy, prefix=prefix)
        counts_seen, stats_seen, recorded_seen = box.pop(), box.pop(), box.pop()
        received, staged = box.pop.live(), box.pop.live()
        confirm(len(box) == 0, "reading what the strategy received")
        if prefix:
            check(
                not learner.same(staged, source) and not learner.same(staged, target),
                f"with prefix={prefix!r} the strategy must receive a new staging Context",
            )
        else:
            check(
                learner.same(staged, source),
                f"with prefix={prefix!r} the strategy must receive the source itself",
            )
        check(
            learner.same(returned, received),
            f"with prefix={prefix!r} merge_with_strategy() returned another list than the one "
            "it passed to the strategy",
        )
        check(
            (recorded_seen, stats_seen, counts_seen)
            == (recorded_before, stats_before, counts_before),
            f"merge {round_number}: while the strategy ran, the aggregator had already "
            f"recorded {recorded_seen} conflicts and merge_stats {stats_seen!r}; record only "
            "once the strategy has returned",
        )
        items = learner.builtin("list", returned)
        recorded = agg.conflicts.value()
        fresh = recorded[recorded_before:] if isinstance(recorded, list) else []
        check(
            len(items) == len(fresh)
            and all(same(learner, a, b) for a, b in zip(items, fresh, strict=True)),
            f"with prefix={prefix!r} the returned conflicts must be the very objects appended "
            "to conflicts",
        )
        recorded_before += len(items)
        stats_before, counts_before = agg.merge_stats.value(), agg.strategy_counts.value()
    check(
        recorded_before == 4, f"the two merges without a prefix found {recorded_before} conflicts"
    )


@case(
    "5.1",
    0.25,
    "generate_merge_report() must return a new dict on every call, holding a copy of "
    "strategy_counts: changing a report must not change the aggregator or the next report",
    rules=("5.1-x",),
)
def test_5_1_report_is_new(learner):
    agg = aggregator(learner)
    copy_all = learner.make(expr(COPY_ALL))
    agg.merge_with_strategy(
        build(learner, SERVICES_TARGET), build(learner, SERVICES_SOURCE), copy_all
    )
    expected = agg.generate_merge_report()
    first, second = agg.generate_merge_report.live(), agg.generate_merge_report.live()
    check(not learner.same(first, second), "two calls returned the same dict")
    check(
        not learner.same(first, agg.merge_stats.live_value()),
        "the report is merge_stats itself, not a new dict",
    )
    strategies = first.pop.live("strategies")
    check(
        not learner.same(strategies, agg.strategy_counts.live_value()),
        "the report's strategies is strategy_counts itself, not a copy",
    )
    strategies.update({"copy_all": 99, "ghost": 1})
    first.clear()
    counts = agg.strategy_counts.value()
    check(counts == {"copy_all": 1}, f"changing a report changed strategy_counts to {counts!r}")
    again = agg.generate_merge_report()
    check(again == expected, f"after a report was changed, the next report was {again!r}")


# --------------------------------------------------------------------------- exercise 5.2
def strategy_call(learner, name: str, target: Remote, source: Remote) -> Any:
    """Call MergeStrategy.<name> with the conflicts detect_conflicts would give (built here);
    returns what the method returned."""
    s_data, s_who = source.to_dict(), last_writers(source)
    conflicts = [
        learner.ConflictInfo(
            key=c["key"],
            original_value=c["original_value"],
            new_value=c["new_value"],
            original_who=c["original_who"],
            new_who=c["new_who"],
            timestamp=0.0,
        )
        for c in expected_conflicts(target.to_dict(), last_writers(target), s_data, s_who, 0.0)
    ]
    return getattr(learner.MergeStrategy, name)(target, source, conflicts)


def history_tail(ctx: Remote, count: int) -> Writes:
    """The last ``count`` history entries as (key, value, who), like ``Writes``."""
    history = ctx.get_history()
    return [(e["key"], e["after"], e["step"]) for e in history[len(history) - count :]]


def all_writes(ctx: Remote) -> Writes:
    return [(e["key"], e["after"], e["step"]) for e in ctx.get_history()]


@case(
    "5.2",
    0.5,
    "MergeStrategy.last_write_wins() must do what target.merge_from(source) does: source's "
    "values win whole (a dict under a key replaces the target's dict, never merged into it) "
    "and the source's writes are replayed with their who; it returns None",
    rules=("5.2-a", "5.2-b"),
)
def test_5_2_lww_example(learner):
    t_writes: Writes = [("a", 1, "t"), ("keep", "k", "t"), ("cfg", {"host": "h", "port": 1}, "t")]
    s_writes: Writes = [
        ("a", 5, "s1"),
        ("n", None, "s1"),
        ("a", 6, "s2"),
        ("cfg", {"port": 2}, "s2"),
    ]
    target, source = build(learner, t_writes), build(learner, s_writes)
    before = untouched(source)
    returned = strategy_call(learner, "last_write_wins", target, source)
    check(returned is None, f"it returned {returned!r} instead of None")
    data = target.to_dict()
    expected = {"a": 6, "keep": "k", "cfg": {"port": 2}, "n": None}
    check(data == expected, f"the target became {data!r}, expected {expected!r}")
    check(
        history_tail(target, 4) == s_writes and len(target.get_history()) == 7,
        f"the target's history, as (key, value, who), should end with the source's writes "
        f"{s_writes!r}; it was {all_writes(target)!r}",
    )
    check(untouched(source) == before, "the source changed")


@case(
    "5.2",
    0.75,
    "last_write_wins applied source after source must equal applying the sources' values in "
    "order (property test)",
    rules=("5.2-b",),
)
def test_5_2_lww_property(learner):
    def prop(example):
        t_items, sources = example
        target = build(learner, from_items(t_items))
        model = {k: v for k, (v, _) in t_items.items()}
        for i, s_items in enumerate(sources, start=1):
            strategy_call(learner, "last_write_wins", target, build(learner, from_items(s_items)))
            model.update({k: v for k, (v, _) in s_items.items()})
            data = target.to_dict()
            check(
                data == model,
                f"target {show(t_items)}, sources {[show(s) for s in sources]}: after source "
                f"{i} the target was {data!r}, expected {model!r}",
            )

    holds(
        st.tuples(CONTEXTS, st.lists(CONTEXTS, min_size=1, max_size=3)),
        prop,
        lambda ex: f"target {show(ex[0])} and sources {[show(s) for s in ex[1]]}",
    )


@case(
    "5.2",
    0.5,
    "MergeStrategy.first_write_wins() must keep every key the target holds (even one holding "
    "None) and add the others in source order, each with the who of the source's last write "
    "(None when it has no history entry); it returns None",
    rules=("5.2-a", "5.2-c", "5.2-d"),
)
def test_5_2_fww_example(learner):
    t_writes: Writes = [("a", 1, "t"), ("same", "x", "t"), ("nil", None, "t")]
    s_writes: Writes = [
        ("a", 2, "s"),
        ("new2", None, "s2"),
        ("same", "x", "s"),
        ("nil", 5, "s"),
        ("new1", [1], "s1"),
        ("new2", "zwei", "s3"),  # a second writer: the last one counts
    ]
    target = build(learner, t_writes)
    # 'grüße' comes from JSON, so the source holds it without any history entry
    source = learner.Context.from_json('{"grüße": "hallo", "a": 9}')
    for key, value, who in s_writes:
        source.set(key, value, who=who)
    before = untouched(source)
    returned = strategy_call(learner, "first_write_wins", target, source)
    check(returned is None, f"it returned {returned!r} instead of None")
    data = target.to_dict()
    check(
        data == {"a": 1, "same": "x", "nil": None, "grüße": "hallo", "new2": "zwei", "new1": [1]},
        f"the target became {data!r}",
    )
    tail = history_tail(target, 3)
    check(
        tail == [("grüße", "hallo", None), ("new2", "zwei", "s3"), ("new1", [1], "s1")]
        and len(target.get_history()) == 6,
        "the target's history, as (key, value, who), should end with grüße (who None: no "
        "history entry in the source), new2 (who 's3', its last writer) then new1 (who 's1'); "
        f"it was {all_writes(target)!r}",
    )
    check(untouched(source) == before, "the source changed")


@case(
    "5.2",
    0.75,
    "first_write_wins must never overwrite a key the target holds, and take each new key from "
    "the first source that has it (property test)",
    rules=("5.2-c", "5.2-d"),
)
def test_5_2_fww_property(learner):
    def prop(example):
        t_items, sources = example
        target = build(learner, from_items(t_items))
        model = {k: v for k, (v, _) in t_items.items()}
        for i, s_items in enumerate(sources, start=1):
            strategy_call(learner, "first_write_wins", target, build(learner, from_items(s_items)))
            for key, (value, _) in s_items.items():
                model.setdefault(key, value)
            data = target.to_dict()
            check(
                data == model,
                f"target {show(t_items)}, sources {[show(s) for s in sources]}: after source "
                f"{i} the target was {data!r}, expected {model!r}",
            )

    holds(
        st.tuples(CONTEXTS, st.lists(CONTEXTS, min_size=1, max_size=3)),
        prop,
        lambda ex: f"target {show(ex[0])} and sources {[show(s) for s in ex[1]]}",
    )


@case(
    "5.2",
    0.75,
    "MergeStrategy.numeric_aggregation() must add up conflicting numbers (bool is not a "
    "number; equal numbers are not a conflict) with who='numeric_aggregation', and merge "
    "everything else as last write wins, with the who of the source's last write",
    rules=("5.2-a", "5.2-e", "5.2-f", "5.2-g", "5.2-h"),
)
def test_5_2_numeric_example(learner):
    t_writes: Writes = [
        ("users", 25000, "a"),
        ("ratio", 0.5, "a"),
        ("flag", True, "a"),
        ("health", "healthy", "a"),
        ("same", 5, "a"),
        ("target_only", 1, "a"),
        ("count", 2, "a"),
    ]
    s_writes: Writes = [
        ("users", 1, "b0"),  # only the source's final value counts
        ("users", 50000, "b"),
        ("ratio", 0.25, "b"),
        ("flag", 3, "b"),
        ("health", "unknown", "b1"),
        ("health", "degraded", "b2"),
        ("same", 5, "b"),
        ("source_only", 7, "b"),
        ("count", False, "b"),
    ]
    target, source = build(learner, t_writes), build(learner, s_writes)
    before = untouched(source)
    returned = strategy_call(learner, "numeric_aggregation", target, source)
    check(returned is None, f"it returned {returned!r} instead of None")
    expected = {
        "users": 75000,
        "ratio": 0.75,
        "flag": 3,
        "health": "degraded",
        "same": 5,
        "target_only": 1,
        "count": False,
        "source_only": 7,
    }
    data = target.to_dict()
    wrong = {k: data.get(k, "<missing>") for k in expected if data.get(k, object()) != expected[k]}
    check(
        data == expected and type(data["count"]) is bool,
        f"these keys were wrong: {wrong!r} (expected {expected!r})",
    )
    writers = last_writers(target)
    seen = {k: writers.get(k) for k in ("users", "ratio", "health", "source_only")}
    wanted = {
        "users": "numeric_aggregation",
        "ratio": "numeric_aggregation",
        "health": "b2",
        "source_only": "b",
    }
    check(seen == wanted, f"the last writers were {seen!r}, expected {wanted!r}")
    check(untouched(source) == before, "the source changed")


@case(
    "5.2",
    0.75,
    "numeric_aggregation must sum exactly the conflicting numbers and leave every other key "
    "to last write wins (property test)",
    rules=("5.2-e", "5.2-f", "5.2-g", "5.2-h"),
)
def test_5_2_numeric_property(learner):
    def prop(example):
        t_items, s_items = example
        target = build(learner, from_items(t_items))
        strategy_call(learner, "numeric_aggregation", target, build(learner, from_items(s_items)))
        model = {k: v for k, (v, _) in t_items.items()}
        for key, (value, _) in s_items.items():
            old = model.get(key)
            if key in model and old != value and is_number(old) and is_number(value):
                model[key] = old + value
            else:
                model[key] = value
        data = target.to_dict()
        check(
            data == model,
            f"for target {show(t_items)} and source {show(s_items)} the target became "
            f"{data!r}, expected {model!r}",
        )

    holds(
        st.tuples(CONTEXTS, CONTEXTS),
        prop,
        lambda ex: f"target {show(ex[0])} and source {show(ex[1])}",
    )


@case(
    "5.2",
    0.5,
    "MergeStrategy.conflict_detection() must leave the target exactly as it was when there is "
    "a conflict, and merge like last_write_wins when there is none",
    rules=("5.2-i", "5.2-j"),
    critical=True,
)
def test_5_2_conflict_detection(learner):
    t_writes: Writes = [("a", 1, "t"), ("b", "x", "t")]
    target = build(learner, t_writes)
    before = (untouched(target), len(target.get_history()))
    source = build(learner, [("new", 1, "s"), ("b", "y", "s"), ("a", 1, "s")])
    strategy_call(learner, "conflict_detection", target, source)
    check(
        (untouched(target), len(target.get_history())) == before,
        f"with a conflict on 'b' the target became {target.to_dict()!r}",
    )
    clean: Writes = [("new", 1, "s1"), ("a", 1, "s1"), ("new", 2, "s2")]
    strategy_call(learner, "conflict_detection", target, build(learner, clean))
    data = target.to_dict()
    check(data == {"a": 1, "b": "x", "new": 2}, f"without conflicts the target became {data!r}")
    check(
        history_tail(target, 3) == clean,
        "without conflicts the source's writes should be replayed as merge_from does",
    )


@case(
    "5.2",
    0.5,
    "through DistributedAggregator.merge_with_strategy(), each of the four strategies must "
    "merge as its rule says",
    rules=("5.2-b", "5.2-c", "5.2-f", "5.2-g", "5.2-j"),
)
def test_5_2_by_name(learner):
    t_writes: Writes = [("a", 1, "t"), ("s", "x", "t"), ("same", 2, "t")]
    s_writes: Writes = [("a", 2, "u"), ("s", "y", "u"), ("same", 2, "u"), ("new", True, "u")]
    expected = {
        "last_write_wins": {"a": 2, "s": "y", "same": 2, "new": True},
        "first_write_wins": {"a": 1, "s": "x", "same": 2, "new": True},
        "numeric_aggregation": {"a": 3, "s": "y", "same": 2, "new": True},
        "conflict_detection": {"a": 1, "s": "x", "same": 2},
    }
    agg = aggregator(learner)
    for name in NAMES:
        target = build(learner, t_writes)
        agg.merge_with_strategy(target, build(learner, s_writes), name)
        data = target.to_dict()
        check(data == expected[name], f"with strategy {name!r} the target became {data!r}")


# --------------------------------------------------------------------------- exercise 5.3
BASE: Writes = [
    ("database.host", "localhost", "base_config"),
    ("database.port", 5432, "base_config"),
    ("app.debug", False, "base_config"),
    ("app.log_level", "INFO", "base_config"),
]
DEV: Writes = [
    ("database.host", "dev-db.internal", "dev_config"),
    ("app.debug", True, "dev_config"),
    ("app.log_level", "DEBUG", "dev_config"),
]
FLAGS: Writes = [
    ("features.new_checkout", True, "feature_flags"),
    ("app.log_level", "INFO", "feature_flags"),
]


def seed_layering(learner) -> Remote:
    layering = learner.ConfigLayering()
    layering.add_layer("feature_flags", build(learner, FLAGS), 20)
    layering.add_layer("base_config", build(learner, BASE), 0)
    layering.add_layer("dev_config", build(learner, DEV), 10)
    return layering


SEED_EFFECTIVE = {
    "database.host": ("dev-db.internal", "dev_config"),
    "database.port": (5432, "base_config"),
    "app.debug": (True, "dev_config"),
    "app.log_level": ("INFO", "feature_flags"),
    "features.new_checkout": (True, "feature_flags"),
}


@case(
    "5.3",
    0.75,
    "build_effective_config() must take each key from the highest-priority layer that holds "
    "it, and get_config_source() must name that layer",
    rules=("5.3-b", "5.3-h", "5.3-i", "5.3-m"),
)
def test_5_3_seed_example(learner):
    layering = seed_layering(learner)
    effective = layering.build_effective_config()
    check(is_a(learner, effective, "Context"), f"it returned {effective!r}, not a Context")
    data = effective.to_dict()
    expected = {k: v for k, (v, _) in SEED_EFFECTIVE.items()}
    check(data == expected, f"for base(0), dev(10) and flags(20) it built {data!r}")
    sources = {key: layering.get_config_source(key) for key in SEED_EFFECTIVE}
    expected_sources = {k: name for k, (_, name) in SEED_EFFECTIVE.items()}
    check(sources == expected_sources, f"get_config_source() named {sources!r}")


@case(
    "5.3",
    0.5,
    "among layers of equal priority the layer added later must win, in both "
    "build_effective_config() and get_config_source()",
    rules=("5.3-g", "5.3-i", "5.3-m"),
)
def test_5_3_ties(learner):
    layering = learner.ConfigLayering()
    layering.add_layer("zeta", build(learner, [("k", "from zeta", "z"), ("z", 1, "z")]), 5)
    layering.add_layer("low", build(learner, [("k", "from low", "l")]), 1)
    layering.add_layer("alpha", build(learner, [("k", "from alpha", "a")]), 5)
    data = layering.build_effective_config().to_dict()
    check(
        data == {"k": "from alpha", "z": 1},
        f"zeta then alpha were added, both with priority 5; the effective config was {data!r}",
    )
    source = layering.get_config_source("k")
    check(source == "alpha", f"get_config_source('k') returned {source!r}")


@case(
    "5.3",
    0.25,
    "layer_order must list the names from the lowest priority to the highest, equal "
    "priorities in the order added",
    rules=("5.3-f", "5.3-g"),
)
def test_5_3_layer_order(learner):
    layering = learner.ConfigLayering()
    for name, priority in (("a", 3), ("b", -1), ("c", 3), ("d", 0), ("e", -1)):
        layering.add_layer(name, learner.Context(), priority)
    order = layering.layer_order.value()
    check(order == ["b", "e", "d", "a", "c"], f"layer_order was {order!r}")


@case(
    "5.3",
    0.25,
    "get_config_source() must return None for a key no layer holds, and no layers must "
    "give an empty effective Context",
    rules=("5.3-l", "5.3-n"),
)
def test_5_3_missing_and_empty(learner):
    layering = seed_layering(learner)
    result = layering.get_config_source("no.such.key")
    check(result is None, f"for a key no layer holds it returned {result!r}")
    empty = learner.ConfigLayering()
    effective = empty.build_effective_config()
    check(
        is_a(learner, effective, "Context") and effective.to_dict() == {},
        f"with no layers it returned {effective!r}",
    )
    check(empty.get_config_source("a") is None, "with no layers get_config_source() is not None")


@case(
    "5.3",
    0.5,
    "build_effective_config() must return a new Context on every call and never change the layers",
    rules=("5.3-h", "5.3-k"),
)
def test_5_3_new_context(learner):
    base, dev = build(learner, BASE), build(learner, DEV)
    before = (untouched(base), untouched(dev))
    layering = learner.ConfigLayering()
    layering.add_layer("base_config", base, 0)
    layering.add_layer("dev_config", dev, 10)
    first = layering.build_effective_config()
    check((untouched(base), untouched(dev)) == before, "building changed a layer's context")
    first.set("scribble", 1, who="grader")
    second = layering.build_effective_config()
    check(
        is_a(learner, second, "Context") and "scribble" not in second.to_dict(),
        "changing one effective config changed the next one",
    )
    check(
        not learner.same(first, second) and not learner.same(second, base),
        "build_effective_config() returned a Context it had returned before, or a layer itself",
    )
    check((untouched(base), untouched(dev)) == before, "changing the result changed a layer")


@case(
    "5.3",
    0.25,
    "add_layer() must keep the context itself in layers (not a copy), so later changes to a "
    "layer show in the next effective config",
    rules=("5.3-d",),
)
def test_5_3_live_layers(learner):
    base = build(learner, BASE)
    layering = learner.ConfigLayering()
    layering.add_layer("base_config", base, 0)
    layering.add_layer("dev_config", build(learner, DEV), 10)
    stored = layering.layers.value()
    check(
        isinstance(stored, dict) and same(learner, stored.get("base_config"), base),
        "layers['base_config'] is not the context that was added (a copy?)",
    )
    base.set("cache.size", 128, who="ops")
    data = layering.build_effective_config().to_dict()
    check(data.get("cache.size") == 128, f"a key set in a layer after adding it is missing: {data}")
    check(layering.get_config_source("cache.size") == "base_config", "its source is not named")


@case(
    "5.3",
    0.25,
    "add_layer() must raise ValueError naming a name that is already a layer, and change nothing",
    rules=("5.3-c",),
    critical=True,
)
def test_5_3_duplicate(learner):
    layering = seed_layering(learner)
    zurich = build(learner, [("site", "Zürich", "ops")])
    layering.add_layer("zürich", zurich, 5)
    before = layering.priorities.value()
    for name in ("dev_config", "zürich"):
        exc = raises(
            lambda name=name: layering.add_layer(name, build(learner, [("site", "x", "x")]), 99),
            "ValueError",
            f"adding {name!r} twice",
        )
        check(
            names(exc.message, name),
            f"adding {name!r} twice: the message {exc.message!r} does not name the layer",
        )
    stored = layering.layers.value()
    check(
        isinstance(stored, dict) and same(learner, stored.get("zürich"), zurich),
        "after the rejected layer, layers['zürich'] is no longer the context first added",
    )
    priorities = layering.priorities.value()
    check(priorities == before, f"after the rejected layers, priorities became {priorities!r}")
    data = layering.build_effective_config().to_dict()
    expected = {k: v for k, (v, _) in SEED_EFFECTIVE.items()} | {"site": "Zürich"}
    check(data == expected, f"after the rejected layers the effective config was {data!r}")
    order = layering.layer_order.value()
    check(
        order == ["base_config", "zürich", "dev_config", "feature_flags"],
        f"after the rejected layer layer_order was {order!r}",
    )


@case(
    "5.3",
    0.75,
    "the effective config must take each key from the highest-priority layer holding it (ties: "
    "the later layer), and get_config_source must name that layer (property test)",
    rules=("5.3-b", "5.3-f", "5.3-g", "5.3-i", "5.3-m"),
)
def test_5_3_property(learner):
    layer_names = st.sampled_from(["base", "dev", "prod", "flags", "user", "alpha", "zeta"])
    layers = st.lists(
        st.tuples(layer_names, st.integers(0, 2), CONTEXTS),
        max_size=4,
        unique_by=lambda layer: layer[0],
    )

    def describe(example):
        return "layers added in this order: " + ", ".join(
            f"{name} (priority {priority}) {show(items)}" for name, priority, items in example
        )

    def prop(example):
        layering = learner.ConfigLayering()
        for name, priority, items in example:
            layering.add_layer(name, build(learner, from_items(items)), priority)
        ordered = sorted(example, key=lambda layer: layer[1])  # stable: ties keep added order
        model: dict[str, Any] = {}
        source: dict[str, str] = {}
        for name, _, items in ordered:
            for key, (value, _) in items.items():
                model[key] = value
                source[key] = name
        data = layering.build_effective_config().to_dict()
        check(
            data == model,
            f"for {describe(example)} the effective config was {data!r}, expected {model!r}",
        )
        for key in ("a", "b", "c", "x.y", "x.z"):
            named = layering.get_config_source(key)
            check(
                named == source.get(key),
                f"for {describe(example)} get_config_source({key!r}) returned {named!r}, "
                f"expected {source.get(key)!r}",
            )

    holds(layers, prop, describe)


@case(
    "5.3",
    0.25,
    "the effective config's history must keep every layer's writes, in layer_order, each with "
    "its who (built with merge_from)",
    rules=("5.3-j",),
)
def test_5_3_history(learner):
    effective = seed_layering(learner).build_effective_config()
    writers = last_writers(effective)
    expected = {key: name for key, (_, name) in SEED_EFFECTIVE.items()}
    check(writers == expected, f"the last writer of each key was {writers!r}")
    # every write of every layer, not only each key's final value
    ops: Writes = [("cache.size", 64, "ops_alice"), ("cache.size", 128, "ops_bob")]
    user: Writes = [("ui.theme", "dark", "zoë"), ("cache.size", 256, "zoë")]
    layering = learner.ConfigLayering()
    layering.add_layer("user", build(learner, user), 30)
    layering.add_layer("ops", build(learner, ops), 10)
    seen = all_writes(layering.build_effective_config())
    check(
        seen == ops + user,
        f"the effective history, as (key, value, who), was {seen!r}; expected the ops layer's "
        f"writes then the user layer's, {ops + user!r}",
    )


@case(
    "5.3",
    0.25,
    "add_layer(name, ctx) without a priority must use priority 0, and store every layer's "
    "priority in priorities",
    rules=("5.3-a", "5.3-e"),
)
def test_5_3_priorities(learner):
    layering = learner.ConfigLayering()
    layering.add_layer("low", build(learner, [("k", "low", "l")]), -1)
    layering.add_layer("plain", build(learner, [("k", "plain", "p")]))
    layering.add_layer("high", build(learner, [("k", "high", "h")]), 1)
    layering.add_layer("also_plain", build(learner, [("j", 1, "a")]))
    priorities = layering.priorities.value()
    expected = {"low": -1, "plain": 0, "high": 1, "also_plain": 0}
    check(priorities == expected, f"priorities was {priorities!r}, expected {expected!r}")
    order = layering.layer_order.value()
    check(
        order == ["low", "plain", "also_plain", "high"],
        f"layers added without a priority must rank at 0; layer_order was {order!r}",
    )
    source = layering.get_config_source("k")
    check(source == "high", f"get_config_source('k') returned {source!r}")
