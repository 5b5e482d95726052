"""Module 7's hidden suite, exercise 7.3: A caching Context. Instructor-only: never released to
learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import secrets

from _support import contains, history

from academy.bridge.client import expr
from academy.grading.cases import case, changed_in_worker, check, confirm, raises, read_back
from academy.grading.cases import contains as learner_contains


def cache_has(learner, cctx, key):
    """``key in cctx.cache``, answered by the learner's cache over the bridge."""
    return learner_contains(learner, cctx.cache.value(), key)


# =========================================================================== exercise 7.3
@case(
    "7.3",
    0.5,
    "CachingContext write-through: set() must write the store at once (history, dirty key) and "
    "the cache, so the next get() is a cache hit with the new value",
    rules=("7.3-b", "7.3-c", "7.3-g", "7.3-o"),
)
def test_7_3_write_through(learner):
    cc = learner.CachingContext(cache_size=4)
    cc.set("a", 1, who="w")
    check(cc.to_dict() == {"a": 1}, f"the store held {cc.to_dict()}")
    check(history(cc) == [("a", 1, "w")], f"the store's history was {history(cc)}")
    check(cc.pop_dirty_keys() == ["a"], "set() did not mark the key dirty in the store")
    check(cache_has(learner, cc, "a") is True, "set() did not put the value into the cache")
    check(cc.get("a") == 1, "get() did not return the value")
    cc.set("a", 2, who="w2")
    value = cc.get("a")
    check(value == 2, f"after set('a', 2) get('a') returned {value!r} (a stale cached value?)")
    check(
        cc.cache_stats.value() == {"operations": 2, "cache_hits": 2},
        f"cache_stats were {cc.cache_stats.value()}",
    )
    check(cc.flush() == 0, "flush() in write-through mode must return 0")
    default = learner.CachingContext()
    capacity = default.cache.value().capacity.value()
    check(capacity == 1000, f"CachingContext() must have a cache of 1000 entries, had {capacity}")
    for other in ("fifo", "mru"):
        raises(
            lambda other=other: learner.CachingContext(cache_strategy=other),
            "ValueError",
            f"CachingContext(cache_strategy={other!r}) (only 'lru' is accepted)",
        )


@case(
    "7.3",
    0.5,
    "CachingContext.get() must count operations and cache hits, cache values read from the "
    "store, and return default (caching nothing) for a missing key",
    rules=("7.3-b", "7.3-c", "7.3-d", "7.3-e"),
)
def test_7_3_get_accounting(learner):
    cc = learner.CachingContext(cache_size=4)
    cc.set("s", 5)
    check(cc.invalidate_cache_pattern("s") == 1, "invalidate_cache_pattern('s') did not return 1")
    check(cc.get("s") == 5, "get() of a key only in the store did not return its value")
    check(
        cc.cache_stats.value() == {"operations": 1, "cache_hits": 0},
        f"after one read from the store, cache_stats were {cc.cache_stats.value()}",
    )
    check(cache_has(learner, cc, "s") is True, "a value read from the store was not cached")
    check(cc.get("s") == 5, "the second get() returned a different value")
    got = cc.get("missing", "dflt")
    check(got == "dflt", f"get('missing', 'dflt') returned {got!r}")
    check(cache_has(learner, cc, "missing") is False, "a missing key was cached")
    check(
        cc.cache_stats.value() == {"operations": 3, "cache_hits": 1},
        f"after a miss, a hit and a missing key, cache_stats were {cc.cache_stats.value()}",
    )


@case(
    "7.3",
    0.5,
    "CachingContext must return copies and keep private copies: changing a value after set() "
    "or a value returned by get() must change neither the cache nor the store",
    rules=("7.3-f", "7.3-j"),
)
def test_7_3_copies(learner):
    for strategy in ("write_through", "write_back"):
        cc = learner.CachingContext(cache_size=4, write_strategy=strategy)
        tags = learner.keep(["a"])
        value = learner.keep({"tags": tags})
        cc.set("k", value)
        mark = secrets.token_hex(4)
        tags.append(mark)  # a list method called over the bridge: no grader code there
        confirm(
            read_back(learner, value) == {"tags": ["a", mark]}, "changing the object after set()"
        )
        check(
            cc.get("k") == {"tags": ["a"]},
            f"{strategy}: changing the object after set() changed the cached value",
        )
        changed_in_worker(
            learner,
            "lambda c, x: (lambda v: (v['tags'].append(x), v)[1])(c.get('k'))",
            cc,
            mark,
            expect={"tags": ["a", mark]},
            what="changing what get() returned",
        )
        check(
            cc.get("k") == {"tags": ["a"]},
            f"{strategy}: changing what get() returned changed the cached value",
        )
        cc.flush()
        cc.invalidate_cache_pattern("k")
        changed_in_worker(
            learner,
            "lambda c, x: (lambda v: (v['tags'].append(x), v)[1])(c.get('k'))",
            cc,
            mark,
            expect={"tags": ["a", mark]},
            what="changing what get() returned",
        )
        check(
            cc.get("k") == {"tags": ["a"]} and cc.to_dict() == {"k": {"tags": ["a"]}},
            f"{strategy}: changing what get() returned after a store read changed the state",
        )


@case(
    "7.3",
    0.5,
    "CachingContext write-back: set() must not touch the store; get() sees the latest value; "
    "flush() stores each pending key once (latest value and who, first-pending order), and not "
    "again a write already stored when it was evicted",
    rules=("7.3-a", "7.3-k", "7.3-l", "7.3-m", "7.3-n", "7.3-o"),
)
def test_7_3_write_back(learner):
    cc = learner.CachingContext(cache_size=10, write_strategy="write_back")
    cc.set("m", 1, who="w1")
    cc.set("z", "zwei", who="w2")
    cc.set("a", [3], who="w3")
    cc.set("m", "Möwe", who="w4")
    check(cc.to_dict() == {}, f"before flush() the store already held {cc.to_dict()}")
    check(history(cc) == [] and cc.pop_dirty_keys() == [], "set() wrote to the store's history")
    check(
        cc.keys() == [] and contains(learner, cc, "m") is False,
        "before flush(), keys() and `in` must show the store only, without the pending writes",
    )
    check(
        cc.get("m") == "Möwe" and cc.get("z") == "zwei",
        "get() did not return the latest pending values",
    )
    flushed = cc.flush()
    check(flushed == 3, f"flush() returned {flushed} for 3 pending keys (m written twice)")
    want = [("m", "Möwe", "w4"), ("z", "zwei", "w2"), ("a", [3], "w3")]
    check(
        history(cc) == want,
        f"flush() stored (key, value, who) {history(cc)}; expected {want}: each key once, with "
        "its latest value and who, in the order the keys first became pending",
    )
    cc.set("z", 9, who="w5")
    cc.set("m", 8, who="w6")
    again = cc.flush()
    later = history(cc)[3:]
    check(
        again == 2 and later == [("z", 9, "w5"), ("m", 8, "w6")],
        f"after the first flush, z then m became pending; the second flush() returned {again} "
        f"and stored {later}",
    )
    last = cc.flush()
    check(last == 0 and len(history(cc)) == 5, f"a flush() with nothing pending returned {last}")
    small = learner.CachingContext(cache_size=1, write_strategy="write_back")
    small.set("p", 1, who="wp")
    small.set("q", 2, who="wq")  # evicts p: its pending write is stored now
    flushed = small.flush()
    check(
        flushed == 1 and history(small) == [("p", 1, "wp"), ("q", 2, "wq")],
        f"p's pending write was stored when the cache evicted it, so flush() must store only q; "
        f"it returned {flushed} and the store recorded {history(small)}",
    )


@case(
    "7.3",
    1.0,
    "CachingContext write-back must never lose a write: a pending value evicted from the cache "
    "must be stored at that moment, once, with its latest value and who",
    critical=True,
    rules=("7.3-k", "7.3-m"),
)
def test_7_3_never_loses(learner):
    cc = learner.CachingContext(cache_size=3, write_strategy="write_back")
    cc.set("k0", "draft", who="drafter")
    for i in range(10):
        cc.set(f"k{i}", i * 10, who=f"w{i}")
    want = {f"k{i}": i * 10 for i in range(7)}
    check(cc.to_dict() == want, f"after 10 sets into a cache of 3, the store held {cc.to_dict()}")
    stored = [(key, step) for key, _after, step in history(cc)]
    check(
        stored == [(f"k{i}", f"w{i}") for i in range(7)],
        f"evicted writes were stored as (key, who) {stored}; expected each of k0..k6 once, "
        "with its latest who (k0 was set twice, by drafter and then by w0)",
    )
    values = [cc.get(f"k{i}") for i in range(10)]
    check(values == [i * 10 for i in range(10)], f"reading all keys back gave {values}")
    cc.flush()
    final = cc.to_dict()
    check(
        final == {f"k{i}": i * 10 for i in range(10)},
        f"after reading everything and flush(), the store held {final}",
    )


@case(
    "7.3",
    0.5,
    "CachingContext.invalidate_cache_pattern() must drop matching keys from the cache and return "
    "the count (the next get() reads the store); in write-back mode it must store their pending "
    "writes first",
    rules=("7.3-p", "7.3-q"),
)
def test_7_3_invalidate(learner):
    cc = learner.CachingContext(cache_size=10)
    for key, value in (("config.a", 1), ("config.b", 2), ("user.x", 3)):
        cc.set(key, value)
    check(cc.invalidate_cache_pattern("config.*") == 2, "it did not return 2 for 'config.*'")
    check(cache_has(learner, cc, "config.a") is False, "config.a stayed in the cache")
    check(cache_has(learner, cc, "user.x") is True, "user.x was dropped too")
    before = cc.cache_stats.value()
    check(cc.get("config.a") == 1, "after invalidation get() did not read the store")
    after = cc.cache_stats.value()
    check(
        after["cache_hits"] == before["cache_hits"]
        and after["operations"] == before["operations"] + 1
        and cache_has(learner, cc, "config.a") is True,
        "after invalidation, the next get() must read the store (no cache hit) and cache the "
        f"value again; cache_stats went from {before} to {after}",
    )
    wb = learner.CachingContext(cache_size=10, write_strategy="write_back")
    wb.set("config.a", 1, who="w")
    wb.set("user.x", 2, who="w")
    check(wb.invalidate_cache_pattern("config.*") == 1, "write-back: it did not return 1")
    check(
        wb.to_dict() == {"config.a": 1},
        f"write-back: the pending write of config.a was not stored first (store: {wb.to_dict()})",
    )
    check(wb.get("config.a") == 1 and wb.flush() == 1, "write-back: pending writes went wrong")


@case(
    "7.3",
    0.5,
    "CachingContext.set() must reject what Context.set rejects (TypeError for non-JSON data, "
    "ValueError for an empty key) and change nothing, in both modes",
    critical=True,
    rules=("7.3-h", "7.3-i"),
)
def test_7_3_rejects(learner):
    kept = {"name": "Zoë", "tags": ["ü"]}
    for strategy in ("write_through", "write_back"):
        cc = learner.CachingContext(cache_size=4, write_strategy=strategy)
        raises(lambda cc=cc: cc.set("bad", expr("{1, 2}")), "TypeError", f"{strategy}: a set")
        raises(lambda cc=cc: cc.set("bad", expr("(1, 2)")), "TypeError", f"{strategy}: a tuple")
        raises(lambda cc=cc: cc.set("", 1), "ValueError", f"{strategy}: the empty key")
        check(cache_has(learner, cc, "bad") is False, f"{strategy}: a rejected value was cached")
        check(
            cc.flush() == 0 and cc.to_dict() == {} and history(cc) == [],
            f"{strategy}: a rejected set() left a trace",
        )
        cc.set("keep", kept, who="first")
        raises(
            lambda cc=cc: cc.set("keep", expr("{'name': {1, 2}}"), who="second"),
            "TypeError",
            f"{strategy}: set() of a key that holds a value, with a value that is not JSON data",
        )
        check(
            cache_has(learner, cc, "keep") is True and cc.get("keep") == kept,
            f"{strategy}: a rejected set() of a cached key changed or dropped its cached value",
        )
        flushed = cc.flush()
        check(
            flushed == (1 if strategy == "write_back" else 0)
            and cc.to_dict() == {"keep": kept}
            and history(cc) == [("keep", kept, "first")],
            f"{strategy}: after a rejected set() of 'keep', flush() returned {flushed} and the "
            f"store's history was {history(cc)}; only the first, accepted write may reach it",
        )
