"""Module 8's hidden suite, exercise 8.6: SmartCacheManager, a predictive cache. Instructor-only:
never released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict

from _support import c_close, c_tool, settable_clock

from academy.grading.cases import case, check, in_worker, is_a, raises

# The workload of section 6, exactly as the notebook's given cell builds it (build.py checks
# that both give the same trace). It runs here, for the grader's own LRU, and in the worker.
C_WORKLOAD = r"""
import itertools
import random
from typing import List, Optional, Tuple


def cache_workload(seed: int = 8) -> List[Tuple[str, Optional[float]]]:
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1 / rank for rank in range(1, 1001)))
    trace: List[Tuple[str, Optional[float]]] = []
    scans = 0
    for _phase in range(4):
        order = [f"item-{i:04d}" for i in range(1000)]
        rng.shuffle(order)
        for n in range(5000):
            if n % 40 == 0:
                trace.append((f"config-{rng.randrange(10)}", 0.9))
            else:
                trace.append((rng.choices(order, cum_weights=cumulative)[0], None))
            if n % 500 == 499:
                trace.extend((f"scan-{scans}-{j}", 0.0) for j in range(150))
                scans += 1
    return trace
"""

C_STATS_KEYS = {"hits", "misses", "hit_rate", "evictions", "size", "capacity"}
C_MARGIN = 0.03
C_UNSEEN_SEED = 20240


def c_trace(seed):
    namespace = {}
    exec(C_WORKLOAD, namespace)
    return namespace["cache_workload"](seed)


def c_lru_hits(trace, capacity):
    """The grader's own LRU, replayed here: how many requests hit."""
    cache = OrderedDict()
    hits = 0
    for key, _hint in trace:
        if key in cache:
            cache.move_to_end(key)
            hits += 1
            continue
        if len(cache) >= capacity:
            cache.popitem(last=False)
        cache[key] = True
    return hits


def c_overfull(trace, hits, capacity):
    """The first request at which a cache of ``capacity`` entries could not have held every key
    that ``hits`` says it held (a hit needs its key kept since that key's previous request), or
    None when some cache of that size could have hit exactly there. Checked here: a replay's hit
    count from the worker is only believed when a real cache could have produced it."""
    if not isinstance(hits, str) or len(hits) != len(trace) or set(hits) - {"0", "1"}:
        return 0
    kept = [0] * (len(trace) + 1)  # +1 where a key must start being kept, -1 where it may go
    last = {}
    for index, ((key, _hint), hit) in enumerate(zip(trace, hits, strict=True)):
        if hit == "1":
            if key not in last:
                return index
            kept[last[key]] += 1
            kept[index] -= 1
        last[key] = index
    held = 0
    for index in range(len(trace)):
        held += kept[index]
        if held > capacity:
            return index
    return None


def c_in(learner, cache, key):
    return in_worker(learner, "lambda c, k: k in c", cache, key)


# =========================================================================== exercise 8.6
@case(
    "8.6",
    0.25,
    "SmartCacheManager.get() must return the very object put() stored (default for a missing "
    "key); put(key=..., value=..., predicted_access_probability=0.89) must work as the seed "
    "writes it; replacing a value must not evict; the constructor accepts a clock",
    rules=("8.6-b", "8.6-c", "8.6-g", "8.6-h", "8.6-q", "8.6-t"),
)
def test_8_6_basics(learner):
    cache = learner.SmartCacheManager(4, clock=settable_clock(learner))
    check(
        is_a(learner, cache, "SmartCacheManager"),
        "SmartCacheManager(4, clock=...) must build a cache",
    )
    config = learner.keep({"feature_flags": {"new_checkout": True}, "timeout_s": 30})
    cache.put(key="frequently_accessed_config", value=config, predicted_access_probability=0.89)
    check(
        learner.same(cache.get.live("frequently_accessed_config"), config),
        "get() did not return the very object put() stored (a copy, or another value)",
    )
    check(cache.get("missing") is None, "get() of a missing key must return None by default")
    check(cache.get("missing", 7) == 7, "get(key, default) must return default for a missing key")
    check(cache.put("a", [1]) is None, "put() must return None")
    cache.put("a", [2], predicted_access_probability=0.5)
    check(cache.get("a") == [2], "put() on an existing key must replace its value")
    check(len(cache) == 2, f"after two keys, len() was {len(cache)}")
    check(c_in(learner, cache, "a") is True, "`'a' in cache` must be True for a cached key")
    check(c_in(learner, cache, "zzz") is False, "`in` must be False for a key never put")
    stats = cache.stats()
    check(
        isinstance(stats, dict) and stats.get("evictions") == 0,
        f"replacing a value must not evict: stats() {stats}",
    )


@case(
    "8.6",
    0.5,
    "SmartCacheManager must never hold more than capacity entries; a new key in a full cache "
    "evicts exactly one other entry, a new key in a cache with room or a replaced key evicts "
    "none, and the key just put is always cached",
    rules=("8.6-h", "8.6-i", "8.6-j"),
)
def test_8_6_capacity(learner):
    rng = random.Random(86)
    keys = [f"k{i}" for i in range(25)]
    ops = []
    for _ in range(400):
        roll = rng.random()
        op = "put" if roll < 0.55 else ("get" if roll < 0.9 else "invalidate")
        ops.append([op, rng.choice(keys[:8]) if rng.random() < 0.5 else rng.choice(keys)])
    for capacity in (1, 5):
        cache = learner.SmartCacheManager(capacity)
        log = c_tool(learner, "c_churn")(cache, ops, capacity)
        for step, row in enumerate(log):
            op, key, before_len, before_in, before_ev, after_len, after_ev, result, after_in = row
            where = f"capacity {capacity}, operation {step + 1} ({op} {key!r})"
            check(after_len <= capacity, f"{where}: the cache held {after_len} entries")
            if op == "put":
                check(after_in is True, f"{where}: the key just put was not in the cache")
                if before_in:
                    want = (before_len, before_ev)
                elif before_len >= capacity:
                    want = (capacity, before_ev + 1)
                else:
                    want = (before_len + 1, before_ev)
                check(
                    (after_len, after_ev) == want,
                    f"{where}: len and evictions went from {(before_len, before_ev)} to "
                    f"{(after_len, after_ev)}; expected {want}",
                )
            elif op == "get":
                check(result != "WRONG", f"{where}: get() returned a value never put there")
                check(
                    (after_len, after_ev) == (before_len, before_ev),
                    f"{where}: get() changed len or evictions",
                )
    capacity = 300
    cache = learner.SmartCacheManager(capacity)
    ops = [["put", f"big{i}"] for i in range(capacity + 5)]
    log = c_tool(learner, "c_churn")(cache, ops, capacity)
    lens = [row[5] for row in log]
    evictions = log[-1][6]
    check(
        max(lens) == capacity and lens[-1] == capacity and evictions == 5,
        f"capacity {capacity}, {capacity + 5} new keys put: the cache held up to {max(lens)} "
        f"entries and evicted {evictions}; expected at most {capacity} and 5 evictions",
    )


@case(
    "8.6",
    0.5,
    "SmartCacheManager.stats() must count exactly: hits and misses of get() only, hit_rate = "
    "hits / (hits + misses) (0.0 before any get), evictions, size = len(), capacity",
    rules=("8.6-d", "8.6-o", "8.6-p", "8.6-q"),
)
def test_8_6_stats(learner):
    cache = learner.SmartCacheManager(10)
    fresh = cache.stats()
    want = {"hits": 0, "misses": 0, "hit_rate": 0.0, "evictions": 0, "size": 0, "capacity": 10}
    check(
        fresh == want and type(fresh.get("hit_rate")) is float,
        f"a new cache's stats() was {fresh}; expected {want} (hit_rate the float 0.0)",
    )
    for i in range(6):
        cache.put(f"k{i}", i)
    got = [cache.get(k) for k in ("k0", "k1", "x", "k2", "y", "k0", "z")]
    check(got == [0, 1, None, 2, None, 0, None], f"get() returned {got}")
    c_in(learner, cache, "k3")
    len(cache)
    cache.invalidate("k5")
    cache.put("k0", 100)
    stats = cache.stats()
    want = {"hits": 4, "misses": 3, "hit_rate": 4 / 7, "evictions": 0, "size": 5, "capacity": 10}
    check(
        isinstance(stats, dict)
        and set(stats) == C_STATS_KEYS
        and all(stats[k] == want[k] for k in C_STATS_KEYS - {"hit_rate"})
        and c_close(stats["hit_rate"], 4 / 7),
        f"after 4 hits and 3 misses (plus a put, an invalidate, `in` and len()) stats() was "
        f"{stats}; expected {want}",
    )
    small = learner.SmartCacheManager(3)
    returned = []
    for i in range(12):
        small.put(f"s{i}", i)
        returned.append(small.get(f"s{(i * 7) % (i + 1)}", "miss"))
    hits = sum(1 for r in returned if r != "miss")
    stats = small.stats()
    check(
        isinstance(stats, dict)
        and (stats.get("hits"), stats.get("misses"), stats.get("evictions"), stats.get("size"))
        == (hits, 12 - hits, 9, 3)
        and c_close(stats.get("hit_rate"), hits / 12),
        f"12 puts of new keys into a cache of 3 and 12 gets of which {hits} returned a value: "
        f"stats() was {stats}; expected hits {hits}, misses {12 - hits}, evictions 9, size 3",
    )


@case(
    "8.6",
    0.25,
    "SmartCacheManager.put() must accept None or a number in [0, 1] as "
    "predicted_access_probability and raise ValueError (changing nothing) for anything else: "
    "a bool, NaN, a str, a value outside [0, 1]",
    rules=("8.6-e", "8.6-f"),
)
def test_8_6_probability(learner):
    cache = learner.SmartCacheManager(3)
    for i, p in enumerate([None, 0, 1, 0.0, 1.0, 0.89]):
        cache.put(f"ok{i}", i, predicted_access_probability=p)
        check(cache.get(f"ok{i}") == i, f"put with predicted_access_probability={p!r} failed")
    before = (cache.stats(), len(cache), [c_in(learner, cache, f"ok{i}") for i in range(6)])
    bad_values = [-0.1, 1.5, float("nan"), float("inf"), "0.5", True, False, [0.5]]
    for bad in bad_values:
        raises(
            lambda bad=bad: cache.put("new", "x", predicted_access_probability=bad),
            "ValueError",
            f"put('new', ..., predicted_access_probability={bad!r}) into a full cache",
        )
        raises(
            lambda bad=bad: cache.put("ok5", "x", predicted_access_probability=bad),
            "ValueError",
            f"put() of a cached key with predicted_access_probability={bad!r}",
        )
    after = (cache.stats(), len(cache), [c_in(learner, cache, f"ok{i}") for i in range(6)])
    check(after == before, "a rejected put() changed the cache (entries or stats)")
    check(cache.get("ok5") == 5, "a rejected put() replaced the value")


@case(
    "8.6",
    0.25,
    "SmartCacheManager.invalidate(key) must remove the key and return True, or return False "
    "when it was not cached; it is not an eviction, a hit or a miss",
    rules=("8.6-k", "8.6-l"),
)
def test_8_6_invalidate(learner):
    cache = learner.SmartCacheManager(5)
    cache.put("a", 1)
    cache.put("b", 2)
    before = cache.stats()
    first = cache.invalidate("a")
    second = cache.invalidate("a")
    never = cache.invalidate("never")
    check(
        (first, second, never) == (True, False, False),
        f"invalidate returned {first, second, never}",
    )
    after = cache.stats()
    check(
        isinstance(after, dict)
        and {k: after.get(k) for k in ("hits", "misses", "evictions")}
        == {k: before.get(k) for k in ("hits", "misses", "evictions")}
        and after.get("size") == 1,
        f"stats() went from {before} to {after} after invalidating one of two keys",
    )
    check(cache.get("a", "gone") == "gone", "an invalidated key was still returned by get()")
    check(cache.get("b") == 2, "invalidate('a') disturbed another key")


@case(
    "8.6",
    0.25,
    "SmartCacheManager(capacity) and resize(capacity) must raise ValueError for a capacity that "
    "is not an int of at least 1; resize() must evict down to the new capacity (counting "
    "evictions) and keep every entry when growing",
    rules=("8.6-a", "8.6-m", "8.6-n", "8.6-p"),
)
def test_8_6_resize(learner):
    for bad in (0, -1, 2.5, True, "10", None):
        raises(lambda bad=bad: learner.SmartCacheManager(bad), "ValueError", f"capacity {bad!r}")
    cache = learner.SmartCacheManager(10)
    for i in range(10):
        cache.put(f"k{i}", i)
    for bad in (0, -3, 1.5, False):
        raises(lambda bad=bad: cache.resize(bad), "ValueError", f"resize({bad!r})")
    stats = cache.stats()
    check(
        (stats["capacity"], stats["size"]) == (10, 10),
        f"a rejected resize() changed the cache: {stats}",
    )
    cache.resize(4)
    stats = cache.stats()
    kept = [i for i in range(10) if c_in(learner, cache, f"k{i}")]
    check(
        (stats["capacity"], stats["size"], stats["evictions"], len(kept)) == (4, 4, 6, 4),
        f"after resize(4) of a full cache of 10: stats() {stats}, keys still cached {kept}",
    )
    check(
        all(cache.get(f"k{i}") == i for i in kept),
        "after resize() the remaining keys lost their values",
    )
    cache.resize(20)
    for i in range(100, 116):
        cache.put(f"k{i}", i)
    stats = cache.stats()
    check(
        (stats["capacity"], stats["size"], stats["evictions"]) == (20, 20, 6)
        and all(c_in(learner, cache, f"k{i}") for i in kept),
        f"after resize(20) and 16 more keys: stats() {stats} (growing must keep every entry "
        "and leave room for 16 more without evicting)",
    )


def c_beats_lru(learner, seed, which):
    trace = c_trace(seed)
    lru = c_lru_hits(trace, 100)
    cache = learner.SmartCacheManager(100)
    run = c_tool(learner, "c_replay")(cache, C_WORKLOAD, seed)
    check(
        run["digest"] == hashlib.sha256(json.dumps(trace).encode()).hexdigest(),
        "internal: the workload differs between the grader and the worker",
    )
    n = len(trace)
    size = len(cache)  # asked over the bridge, not computed by grader code in the worker
    stats = run["stats"]
    biggest = max(run["max_size"], size)
    check(
        biggest <= 100 and isinstance(stats, dict) and stats.get("size") == size,
        f"on {which}, the cache held up to {biggest} entries with capacity 100"
        if biggest > 100
        else f"on {which}, stats() says size {stats.get('size')!r} but len() is {size}",
    )
    check(run["wrong"] == 0, f"on {which}, get() returned {run['wrong']} values never stored")
    overfull = c_overfull(trace, run["hits"], 100)
    check(
        overfull is None,
        f"on {which}, the replay's hits could not come from a cache of 100 entries (at request "
        f"{overfull}, more keys had to be kept than fit)",
    )
    hits = run["hits"].count("1")
    check(
        isinstance(stats, dict) and (stats.get("hits"), stats.get("misses")) == (hits, n - hits),
        f"on {which}, stats() counted hits/misses {(stats.get('hits'), stats.get('misses'))} "
        f"but the replay saw {hits} hits in {n} reads",
    )
    mine, theirs = hits / n, lru / n
    check(
        mine >= theirs + C_MARGIN,
        f"on {which}: your hit rate {mine:.4f}, LRU's {theirs:.4f} (capacity 100, "
        f"{n:,} requests); at least {theirs + C_MARGIN:.4f} is needed",
    )


@case(
    "8.6",
    0.5,
    "SmartCacheManager(100) must beat LRU(100) by at least 0.03 in hit rate on "
    "cache_workload(8), replayed cache-aside, within capacity",
    rules=("8.6-j", "8.6-r", "8.6-s"),
    critical=True,
)
def test_8_6_beats_lru_stated(learner):
    c_beats_lru(learner, 8, "cache_workload(8)")


@case(
    "8.6",
    0.5,
    "SmartCacheManager(100) must beat LRU(100) by at least 0.03 in hit rate on the same kind "
    "of workload with a seed you have not seen",
    rules=("8.6-j", "8.6-r", "8.6-s"),
    critical=True,
)
def test_8_6_beats_lru_unseen(learner):
    c_beats_lru(learner, C_UNSEEN_SEED, "a workload with an unseen seed")
