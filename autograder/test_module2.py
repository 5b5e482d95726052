"""Hidden suite for module 2 (History and validation). Instructor-only: never released to learners.

Every case checks one sentence of the notebook's exercise text and says, in its message,
which behaviour is wrong. The learner's code is reached through the ``learner`` fixture
(``academy.bridge``); every comparison happens here, on plain data. History functions are
tested with hand-made histories (plain lists of dicts with chosen timestamps), so no test
waits for a clock.
"""

from __future__ import annotations

import re
import time

from academy.bridge.client import expr
from academy.grading.cases import case, check, confirm, is_a, raises, read_back

WORKFLOW = [
    ("customer", "order.id", "ORD123"),
    ("customer", "order.total", 149.99),
    ("customer", "order.status", "pending"),
    ("payment_processor", "payment.status", "approved"),
    ("payment_processor", "payment.amount", 149.99),
    ("warehouse", "fulfillment.status", "picked"),
    ("warehouse", "fulfillment.items_count", 3),
    ("shipping", "shipping.tracking_id", "TRK-48213"),
    ("shipping", "shipping.carrier", "UPS"),
    ("shipping", "order.status", "shipped"),
]
WORKFLOW_DATA = {key: value for _, key, value in WORKFLOW}


def entry(timestamp, step, key, before, after):
    return {"timestamp": timestamp, "step": step, "key": key, "before": before, "after": after}


def context_with(learner, writes):
    """A framework0 Context in the learner's process, written with (who, key, value) triples."""
    ctx = learner.Context()
    for who, key, value in writes:
        ctx.set(key, value, who=who)
    return ctx


def untouched(ctx):
    return len(ctx.get_history()), ctx.version.value(), ctx.to_dict()


def stamps(entries):
    return [e["timestamp"] for e in entries] if isinstance(entries, list) else entries


# --------------------------------------------------------------------------- exercise 2.1
@case("2.1", 0.5, "build_order_workflow() must return a framework0 Context", rules=("2.1-a",))
def test_2_1_returns_context(learner):
    ctx = learner.build_order_workflow()
    check(is_a(learner, ctx, "Context"), f"it returned {ctx!r}")


@case(
    "2.1",
    0.5,
    "build_order_workflow() must hold exactly the nine keys of the table with their final values",
    rules=("2.1-a", "2.1-b"),
)
def test_2_1_values(learner):
    data = learner.build_order_workflow().to_dict()
    check(data == WORKFLOW_DATA, f"the context held {data!r}")


@case(
    "2.1",
    0.75,
    "build_order_workflow() must make the ten writes of the table, in order, each with its who",
    rules=("2.1-a", "2.1-b"),
)
def test_2_1_history(learner):
    history = learner.build_order_workflow().get_history()
    seen = [(e["step"], e["key"], e["after"]) for e in history]
    check(seen == WORKFLOW, f"the history recorded (who, key, value) = {seen!r}")


@case(
    "2.1",
    0.25,
    "every call to build_order_workflow() must return a new, independent Context",
    rules=("2.1-c",),
)
def test_2_1_fresh(learner):
    first = learner.build_order_workflow()
    first.set("order.status", "changed", who="grader")
    second = learner.build_order_workflow()
    check(
        second.to_dict() == WORKFLOW_DATA and len(second.get_history()) == 10,
        "changing one returned context changed the next one",
    )
    check(
        not learner.same(first, second),
        "two calls returned the same Context object (reset or not), not a new one each",
    )


@case(
    "2.1",
    0.5,
    "describe_change() must return '<who> changed <key>: <repr of before> -> <repr of after>'",
    rules=("2.1-d", "2.1-f"),
)
def test_2_1_describe(learner):
    cases = [
        (
            entry(1.0, "shipping", "order.status", "pending", "shipped"),
            "shipping changed order.status: 'pending' -> 'shipped'",
        ),
        (
            entry(2.0, "customer", "order.total", None, 149.99),
            "customer changed order.total: None -> 149.99",
        ),
        (entry(3.0, "ops", "flags.on", True, 0), "ops changed flags.on: True -> 0"),
        (
            entry(4.0, "lagerhaus_ø", "notiz.text", "it's", "naïve ✓"),
            "lagerhaus_ø changed notiz.text: \"it's\" -> 'naïve ✓'",
        ),
    ]
    for given, expected in cases:
        text = learner.describe_change(given)
        check(text == expected, f"for {given!r} it returned {text!r}")


@case(
    "2.1",
    0.5,
    "describe_change() must write (unknown) exactly when step is None (any other step, even "
    "an empty string, is written as it is), and containers with repr()",
    rules=("2.1-e", "2.1-f"),
)
def test_2_1_describe_unknown(learner):
    cases = [
        (
            entry(1.0, None, "cart.items", [], ["book", 2]),
            "(unknown) changed cart.items: [] -> ['book', 2]",
        ),
        (entry(1.5, "", "cart.note", None, "gift"), " changed cart.note: None -> 'gift'"),
        (
            entry(2.0, "api", "user.prefs", {"theme": "dark"}, {"a": [None, ""]}),
            "api changed user.prefs: {'theme': 'dark'} -> {'a': [None, '']}",
        ),
    ]
    for given, expected in cases:
        text = learner.describe_change(given)
        check(text == expected, f"for {given!r} it returned {text!r}")


# --------------------------------------------------------------------------- exercise 2.2
SORTED = [
    entry(100.0, "customer", "order.status", None, "pending"),
    entry(101.0, "warehouse", "fulfillment.status", None, "picked"),
    entry(102.0, "customer", "order.note", None, "leave at door"),
    entry(103.0, "shipping", "order.status", "pending", "shipped"),
    entry(104.0, None, "order.status", "shipped", "cancelled"),
    entry(105.0, "warehouse", "fulfillment.items_count", None, 3),
]

# Not in time order; two entries share timestamp 20.0 (they must keep this relative order).
MIXED = [
    entry(20.0, "ops", "order.status", "b", "c"),
    entry(10.0, "ops", "order.status", None, "a"),
    entry(15.0, "bot", "order.status", "a", "b"),
    entry(20.0, "ops", "order.note", None, "x"),
    entry(5.0, "bot", "order.note", None, "w"),
    entry(20.0, "bot", "order.status", "c", "d"),
]


@case(
    "2.2",
    0.5,
    "get_changes_by_actor() must return the entries whose step equals the actor's name",
    rules=("2.2-c",),
)
def test_2_2_actor_basic(learner):
    got = learner.get_changes_by_actor(SORTED, "warehouse")
    check(got == [SORTED[1], SORTED[5]], f"for 'warehouse' it returned {got!r}")
    got = learner.get_changes_by_actor(SORTED, "customer")
    check(got == [SORTED[0], SORTED[2]], f"for 'customer' it returned {got!r}")


@case(
    "2.2",
    0.5,
    "get_changes_by_actor() must return entries oldest first (by timestamp; equal "
    "timestamps in list order) even when the history is not sorted",
    rules=("2.2-b", "2.2-c"),
)
def test_2_2_actor_order(learner):
    got = learner.get_changes_by_actor(MIXED, "ops")
    check(got == [MIXED[1], MIXED[0], MIXED[3]], f"for 'ops' it returned {got!r}")
    got = learner.get_changes_by_actor(MIXED, "bot")
    check(got == [MIXED[4], MIXED[2], MIXED[5]], f"for 'bot' it returned {got!r}")


@case(
    "2.2",
    0.25,
    "get_changes_by_actor() must return [] when nobody matches, and find step None "
    "for actor_name=None",
    rules=("2.2-d", "2.2-e"),
)
def test_2_2_actor_edges(learner):
    got = learner.get_changes_by_actor(SORTED, "nobody")
    check(got == [], f"for an unknown actor it returned {got!r}")
    got = learner.get_changes_by_actor(SORTED, None)
    check(got == [SORTED[4]], f"for None it returned {got!r}")
    check(learner.get_changes_by_actor([], "ops") == [], "an empty history must give []")


@case(
    "2.2",
    0.5,
    "get_key_evolution() must return the after values of the key's entries, oldest first",
    rules=("2.2-f",),
)
def test_2_2_evolution_basic(learner):
    got = learner.get_key_evolution(SORTED, "order.status")
    check(got == ["pending", "shipped", "cancelled"], f"for order.status it returned {got!r}")
    got = learner.get_key_evolution(SORTED, "fulfillment.items_count")
    check(got == [3], f"for a key written once it returned {got!r}")


@case(
    "2.2",
    0.5,
    "get_key_evolution() must sort by timestamp (equal timestamps in list order) "
    "when the history is not sorted",
    rules=("2.2-b", "2.2-f"),
)
def test_2_2_evolution_order(learner):
    got = learner.get_key_evolution(MIXED, "order.status")
    check(got == ["a", "b", "c", "d"], f"for order.status it returned {got!r}")
    got = learner.get_key_evolution(MIXED, "order.note")
    check(got == ["w", "x"], f"for order.note it returned {got!r}")


@case(
    "2.2",
    0.25,
    "get_key_evolution() must return [] for a key that never appears, and keep "
    "every value as written (None and lists included)",
    rules=("2.2-f", "2.2-g"),
)
def test_2_2_evolution_edges(learner):
    check(learner.get_key_evolution(SORTED, "no.such.key") == [], "an unknown key must give []")
    history = [
        entry(1.0, "a", "k", None, None),
        entry(2.0, "a", "k", None, [1, 2]),
        entry(3.0, "a", "k", [1, 2], 0),
    ]
    got = learner.get_key_evolution(history, "k")
    check(got == [None, [1, 2], 0], f"it returned {got!r}")


TIMED = [
    entry(999.0, "a", "x", None, 1),
    entry(994.5, "a", "x", None, 0),
    entry(1002.0, "b", "y", None, 9),
    entry(995.0, "b", "x", 0, 1),
    entry(1000.0, "a", "z", None, 2),
    entry(900.0, "c", "z", None, 1),
]


@case(
    "2.2",
    0.5,
    "find_recent_changes() must include entries with timestamp >= now - seconds_ago "
    "(the boundary included) and leave out older ones",
    rules=("2.2-h",),
)
def test_2_2_recent_boundary(learner):
    got = stamps(learner.find_recent_changes(TIMED, 5, now=1000.0))
    check(got == [995.0, 999.0, 1000.0, 1002.0], f"with now=1000, 5 seconds: timestamps {got!r}")
    got = stamps(learner.find_recent_changes(TIMED, 100, now=1000.0))
    check(
        got == [900.0, 994.5, 995.0, 999.0, 1000.0, 1002.0],
        f"with now=1000, 100 seconds: timestamps {got!r}",
    )


@case(
    "2.2",
    0.25,
    "find_recent_changes() must return entries oldest first, include entries later "
    "than now, and accept seconds_ago=0",
    rules=("2.2-b", "2.2-h", "2.2-j"),
)
def test_2_2_recent_order(learner):
    got = learner.find_recent_changes(TIMED, 0, now=1000.0)
    check(got == [TIMED[4], TIMED[2]], f"with now=1000, 0 seconds it returned {got!r}")
    got = stamps(learner.find_recent_changes(TIMED, 1.5, now=998.5))
    check(got == [999.0, 1000.0, 1002.0], f"with now=998.5, 1.5 seconds: timestamps {got!r}")


@case(
    "2.2",
    0.5,
    "find_recent_changes() must use time.time() at the moment of the call when now is None",
    rules=("2.2-i",),
)
def test_2_2_recent_clock(learner):
    t = time.time()
    # Stamped just over 30 seconds before this case started: only a clock read earlier (when
    # the function was defined, say) can count it as made in the last 30 seconds.
    history = [
        entry(t - 100.0, "a", "k", None, 1),
        entry(t - 1.0, "a", "k", 2, 3),
        entry(t - 3.0, "a", "k", 1, 2),
        entry(t - 40.0, "a", "k", None, 0),
        entry(t - 30.005, "b", "k", 0, 1),
    ]
    got = learner.find_recent_changes(history, 30)
    check(
        got == [history[2], history[1]],
        "with the default now, 30 seconds: wrong entries (is the clock read when the function "
        "is called?)",
    )
    got = learner.find_recent_changes(history, 60, now=None)
    check(
        got == [history[3], history[4], history[2], history[1]],
        "with now=None, 60 seconds: wrong entries",
    )


@case(
    "2.2",
    0.25,
    "find_recent_changes() must raise ValueError for a negative seconds_ago",
    rules=("2.2-k",),
)
def test_2_2_recent_negative(learner):
    raises(
        lambda: learner.find_recent_changes(TIMED, -1, now=1000.0), "ValueError", "seconds_ago=-1"
    )


@case(
    "2.2",
    0.5,
    "the history functions must not change the history list they are given (no in-place sort)",
    critical=True,
    rules=("2.2-a",),
)
def test_2_2_read_only(learner):
    kept = learner.keep(MIXED)
    learner.get_changes_by_actor(kept, "ops")
    learner.get_key_evolution(kept, "order.status")
    learner.find_recent_changes(kept, 12, now=20.0)
    after = learner.builtin("list", kept)
    check(after == MIXED, "the history list changed (was it sorted in place?)")


@case(
    "2.2",
    0.25,
    "get_changes_by_actor() must return a new list holding the history's own entries (the "
    "dicts themselves, not copies); the other two must return new lists too",
    rules=("2.2-b", "2.2-c"),
)
def test_2_2_entries_themselves(learner):
    kept = learner.keep(MIXED)
    got = learner.get_changes_by_actor.live(kept, "ops")
    check(not learner.same(got, kept), "get_changes_by_actor() returned the history list itself")
    check(read_back(learner, got) == [MIXED[1], MIXED[0], MIXED[3]], "wrong entries for 'ops'")
    originals = kept.copy.live()  # a second list of the very same entry dicts
    confirm(read_back(learner, originals) == MIXED, "copying the history list")
    mine = [originals.pop.live(0) for _ in MIXED]
    returned = [got.pop.live(0) for _ in range(3)]
    check(
        all(learner.same(r, mine[i]) for r, i in zip(returned, (1, 0, 3), strict=True)),
        "get_changes_by_actor() returned copies of the entries, not the entries themselves",
    )
    for name, args in (
        ("get_key_evolution", (kept, "order.status")),
        ("find_recent_changes", (kept, 100, 20.0)),
    ):
        result = getattr(learner, name).live(*args)
        check(not learner.same(result, kept), f"{name}() returned the history list itself")


@case(
    "2.2",
    0.25,
    "the history functions must work on a real Context's get_history()",
    rules=("2.2-c", "2.2-f", "2.2-i"),
)
def test_2_2_real_history(learner):
    ctx = context_with(
        learner,
        [
            ("customer", "order.status", "pending"),
            ("warehouse", "fulfillment.status", "picked"),
            ("warehouse", "fulfillment.items_count", 2),
            ("shipping", "order.status", "shipped"),
        ],
    )
    history = ctx.get_history()
    by_warehouse = learner.get_changes_by_actor(history, "warehouse")
    check(
        [e["key"] for e in by_warehouse] == ["fulfillment.status", "fulfillment.items_count"],
        f"changes by warehouse: {by_warehouse!r}",
    )
    evolution = learner.get_key_evolution(history, "order.status")
    check(evolution == ["pending", "shipped"], f"order.status evolution: {evolution!r}")
    recent = learner.find_recent_changes(history, 60)
    check(recent == history, "all four writes happened in the last 60 seconds")


# --------------------------------------------------------------------------- exercise 2.3
@case(
    "2.3",
    0.25,
    "add_cancellation_bug() must set order.status to 'cancelled' with who='bug_simulator', "
    "in one set and nothing else",
    rules=("2.3-a",),
)
def test_2_3_bug(learner):
    ctx = context_with(learner, WORKFLOW)
    result = learner.add_cancellation_bug(ctx)
    check(result is None, f"it returned {result!r}")
    history = ctx.get_history()
    check(len(history) == 11, f"expected one new history entry, the history has {len(history)}")
    last = history[-1]
    check(
        (last["step"], last["key"], last["before"], last["after"])
        == ("bug_simulator", "order.status", "shipped", "cancelled"),
        f"the new entry was {last!r}",
    )
    check(
        ctx.to_dict() == dict(WORKFLOW_DATA, **{"order.status": "cancelled"}),
        "other keys changed",
    )


CULPRIT_HISTORY = [
    entry(50.0, "retry_job", "order.status", "cancelled", "cancelled"),
    entry(10.0, "customer", "order.status", None, "pending"),
    entry(40.0, "bug_simulator", "order.status", "shipped", "cancelled"),
    entry(30.0, "shipping", "order.status", "pending", "shipped"),
    entry(35.0, "fraud_check", "order.review", None, "cancelled"),
    entry(60.0, "support", "order.status", "cancelled", "shipped"),
]


@case(
    "2.3",
    0.5,
    "find_culprit() must return the earliest entry (by timestamp) that set the key to the "
    "bad value",
    rules=("2.3-b",),
)
def test_2_3_culprit_earliest(learner):
    got = learner.find_culprit(CULPRIT_HISTORY, "order.status", "cancelled")
    check(got == CULPRIT_HISTORY[2], f"it returned {got!r}")
    ties = [
        entry(7.0, "late", "k", None, "bad"),
        entry(5.0, "first", "k", None, "bad"),
        entry(5.0, "second", "k", "bad", "bad"),
    ]
    got = learner.find_culprit(ties, "k", "bad")
    check(got == ties[1], f"with two bad writes at the same timestamp it returned {got!r}")


@case(
    "2.3",
    0.25,
    "find_culprit() must match the key and the after value only, and return None when "
    "no entry set the bad value",
    rules=("2.3-b", "2.3-c"),
)
def test_2_3_culprit_none(learner):
    got = learner.find_culprit(CULPRIT_HISTORY, "order.status", "refunded")
    check(got is None, f"for a value never written it returned {got!r}")
    only_before = [entry(1.0, "support", "order.status", "cancelled", "shipped")]
    got = learner.find_culprit(only_before, "order.status", "cancelled")
    check(got is None, f"an entry whose before (not after) is the bad value gave {got!r}")
    got = learner.find_culprit(CULPRIT_HISTORY, "order.review", "cancelled")
    check(got == CULPRIT_HISTORY[4], f"for order.review it returned {got!r}")
    # an earlier bad write of another key, whose name sorts after the key asked about
    other = [entry(1.0, "tagger", "order.tag", None, "bad"), entry(2.0, "bug", "k", None, "bad")]
    got = learner.find_culprit(other, "k", "bad")
    check(got == other[1], f"an earlier write of another key (order.tag) was returned: {got!r}")


@case(
    "2.3",
    0.25,
    "find_culprit() must not change the history list or its entries (no in-place sort)",
    rules=("2.3-d",),
)
def test_2_3_culprit_read_only(learner):
    kept = learner.keep(CULPRIT_HISTORY)
    found = learner.find_culprit(kept, "order.status", "cancelled")
    check(found == CULPRIT_HISTORY[2], f"it returned {found!r}")
    learner.find_culprit(kept, "order.status", "refunded")
    check(
        read_back(learner, kept) == CULPRIT_HISTORY,
        "the history list changed (was it sorted in place?)",
    )


def names_key(message, key):
    """Does ``message`` name ``key`` on its own (not as part of a longer key or word)?"""
    if not isinstance(message, str):
        return False
    return re.search(rf"(?<![\w.]){re.escape(key)}(?!\.?\w)", message) is not None


def last_entry(ctx):
    last = ctx.get_history()[-1]
    return last["step"], last["key"], last["after"]


@case(
    "2.3",
    0.5,
    "rollback() must set the key back to the value before the bad write, with the given who, "
    "and return True",
    rules=("2.3-f", "2.3-i"),
)
def test_2_3_rollback_simple(learner):
    ctx = context_with(learner, WORKFLOW + [("bug_simulator", "order.status", "cancelled")])
    result = learner.rollback(ctx, "order.status", "cancelled", "support")
    check(result is True, f"it returned {result!r}")
    check(ctx.get("order.status") == "shipped", f"order.status is {ctx.get('order.status')!r}")
    check(len(ctx.get_history()) == 12, "rollback must make exactly one set")
    check(
        last_entry(ctx) == ("support", "order.status", "shipped"),
        f"the repair was recorded as {ctx.get_history()[-1]!r}",
    )
    restored = learner.Context.from_json('{"order.status": "zugestellt", "order.id": "Ö-7"}')
    restored.set("order.status", "cancelled", who="bug_simulator")
    result = learner.rollback(restored, "order.status", "cancelled", "support")
    check(
        result is True and restored.get("order.status") == "zugestellt",
        "the last good value is the before of the bad write, even when no earlier entry "
        f"wrote it; order.status is {restored.get('order.status')!r}",
    )


@case(
    "2.3",
    0.5,
    "rollback() must skip every bad write of the current run: when the bad value was "
    "written several times in a row, restore the value from before the first of them "
    "(other keys' entries do not count)",
    rules=("2.3-f", "2.3-i"),
)
def test_2_3_rollback_repeated(learner):
    writes = [
        ("customer", "order.status", "pending"),
        ("shipping", "order.status", "shipped"),
        ("bug_simulator", "order.status", "cancelled"),
        ("retry_job", "order.status", "cancelled"),
        ("notes", "order.note", "call back"),  # other keys, sorting before and after it
        ("tracker", "order.tracking", "parcel 7"),
        ("retry_job", "order.status", "cancelled"),
    ]
    ctx = context_with(learner, writes)
    result = learner.rollback(ctx, "order.status", "cancelled", "support")
    check(result is True, f"it returned {result!r}")
    check(ctx.get("order.status") == "shipped", f"order.status is {ctx.get('order.status')!r}")
    check(last_entry(ctx) == ("support", "order.status", "shipped"), "the repair was not recorded")


@case(
    "2.3",
    0.25,
    "rollback() must restore the value from before the newest run of bad writes, not "
    "from before an older, already repaired one",
    rules=("2.3-f",),
)
def test_2_3_rollback_latest_run(learner):
    writes = [
        ("customer", "order.status", "pending"),
        ("bug_simulator", "order.status", "cancelled"),
        ("support", "order.status", "processing"),
        ("notes", "order.note", "x"),
        ("shipping", "order.status", "shipped"),
        ("bug_simulator", "order.status", "cancelled"),
    ]
    ctx = context_with(learner, writes)
    result = learner.rollback(ctx, "order.status", "cancelled", "support")
    check(result is True, f"it returned {result!r}")
    check(ctx.get("order.status") == "shipped", f"order.status is {ctx.get('order.status')!r}")


@case(
    "2.3",
    0.25,
    "rollback() must return False and change nothing when the key is missing or its "
    "current value is not the bad value",
    critical=True,
    rules=("2.3-e",),
)
def test_2_3_rollback_nothing_to_do(learner):
    ctx = context_with(
        learner,
        [
            ("shipping", "order.status", "shipped"),
            ("bug_simulator", "order.status", "cancelled"),
            ("support", "order.status", "shipped"),
        ],
    )
    before = untouched(ctx)
    result = learner.rollback(ctx, "order.status", "cancelled", "support")
    check(result is False, f"for a value already repaired it returned {result!r}")
    result = learner.rollback(ctx, "order.missing", "cancelled", "support")
    check(result is False, f"for a missing key it returned {result!r}")
    result = learner.rollback(ctx, "order.missing", None, "support")
    check(result is False, f"for a missing key and bad_value None it returned {result!r}")
    check(untouched(ctx) == before, "the context changed")
    # a current value that differs from the bad one and sorts before it
    ctx = context_with(
        learner,
        [("bug_simulator", "order.status", "cancelled"), ("support", "order.status", "accepted")],
    )
    before = untouched(ctx)
    result = learner.rollback(ctx, "order.status", "cancelled", "support")
    check(result is False, f"for the value 'accepted' (not the bad value) it returned {result!r}")
    check(untouched(ctx) == before, "the context changed although its value was not the bad one")


@case(
    "2.3",
    0.25,
    "rollback() must raise ValueError naming the key, and change nothing, when the history "
    "holds no good value; a key whose first write was bad goes back to None",
    critical=True,
    rules=("2.3-g", "2.3-h"),
)
def test_2_3_rollback_no_good_value(learner):
    restored = learner.Context.from_json('{"order.status": "cancelled"}')
    exc = raises(
        lambda: learner.rollback(restored, "order.status", "cancelled", "support"),
        "ValueError",
        "for a restored context without history",
    )
    check(
        names_key(exc.message, "order.status"), f"the message {exc.message!r} does not name the key"
    )
    restored.set("order.status", "cancelled", who="retry_job")
    before = untouched(restored)
    raises(
        lambda: learner.rollback(restored, "order.status", "cancelled", "support"),
        "ValueError",
        "when every write's before is the bad value",
    )
    check(untouched(restored) == before, "a failed rollback changed the context")

    fresh = context_with(learner, [("bug_simulator", "order.status", "cancelled")])
    result = learner.rollback(fresh, "order.status", "cancelled", "support")
    check(
        result is True and fresh.to_dict() == {"order.status": None},
        "rolling back a key whose first write was bad must set it to None",
    )


# --------------------------------------------------------------------------- exercise 2.4
def validator(learner, data):
    """A ContextValidator over a framework0 Context holding data."""
    ctx = context_with(learner, [("grader", k, v) for k, v in data.items()])
    return ctx, learner.ContextValidator(ctx)


def errors(v):
    return v.last_errors.value()


def err(key, problem, expected=None, actual=None):
    return {"key": key, "problem": problem, "expected": expected, "actual": actual}


@case(
    "2.4",
    0.5,
    "validate_required_keys() must count a key set to None, 0, False, '' or [] as present",
    rules=("2.4-e",),
)
def test_2_4_required_present(learner):
    data = {"a": None, "b": 0, "c": False, "d": "", "e": [], "f": {}, "g": "x"}
    _, v = validator(learner, data)
    result = v.validate_required_keys(list(data))
    check(result is True, f"it returned {result!r}; last_errors {errors(v)!r}")
    check(errors(v) == [], f"last_errors is {errors(v)!r}")


@case(
    "2.4",
    0.5,
    "validate_required_keys() must return False and list one 'missing' error per missing "
    "key, in the order given (for a Context and for a plain dict)",
    rules=("2.4-a", "2.4-f", "2.4-g", "2.4-h", "2.4-i", "2.4-j"),
)
def test_2_4_required_missing(learner):
    _, v = validator(learner, {"user.id": "u1", "user.email": None})
    result = v.validate_required_keys(["user.zip", "user.id", "user.email", "user.age"])
    check(result is False, f"it returned {result!r}")
    expected = [err("user.zip", "missing"), err("user.age", "missing")]
    check(errors(v) == expected, f"last_errors is {errors(v)!r}")
    plain = learner.ContextValidator(learner.keep({"user.id": "u1", "user.email": None}))
    result = plain.validate_required_keys(["user.email", "user.zip", "user.id"])
    check(
        result is False and errors(plain) == [err("user.zip", "missing")],
        f"for a plain dict it returned {result!r}; last_errors {errors(plain)!r}",
    )


@case(
    "2.4",
    0.25,
    "validate_data_types() must return True when every present value matches",
    rules=("2.4-h", "2.4-l"),
)
def test_2_4_types_ok(learner):
    data = {"user.id": "u1", "user.age": 25, "user.prefs": {"a": 1}, "user.tags": ["x"]}
    _, v = validator(learner, data)
    specs = expr("{'user.id': str, 'user.age': int, 'user.prefs': dict, 'user.tags': list}")
    result = v.validate_data_types(specs)
    check(result is True, f"it returned {result!r}; last_errors {errors(v)!r}")
    check(errors(v) == [], f"last_errors is {errors(v)!r}")


@case(
    "2.4",
    0.5,
    "validate_data_types() must report each mismatch as a 'wrong_type' error with the "
    "expected and actual type names, in order",
    rules=("2.4-g", "2.4-i", "2.4-l"),
)
def test_2_4_types_mismatch(learner):
    data = {"user.age": "twenty-five", "user.id": "u1", "user.tags": {"a": 1}}
    _, v = validator(learner, data)
    specs = expr("{'user.tags': list, 'user.id': str, 'user.age': int}")
    result = v.validate_data_types(specs)
    check(result is False, f"it returned {result!r}")
    expected = [
        err("user.tags", "wrong_type", "list", "dict"),
        err("user.age", "wrong_type", "int", "str"),
    ]
    check(errors(v) == expected, f"last_errors is {errors(v)!r}")


@case(
    "2.4",
    0.5,
    "validate_data_types() must check a stored None like any value and skip missing keys",
    rules=("2.4-k", "2.4-o"),
)
def test_2_4_types_none_and_missing(learner):
    _, v = validator(learner, {"user.age": None, "user.nick": None})
    # the missing key first: skipping it must not end the check
    specs = expr("{'user.height': float, 'user.age': int, 'user.nick': (str, type(None))}")
    result = v.validate_data_types(specs)
    check(result is False, f"a stored None for an int: it returned {result!r}")
    expected = [err("user.age", "wrong_type", "int", "NoneType")]
    check(errors(v) == expected, f"last_errors is {errors(v)!r}")
    result = v.validate_data_types(expr("{'user.height': float, 'user.weight': int}"))
    check(result is True, f"with only missing keys it returned {result!r}")


@case(
    "2.4",
    0.5,
    "validate_data_types() must not accept True or False as an int, but accept them for "
    "bool and for (int, bool)",
    rules=("2.4-m", "2.4-n"),
)
def test_2_4_types_bool(learner):
    data = {"flag": True, "count": False, "n": 3, "both": True, "both2": 7}
    _, v = validator(learner, data)
    specs = expr(
        "{'flag': bool, 'count': int, 'n': bool, 'both': (int, bool), 'both2': (int, bool)}"
    )
    result = v.validate_data_types(specs)
    check(result is False, f"it returned {result!r}")
    expected = [
        err("count", "wrong_type", "int", "bool"),
        err("n", "wrong_type", "bool", "int"),
    ]
    check(errors(v) == expected, f"last_errors is {errors(v)!r}")


@case(
    "2.4",
    0.25,
    "validate_data_types() must name tuples of types as 'a or b' and not accept an int as a float",
    rules=("2.4-i", "2.4-p"),
)
def test_2_4_types_tuples(learner):
    data = {"ratio": 25, "ratio2": 25, "score": 2.5, "name": 3}
    _, v = validator(learner, data)
    specs = expr(
        "{'ratio': float, 'ratio2': (int, float), 'score': (int, float), 'name': (str, type(None))}"
    )
    result = v.validate_data_types(specs)
    check(result is False, f"it returned {result!r}")
    expected = [
        err("ratio", "wrong_type", "float", "int"),
        err("name", "wrong_type", "str or NoneType", "int"),
    ]
    check(errors(v) == expected, f"last_errors is {errors(v)!r}")


@case(
    "2.4",
    0.25,
    "validate_json_serializable() must return True for JSON data (a Context's values) "
    "and skip missing keys",
    rules=("2.4-q", "2.4-r"),
)
def test_2_4_json_ok(learner):
    data = {"a": None, "b": [1, 2.5, {"c": [True, "x"]}], "d": {}, "e": -0.0}
    _, v = validator(learner, data)
    result = v.validate_json_serializable(["a", "b", "d", "e", "missing"])
    check(result is True, f"it returned {result!r}; last_errors {errors(v)!r}")
    check(errors(v) == [], f"last_errors is {errors(v)!r}")


@case(
    "2.4",
    0.75,
    "validate_json_serializable() must report each value that is not JSON data as a "
    "'not_json' error naming the first offending piece, depth-first in order (a dict's key "
    "before its value): its type name, or repr for nan/inf",
    rules=("2.4-a", "2.4-q", "2.4-r", "2.4-s", "2.4-t", "2.4-u"),
)
def test_2_4_json_errors(learner):
    payload = learner.make(
        expr(
            "{'a': {'x', 'y'}, 'b': [1, {'k': [2, (3, 4)]}], 'c': float('nan'), "
            "'d': {'ok': 1, 5: 'five'}, 'e': {'ok': [1, 2.5, None, True]}, "
            "'f': [float('-inf')], 'g': object(), 'h': {'p': {'q': b'raw'}}, 'i': (1, 2), "
            "'j': [{'x': {1}}, (2,)], 'k': {7: [float('nan')]}, 'l': {'a': (1, {2})}}"
        )
    )
    v = learner.ContextValidator(payload)
    keys = ["a", "b", "c", "d", "e", "f", "g", "h", "missing", "i", "j", "k", "l"]
    result = v.validate_json_serializable(keys)
    check(result is False, f"it returned {result!r}")
    expected = [
        err("a", "not_json", "JSON data", "set"),
        err("b", "not_json", "JSON data", "tuple"),
        err("c", "not_json", "JSON data", "nan"),
        err("d", "not_json", "JSON data", "int"),
        err("f", "not_json", "JSON data", "-inf"),
        err("g", "not_json", "JSON data", "object"),
        err("h", "not_json", "JSON data", "bytes"),
        err("i", "not_json", "JSON data", "tuple"),
        err("j", "not_json", "JSON data", "set"),
        err("k", "not_json", "JSON data", "int"),
        err("l", "not_json", "JSON data", "tuple"),
    ]
    check(errors(v) == expected, f"last_errors is {errors(v)!r}")


@case(
    "2.4",
    0.25,
    "each validation must replace last_errors (starting from []) and read the context's "
    "current values",
    rules=("2.4-b", "2.4-d", "2.4-g"),
)
def test_2_4_fresh_errors(learner):
    ctx, v = validator(learner, {"user.age": 25})
    check(errors(v) == [], "last_errors must start as []")
    check(v.validate_required_keys(["user.name"]) is False, "user.name is missing")
    old = v.last_errors.live_value()
    check(v.validate_data_types(expr("{'user.age': int}")) is True, "user.age is an int")
    check(
        not learner.same(old, v.last_errors.live_value()),
        "a validation must replace last_errors with a new list, not empty and refill the old one",
    )
    check(errors(v) == [], f"after a passing validation last_errors is {errors(v)!r}")
    ctx.set("user.age", "old", who="grader")
    ctx.set("user.name", "Ann", who="grader")
    check(
        v.validate_data_types(expr("{'user.age': int}")) is False,
        "a value changed after the validator was created was not seen",
    )
    check(v.validate_required_keys(["user.name"]) is True, "a key set later was not seen")
    check(errors(v) == [], f"after a passing validation last_errors is {errors(v)!r}")


@case(
    "2.4",
    0.5,
    "report() must return 'no problems', or one line per error: '<key>: missing' or "
    "'<key>: expected <expected>, got <actual>'",
    rules=("2.4-v", "2.4-w"),
)
def test_2_4_report(learner):
    _, v = validator(learner, {"user.age": "twenty-five", "user.id": 7})
    check(v.report() == "no problems", f"before any validation it returned {v.report()!r}")
    v.validate_required_keys(["user.nonexistent", "user.age", "user.zip"])
    text = v.report()
    check(text == "user.nonexistent: missing\nuser.zip: missing", f"it returned {text!r}")
    v.validate_data_types(expr("{'user.age': int, 'user.id': (str, type(None))}"))
    text = v.report()
    expected = "user.age: expected int, got str\nuser.id: expected str or NoneType, got int"
    check(text == expected, f"it returned {text!r}")
    payload = learner.make(expr("{'user.tags': {'admin'}}"))
    checker = learner.ContextValidator(payload)
    checker.validate_json_serializable(["user.tags"])
    text = checker.report()
    check(text == "user.tags: expected JSON data, got set", f"it returned {text!r}")
    v.validate_required_keys(["user.age"])
    check(v.report() == "no problems", f"after a passing validation it returned {v.report()!r}")


@case(
    "2.4",
    0.25,
    "the validator must only read the context (no set, no new history)",
    critical=True,
    rules=("2.4-c",),
)
def test_2_4_read_only(learner):
    ctx, v = validator(learner, {"a": 1, "b": None, "c": [1]})
    before = untouched(ctx)
    v.validate_required_keys(["a", "b", "z"])
    v.validate_data_types(expr("{'a': int, 'b': int, 'c': list}"))
    v.validate_json_serializable(["a", "b", "c", "z"])
    v.report()
    check(untouched(ctx) == before, "the context changed")
