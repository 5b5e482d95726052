"""Hidden suite for module 7 (profiler, caching, consistent hashing). Instructor-only: never
released to learners.

Every case checks one sentence of the notebook's exercise text and says, in its message,
which behaviour is wrong. The learner's code is reached through the ``learner`` fixture
(``academy.bridge``); every comparison happens here, on plain data.

Performance and thread safety are graded as behaviour that holds on any machine: a ratio
between two cache sizes measured in the same run, and counts that must add up after threads
ran, never a wall-clock threshold.

The learner's code shares its process with any grader code run there and can skip or fake
it, so no verdict rests on such code alone: timings are taken here (time.perf_counter around
bridge calls that each do hundreds of operations, whose results are checked), what threads
or grader lambdas changed is read back here through the learner's own objects, and helpers
that only read (`in`, the profiles, the cluster's layout) call the learner's methods over the
bridge instead of running in the worker.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import re
import secrets
import time

from academy.bridge.client import LearnerException, Remote, expr
from academy.grading.cases import (
    case,
    changed_in_worker,
    check,
    confirm,
    in_worker,
    is_a,
    raises,
    read_back,
    worker_function,
)
from academy.grading.cases import contains as learner_contains

TOL = 1e-6


def fake_clock(learner, values):
    """A clock in the worker that returns ``values`` one after the other."""
    return learner.make(expr(f"iter({[float(v) for v in values]!r}).__next__"))


def close(a, b):
    return isinstance(a, (int, float)) and abs(a - b) <= TOL * max(1.0, abs(b))


def nearest_rank(values, p):
    s = sorted(values)
    return s[math.ceil(p / 100 * len(s)) - 1]


# =========================================================================== exercise 7.1
# Threads must run in the learner's process. This helper only starts them and says whether
# any hung or raised; what they left in the profiler is read from this side.
PROFILE_THREADS = r"""
def record_from_threads(profiler, OperationProfile, threads=8, per_thread=1500):
    import sys
    import threading

    errors = []
    barrier = threading.Barrier(threads)

    def work(t):
        try:
            barrier.wait()
            for i in range(per_thread):
                profiler.record_operation(
                    OperationProfile("get", f"key{i % 10}", float(i % 7), float(t)))
        except Exception as exc:
            errors.append(type(exc).__name__)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=5)
    finally:
        sys.setswitchinterval(old)
    return {"alive": sum(w.is_alive() for w in workers), "errors": errors}
"""

PROFILE_FIELDS = (
    "operation_type",
    "key",
    "duration_ms",
    "timestamp",
    "memory_delta_bytes",
    "thread_id",
)


def record(learner, profiler, rows):
    """Record one OperationProfile per row, each built and recorded over the bridge."""
    make = learner.OperationProfile
    for row in rows:
        profiler.record_operation(make(*row))


def profiles_of(learner, profiler):
    """The profiler's retained profiles (learner objects), read over the bridge."""
    profiles = profiler.profiles.value()
    return learner.builtin("list", profiles) if isinstance(profiles, Remote) else profiles


def dump(learner, profiler, fields=PROFILE_FIELDS):
    """[operation_type, key, duration_ms, timestamp, memory_delta_bytes, thread_id] per
    profile (or just ``fields``), read attribute by attribute over the bridge."""
    return [[getattr(p, name).value() for name in fields] for p in profiles_of(learner, profiler)]


SUMMARY_KEYS = {"count", "min", "mean", "p50", "p95", "p99", "max"}


def names(text, key):
    """Does ``text`` name ``key`` as a whole, not as part of a longer dotted key or word?"""
    return re.search(rf"(?<![\w.]){re.escape(key)}(?!\w|\.\w)", text) is not None


def expected_summary(values):
    return {
        "count": len(values),
        "min": min(values),
        "mean": sum(values) / len(values),
        "p50": nearest_rank(values, 50),
        "p95": nearest_rank(values, 95),
        "p99": nearest_rank(values, 99),
        "max": max(values),
    }


def summary_matches(got, want):
    return (
        isinstance(got, dict)
        and set(got) == SUMMARY_KEYS
        and got["count"] == want["count"]
        and all(close(got[k], want[k]) for k in SUMMARY_KEYS - {"count"})
    )


@case(
    "7.1",
    0.75,
    "ContextProfiler.get_percentile_analysis() must give nearest-rank p50/p95/p99: the value at "
    "index ceil(p/100*n)-1 of the sorted durations of that operation type",
    rules=("7.1-d", "7.1-e"),
)
def test_7_1_percentiles(learner):
    rng = random.Random(71)
    twenty = [0.5 * i for i in range(1, 21)]
    seven = [3.0, 9.0, 1.0, 7.0, 5.0, 2.0, 8.0]
    many = [round(rng.uniform(0.01, 50.0), 3) for _ in range(200)]
    rng.shuffle(twenty)
    rows = [("get", "k", d, 0.0) for d in twenty]
    rows += [("set", "k", d, 0.0) for d in seven]
    rows += [("scan", f"s{i}", d, 0.0) for i, d in enumerate(many)]
    rng.shuffle(rows)
    profiler = learner.ContextProfiler()
    record(learner, profiler, rows)
    for op, values in (("get", twenty), ("set", seven), ("scan", many)):
        got = profiler.get_percentile_analysis(op)
        want = {p: nearest_rank(values, int(p[1:])) for p in ("p50", "p95", "p99")}
        seen = {p: got.get(p) for p in want} if isinstance(got, dict) else got
        check(
            seen == want,
            f"for {len(values)} '{op}' durations, expected {want}, got {seen}",
        )


@case(
    "7.1",
    0.25,
    "get_percentile_analysis() must return count, min, mean and max too, and count 0 with 0.0 "
    "everywhere else for an operation type without profiles",
    rules=("7.1-d", "7.1-e", "7.1-f"),
)
def test_7_1_summary(learner):
    values = [4.0, 1.5, 9.25, 2.0, 6.0]
    profiler = learner.ContextProfiler()
    record(learner, profiler, [("get", "a", d, 0.0) for d in values])
    got = profiler.get_percentile_analysis("get")
    want = expected_summary(values)
    check(summary_matches(got, want), f"for durations {values} expected {want}, got {got}")
    empty = profiler.get_percentile_analysis("delete")
    zero = {"count": 0, "min": 0.0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    check(empty == zero, f"for an operation type without profiles it returned {empty}")


@case(
    "7.1",
    0.25,
    "ContextProfiler.record_operation() must append the profile itself to profiles, which keeps "
    "only the max_samples most recent ones; the analyses must use only those",
    rules=("7.1-a", "7.1-b", "7.1-g"),
)
def test_7_1_window(learner):
    profiler = learner.ContextProfiler(max_samples=5)
    rows = [("get", "old", 100.0, 0.0), ("get", "old", 90.0, 1.0)]
    rows += [("get", "new", float(d), 2.0 + d) for d in (3, 1, 5, 2, 4)]
    made = [learner.OperationProfile(*row) for row in rows]
    for profile in made:
        profiler.record_operation(profile)
    kept = profiles_of(learner, profiler)
    check(
        len(kept) == 5 and all(learner.same(k, m) for k, m in zip(kept, made[2:], strict=False)),
        f"after 7 records with max_samples=5, profiles held {len(kept)} profiles; expected the "
        "5 most recent OperationProfile objects passed to record_operation(), oldest first",
    )
    got = profiler.get_percentile_analysis("get")
    want = expected_summary([1.0, 2.0, 3.0, 4.0, 5.0])
    check(summary_matches(got, want), f"with max_samples=5 after 7 records it returned {got}")
    hot = profiler.identify_hot_keys()
    check(
        [list(row)[:2] for row in hot] == [["new", 5]],
        f"identify_hot_keys() still counts dropped profiles: {hot}",
    )
    # The default window: ContextProfiler() keeps the 10,000 most recent profiles. The loop
    # runs in the worker; what it left is read back here through the learner's analysis.
    default = learner.ContextProfiler()
    fill = learner.make(
        expr(
            "lambda p, OP: len([p.record_operation(OP('get', 'k', float(i), float(i))) "
            "for i in range(10001)])"
        )
    )
    confirm(fill(default, learner.OperationProfile) == 10001, "recording 10,001 profiles")
    kept = default.get_percentile_analysis("get")
    seen = (kept.get("count"), kept.get("min")) if isinstance(kept, dict) else kept
    check(
        seen == (10000, 1.0),
        f"after 10,001 records into ContextProfiler() (default max_samples=10000), (count, min) "
        f"was {seen}; expected (10000, 1.0): the 10,000 most recent, the first one dropped",
    )


@case(
    "7.1",
    0.5,
    "ContextProfiler.record_operation() must be thread-safe: 8 threads recording 1,500 profiles "
    "each must leave all 12,000",
    rules=("7.1-b", "7.1-c"),
)
def test_7_1_threads(learner):
    profiler = learner.ContextProfiler(max_samples=100_000)
    run = worker_function(learner, PROFILE_THREADS, "record_from_threads")
    result = run(profiler, learner.OperationProfile)
    confirm(isinstance(result, dict), "running the threads")
    # What the worker reports can only fail the case; what the threads left behind is read
    # from here, through the learner's own profiler.
    check(result.get("alive") == 0, f"{result.get('alive')} threads were still running after 5 s")
    errors = result.get("errors")
    check(errors == [], f"threads raised: {sorted(set(errors or ()))}")
    count = profiler.get_percentile_analysis("get")["count"]
    check(count == 12000, f"{count} of 12000 profiles were kept")
    counts = sorted((row[0], row[1]) for row in profiler.identify_hot_keys(20))
    check(
        counts == [(f"key{i}", 1200) for i in range(10)],
        f"per-key counts after the threads: {counts}",
    )


@case(
    "7.1",
    0.5,
    "identify_hot_keys(top_n) must return (key, count, average_ms) tuples, most accessed first, "
    "ties by key, at most top_n",
    rules=("7.1-g", "7.1-h", "7.1-i", "7.1-j"),
)
def test_7_1_hot_keys(learner):
    rows = []
    durations = {"c": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [2.0, 4.0, 9.0], "a": [1.0, 1.0, 4.0]}
    durations["d"] = [7.5]
    for i in range(12):
        durations.setdefault(f"z{i:02d}", [float(i)])
    for key, ds in durations.items():
        for j, d in enumerate(ds):
            rows.append(("get" if j % 2 else "set", key, d, 0.0))
    random.Random(5).shuffle(rows)
    profiler = learner.ContextProfiler()
    record(learner, profiler, rows)
    expected = sorted(
        ((k, len(ds), sum(ds) / len(ds)) for k, ds in durations.items()),
        key=lambda row: (-row[1], row[0]),
    )

    def same(got, want):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(
                isinstance(g, (tuple, list))
                and len(g) == 3
                and g[0] == w[0]
                and g[1] == w[1]
                and close(g[2], w[2])
                for g, w in zip(got, want, strict=False)
            )
        )

    top2 = profiler.identify_hot_keys(2)
    check(
        same(top2, expected[:2]), f"identify_hot_keys(2) returned {top2}; expected {expected[:2]}"
    )
    default = profiler.identify_hot_keys()
    check(
        same(default, expected[:10]),
        f"identify_hot_keys() returned {default}; expected {expected[:10]}",
    )
    check(
        all(isinstance(row, tuple) for row in default),
        "the rows must be tuples (key, count, average_ms)",
    )


@case(
    "7.1",
    0.5,
    "detect_performance_anomalies(threshold) must flag, in recording order, the profiles slower "
    "than threshold x the p50 of their operation type (strictly), with the six fields",
    rules=("7.1-k", "7.1-l", "7.1-m"),
)
def test_7_1_anomalies(learner):
    gets = [1.0, 1.0, 2.0, 1.0, 10.5, 2.0, 1.0, 2.0, 30.0]  # p50 = 2.0
    sets = [4.0, 20.0, 4.0, 21.0]  # p50 = 4.0: 20.0 is exactly 5x, not an anomaly
    zeros = [0.0, 0.0, 0.0, 5.0]  # p50 = 0.0: nothing is an anomaly
    # p50 = -1.0 (a clock that stepped back): not greater than 0, so nothing is an anomaly
    backwards = [-1.0, -2.0, -1.0]
    rows = []
    for i in range(9):
        rows.append(("get", f"g{i}", gets[i], float(10 + i)))
        if i < 4:
            rows.append(("set", f"s{i}", sets[i], float(20 + i)))
            rows.append(("noop", f"n{i}", zeros[i], float(30 + i)))
        if i < 3:
            rows.append(("undo", f"u{i}", backwards[i], float(40 + i)))
    profiler = learner.ContextProfiler()
    record(learner, profiler, rows)

    def expected(threshold):
        medians = {"get": 2.0, "set": 4.0, "noop": 0.0, "undo": -1.0}
        out = []
        for op, key, d, ts in rows:
            m = medians[op]
            if m > 0 and d > threshold * m:
                out.append(
                    {
                        "operation_type": op,
                        "key": key,
                        "duration_ms": d,
                        "median_ms": m,
                        "ratio": d / m,
                        "timestamp": ts,
                    }
                )
        return out

    def same(got, want):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(
                isinstance(g, dict)
                and set(g) == set(w)
                and all(close(g[k], w[k]) if isinstance(w[k], float) else g[k] == w[k] for k in w)
                for g, w in zip(got, want, strict=False)
            )
        )

    got = profiler.detect_performance_anomalies()
    check(
        same(got, expected(5.0)),
        f"with the default threshold it returned {got}; expected {expected(5.0)}",
    )
    got2 = profiler.detect_performance_anomalies(threshold=1.5)
    keys2 = [a.get("key") for a in got2] if isinstance(got2, list) else got2
    check(
        same(got2, expected(1.5)),
        f"with threshold=1.5 it flagged {keys2}; expected {[a['key'] for a in expected(1.5)]}",
    )


@case(
    "7.1",
    0.25,
    "generate_optimization_report() must return total_operations, operations, hot_keys, "
    "anomalies and recommendations as the exercise describes",
    rules=("7.1-n", "7.1-o", "7.1-p", "7.1-q", "7.1-r", "7.1-s", "7.1-t", "7.1-u"),
)
def test_7_1_report(learner):
    dropped = [("delete", "old.key", 500.0, float(i)) for i in range(3)]
    rows = [("get", "config.db.host", 1.0, float(i)) for i in range(12)]
    rows += [("set", "metrics.counter", 1.0, float(i)) for i in range(12)]
    # exactly 10 profiles, exactly 80% of them gets: the caching advice is due
    rows += [("get" if i < 8 else "set", "config.db", 1.0, float(i)) for i in range(10)]
    rows += [("set", "config", 100.0, 50.0)]  # the only anomaly; its key is inside others'
    # six keys in all: hot_keys must hold the top 5 (x.two fifth, config sixth)
    rows += [("get", "x.one", 1.0, float(60 + i)) for i in range(3)]
    rows += [("set", "x.two", 1.0, float(70 + i)) for i in range(2)]
    random.Random(17).shuffle(rows)
    profiler = learner.ContextProfiler(max_samples=len(rows))
    record(learner, profiler, dropped + rows)
    report = profiler.generate_optimization_report()
    keys = {"total_operations", "operations", "hot_keys", "anomalies", "recommendations"}
    check(
        isinstance(report, dict) and set(report) == keys,
        f"the report's keys were {sorted(report) if isinstance(report, dict) else report}",
    )
    check(
        report["total_operations"] == 40,
        f"total_operations was {report['total_operations']}; 40 profiles are retained "
        "(3 older ones were dropped by max_samples)",
    )
    ops = report["operations"]
    check(
        isinstance(ops, dict)
        and sorted(ops) == ["get", "set"]
        and all(ops[op] == profiler.get_percentile_analysis(op) for op in ops),
        f"operations was {ops}; expected the retained operation types get and set",
    )
    top5 = profiler.identify_hot_keys(5)
    check(
        report["hot_keys"] == top5 and len(top5) == 5,
        f"hot_keys was {report['hot_keys']}; expected identify_hot_keys(5) of the 6 keys, {top5}",
    )
    check(
        report["anomalies"] == profiler.detect_performance_anomalies(),
        f"anomalies was {report['anomalies']}",
    )
    recs = report["recommendations"]
    check(
        isinstance(recs, list) and all(isinstance(r, str) for r in recs),
        "recommendations must be a list of str",
    )
    for key, why in (
        ("config.db.host", "12 profiles, all gets"),
        ("config.db", "exactly 10 profiles, exactly 80% gets"),
    ):
        check(
            any(names(r, key) and "cache" in r for r in recs),
            f"no recommendation contains both the hot key {key} ({why}) and the word cache: {recs}",
        )
    check(
        any(names(r, "config") for r in recs),
        f"no recommendation names the anomaly's key config (a mention of config.db or "
        f"config.db.host is not one): {recs}",
    )
    # 12 reads of one key through a ProfilingContext (the same key string each time, read
    # in the worker): every profile is a get of that key, so the caching advice is due.
    ctx = learner.ProfilingContext(clock=fake_clock(learner, range(24)))
    reads = learner.make(expr("lambda ctx: len([ctx.get(k) for k in ['hot.read'] * 12])"))
    confirm(reads(ctx) == 12, "reading hot.read 12 times")
    recs = ctx.profiler.generate_optimization_report()["recommendations"]
    check(
        isinstance(recs, list) and any(names(r, "hot.read") and "cache" in r for r in recs),
        f"after 12 ProfilingContext.get('hot.read') calls (12 profiles, all gets), no "
        f"recommendation contains both hot.read and the word cache: {recs}",
    )


@case(
    "7.1",
    0.5,
    "ProfilingContext.get()/set() must each record one profile: operation type, key, "
    "duration_ms = (after - before) * 1000 from two clock calls, timestamp = before, thread id",
    rules=("7.1-v", "7.1-w", "7.1-x", "7.1-y"),
)
def test_7_1_profiling_records(learner):
    clock = fake_clock(learner, [0.25, 0.75, 20.0, 20.0015, 30.0, 75.0])
    ctx = learner.ProfilingContext(clock=clock)
    check(is_a(learner, ctx, "Context"), "ProfilingContext must be a Context subclass")
    ctx.set("a.b", {"x": 1}, who="w")
    check(ctx.get("a.b") == {"x": 1}, "get() did not return the stored value")
    got_default = ctx.get("missing", 7)
    check(got_default == 7, f"get('missing', 7) returned {got_default!r}")
    profiles = dump(learner, ctx.profiler.value())
    me = in_worker(learner, "lambda: __import__('threading').get_ident()")
    confirm(type(me) is int and me > 0, "reading the worker's thread id")
    want = [
        ("set", "a.b", 500.0, 0.25),
        ("get", "a.b", 1.5, 20.0),
        ("get", "missing", 45000.0, 30.0),
    ]
    seen = [tuple(p[:4]) for p in profiles]
    check(
        len(profiles) == 3
        and all(
            p[0] == w[0] and p[1] == w[1] and close(p[2], w[2]) and close(p[3], w[3])
            for p, w in zip(profiles, want, strict=False)
        ),
        f"(operation_type, key, duration_ms, timestamp) were {seen}; expected {want}",
    )
    check(
        all(p[5] == me for p in profiles),
        "thread_id must be threading.get_ident() of the calling thread",
    )
    shared = learner.ContextProfiler()
    ctx2 = learner.ProfilingContext(profiler=shared)
    ctx2.get("x")
    check(
        shared.get_percentile_analysis("get")["count"] == 1,
        "a profiler passed to ProfilingContext(profiler=...) must receive the profiles",
    )


@case(
    "7.1",
    0.25,
    "ProfilingContext.set() must record memory_delta_bytes = len(json.dumps(new)) - "
    "len(json.dumps(old)), with 0 for a key not set before; get() records 0",
    rules=("7.1-x", "7.1-z"),
)
def test_7_1_profiling_memory(learner):
    ctx = learner.ProfilingContext()
    ctx.set("a", "xx")
    ctx.set("a", [1, 2, 3])
    ctx.set("b", {"k": "v"})
    ctx.set("a", "")
    ctx.get("a")
    ctx.set("n", None)
    ctx.set("n", "Zürich")
    deltas = [p[0] for p in dump(learner, ctx.profiler.value(), ("memory_delta_bytes",))]
    want = [4, 5, 10, -7, 0, 4, 9]
    check(
        deltas == want,
        f"memory_delta_bytes were {deltas}; expected {want} (the last two: setting 'n' to None, "
        "then to 'Zürich', whose json.dumps is 13 characters, after a stored null of 4)",
    )


@case(
    "7.1",
    0.25,
    "ProfilingContext must behave like a Context (history, defaults); a rejected set() raises "
    "and records nothing",
    rules=("7.1-v", "7.1-aa"),
)
def test_7_1_profiling_context(learner):
    ctx = learner.ProfilingContext()
    ctx.set("app.name", "X", who="step1")
    history = [(e["key"], e["step"], e["after"]) for e in ctx.get_history()]
    check(history == [("app.name", "step1", "X")], f"the history was {history}")
    check(ctx.pop_dirty_keys() == ["app.name"], "set() did not mark the key dirty")
    raises(lambda: ctx.set("bad", expr("{1, 2}")), "TypeError", "set() of a Python set")
    count = len(profiles_of(learner, ctx.profiler.value()))
    check(count == 1, f"after one good and one rejected set, {count} profiles were recorded")
    check(ctx.to_dict() == {"app.name": "X"}, "the rejected value changed the context")


# =========================================================================== exercise 7.2
# The timed work: per key one put() and two get()s, all of the learner's code, in one bridge
# call; it returns what get() gave right after put(), which this side checks (a skipped or
# faked batch cannot pass). Fill: one bridge call per 1,000 puts, confirmed from here.
LRU_BATCH = (
    "lambda cache, prefix, n, base: [(cache.put(prefix + str(i), base + i), "
    "cache.get(prefix + str(i)), cache.get(prefix + str(i // 2)))[1] for i in range(n)]"
)
LRU_FILL = "lambda cache, start, stop: len([cache.put('k%d' % i, i) for i in range(start, stop)])"


def lru_scaling(learner, small=1000, big=100_000, keys=200, rounds=21, batch_limit=0.05):
    """Fastest per-operation time at each capacity, measured here, alternately, in one run.

    Each batch is one bridge call doing ``keys`` x (put, get, get) in the learner's cache,
    timed with this process's clock, so the bridge's fixed cost (under 0.1 ms) is small
    next to the work. The first round probes with 20 keys, and a batch slower than
    ``batch_limit`` makes the next one at that capacity smaller: slow code costs seconds,
    not minutes.
    """
    rng = random.Random(secrets.randbits(32))
    fill = learner.make(expr(LRU_FILL))
    caches = {}
    for cap in (small, big):
        cache = learner.LRUCache(cap)
        start = time.perf_counter()
        for first in range(0, cap, 1000):
            fill(cache, first, min(cap, first + 1000))
            if time.perf_counter() - start > 4.0:
                return {"slow_fill": cap, "filled": min(cap, first + 1000)}
        confirm(len(cache) == cap, f"filling a cache of capacity {cap:,}")
        for j in rng.sample(range(cap), 3):
            confirm(cache.get(f"k{j}") == j, f"filling a cache of capacity {cap:,}")
        caches[cap] = cache
    batch = learner.make(expr(LRU_BATCH))
    size = {small: 20, big: 20}
    times = {small: [], big: []}
    for r in range(rounds):
        for cap in (small, big) if r % 2 == 0 else (big, small):
            n, base = size[cap], rng.randrange(1, 10**9)
            start = time.perf_counter()
            got = batch(caches[cap], f"r{r}n", n, base)
            elapsed = time.perf_counter() - start
            check(
                got == [base + i for i in range(n)],
                f"at capacity {cap:,}, get() right after put() did not return the value put, "
                "so the speed of get()/put() could not be measured",
            )
            times[cap].append(elapsed / n)
            if elapsed > batch_limit:
                size[cap] = max(5, n // 4)
            elif n < keys:
                size[cap] = keys
        if r >= 2 and min(times[big]) > 20 * min(times[small]):
            break
    return {"small": min(times[small]), "big": min(times[big]), "rounds": len(times[big])}


# Threads must run in the learner's process. This helper only starts them on a cache made
# here and says whether any hung or raised; the counts are read from this side.
LRU_THREADS = r"""
def hammer(cache, threads=8, per_thread=3000, keyspace=150):
    import sys
    import threading

    errors = []
    barrier = threading.Barrier(threads)

    def work(t):
        try:
            barrier.wait()
            for i in range(per_thread):
                key = f"k{(i * 7 + t * 13) % keyspace}"
                if i % 3 == 0:
                    cache.put(key, i)
                else:
                    cache.get(key)
        except Exception as exc:
            errors.append(type(exc).__name__)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=5)
    finally:
        sys.setswitchinterval(old)
    return {"alive": sum(w.is_alive() for w in workers), "errors": sorted(set(errors))}
"""


def contains(learner, container, key):
    """``key in container``, answered by the learner's ``__contains__`` over the bridge."""
    return learner_contains(learner, container, key)


@case(
    "7.2",
    0.5,
    "LRUCache.get() must return the stored value (None for a missing key); put() must store "
    "and replace values; len() and `in` must report the cached keys",
    rules=("7.2-c", "7.2-d", "7.2-e", "7.2-m"),
)
def test_7_2_basics(learner):
    cache = learner.LRUCache(3)
    check(cache.get("x") is None, "get() of a missing key must return None")
    cache.put("x", 1)
    check(cache.get("x") == 1, "get() after put('x', 1) did not return 1")
    cache.put("x", {"v": [2]})
    check(cache.get("x") == {"v": [2]}, "put() of an existing key did not replace its value")
    cache.put("n", None)
    check(cache.get("n") is None and len(cache) == 2, f"len() was {len(cache)} for 2 keys")
    check(contains(learner, cache, "x") is True, "'x' in cache was not True")
    check(contains(learner, cache, "y") is False, "'y' in cache was not False")


@case(
    "7.2",
    0.75,
    "LRUCache must evict the least recently used key; get() and put() make a key the most "
    "recently used; keys() lists them from least to most recent",
    rules=("7.2-c", "7.2-e", "7.2-g", "7.2-l", "7.2-n"),
)
def test_7_2_lru_order(learner):
    cache = learner.LRUCache(3)
    for key in ("a", "b", "c"):
        cache.put(key, key.upper())
    check(cache.keys() == ["a", "b", "c"], f"after putting a, b, c keys() was {cache.keys()}")
    cache.get("a")
    cache.put("d", "D")
    check(
        cache.keys() == ["c", "a", "d"],
        f"after get('a') and put('d'), keys() was {cache.keys()}; 'b' should have been evicted",
    )
    cache.put("c", "C2")
    check(
        cache.keys() == ["a", "d", "c"],
        f"put() of an existing key must make it the most recent: keys() was {cache.keys()}",
    )
    cache.put("e", "E")
    check(cache.keys() == ["d", "c", "e"], f"after put('e') keys() was {cache.keys()}")
    cache.get("d")
    contains(learner, cache, "c")
    cache.keys()
    len(cache)
    cache.put("f", "F")
    check(
        cache.keys() == ["e", "d", "f"],
        "`in`, keys() and len() must not change the recency order; get() must; "
        f"keys() was {cache.keys()}",
    )
    check(cache.get("c") is None and cache.get("f") == "F", "the wrong key was evicted")


@case(
    "7.2",
    0.5,
    "LRUCache.stats must count hits and misses of get() and evictions of put(); replacing a "
    "value, keys(), len(), `in` and invalidate() must not change them",
    rules=("7.2-b", "7.2-c", "7.2-d", "7.2-f", "7.2-g", "7.2-i", "7.2-k", "7.2-n"),
)
def test_7_2_stats(learner):
    cache = learner.LRUCache(2)
    check(
        cache.stats.value() == {"hits": 0, "misses": 0, "evictions": 0},
        f"a new cache's stats were {cache.stats.value()}",
    )
    cache.get("a")
    cache.put("a", 1)
    cache.put("a", 2)
    cache.put("b", 2)
    cache.get("a")
    cache.get("b")
    cache.put("c", 3)
    cache.put("b", 20)  # the cache is full: replacing b's value must evict nothing
    cache.get("a")
    cache.keys()
    contains(learner, cache, "b")
    len(cache)
    cache.invalidate("*")
    got = cache.stats.value()
    check(
        got == {"hits": 2, "misses": 2, "evictions": 1},
        f"stats were {got}; expected hits 2, misses 2, evictions 1 (replacing a value in a "
        "full cache is not an eviction)",
    )


@case(
    "7.2",
    0.5,
    "LRUCache.put() must call on_evict(key, value) once for each key it evicts, and never for "
    "replaced values or invalidate(); the attribute on_evict is the callable passed in (or None)",
    rules=("7.2-b", "7.2-f", "7.2-h", "7.2-k"),
)
def test_7_2_on_evict(learner):
    log = learner.keep([])
    on_evict = in_worker(learner, "lambda log: (lambda k, v: log.append([k, v]))", log)
    cache = learner.LRUCache(2, on_evict=on_evict)
    check(
        learner.same(cache.on_evict.live_value(), on_evict),
        "the attribute on_evict must be the callable passed to LRUCache(..., on_evict=...)",
    )
    cache.put("a", "A")
    cache.put("b", "B")
    cache.put("a", "A2")
    cache.put("c", "C")
    check(
        learner.builtin("list", log) == [["b", "B"]], f"on_evict saw {learner.builtin('list', log)}"
    )
    cache.invalidate("*")
    for key in ("x", "y", "z"):
        cache.put(key, key.upper())
    got = learner.builtin("list", log)
    check(got == [["b", "B"], ["x", "X"]], f"on_evict calls were {got}")
    plain = learner.LRUCache(1)
    check(plain.on_evict.value() is None, "without on_evict, the attribute on_evict must be None")
    plain.put("p", 1)
    plain.put("q", 2)
    check(plain.keys() == ["q"], "a cache without on_evict must still evict")


@case(
    "7.2",
    0.5,
    "LRUCache.invalidate(pattern) must remove the keys matching the fnmatch pattern, return "
    "how many, and keep the other keys in order",
    rules=("7.2-j", "7.2-k"),
)
def test_7_2_invalidate(learner):
    cache = learner.LRUCache(10)
    keys = ["alpha", "config.db", "user.1", "userX1", "temp.a1", "config.cache", "user.22"]
    keys += ["temp.b2", "temp.c3"]
    for key in keys:
        cache.put(key, 1)
    cache.get("alpha")
    results = [cache.invalidate(p) for p in ("config.*", "user.?", "temp.[ab]*", "nothing*")]
    check(
        results == [2, 1, 2, 0],
        f"invalidate() returned {results} for config.*, user.?, temp.[ab]*, nothing*; expected "
        "[2, 1, 2, 0] (fnmatch patterns: '.' is a plain dot, so 'user.?' does not match userX1)",
    )
    remaining = cache.keys()
    check(
        remaining == ["userX1", "user.22", "temp.c3", "alpha"],
        f"the remaining keys, least recently used first, were {remaining}; expected "
        "['userX1', 'user.22', 'temp.c3', 'alpha'] (alpha was read last)",
    )
    stats = cache.stats.value()
    check(
        stats == {"hits": 1, "misses": 0, "evictions": 0},
        f"stats were {stats} after one hit and four invalidate() calls; invalidate() must not "
        "change them",
    )


@case(
    "7.2",
    0.25,
    "LRUCache(capacity) must raise ValueError for a capacity below 1, and keep the capacity as "
    "its attribute capacity",
    rules=("7.2-a", "7.2-b"),
)
def test_7_2_capacity(learner):
    for bad in (0, -3):
        raises(lambda bad=bad: learner.LRUCache(bad), "ValueError", f"LRUCache({bad})")
    one = learner.LRUCache(1)
    one.put("a", 1)
    one.put("b", 2)
    check(one.keys() == ["b"] and one.capacity.value() == 1, "a cache of capacity 1 misbehaved")
    big = learner.LRUCache(300)
    confirm(learner.make(expr(LRU_FILL))(big, 0, 301) == 301, "putting 301 keys")
    size, evictions = len(big), big.stats.value().get("evictions")
    check(
        size == 300 and evictions == 1 and contains(learner, big, "k0") is False,
        f"after 301 new keys in a cache of capacity 300 it held {size} keys with {evictions} "
        "evictions; expected 300 keys, 1 eviction, k0 (the least recently used) gone",
    )


@case(
    "7.2",
    1.0,
    "LRUCache.get()/put() must be O(1): at capacity 100,000 at most 5x slower per operation "
    "than at capacity 1,000, measured in the same run",
    critical=True,
    rules=("7.2-o", "7.2-p"),
)
def test_7_2_constant_time(learner):
    result = lru_scaling(learner)
    if "slow_fill" in result:
        check(
            False,
            f"filling a cache of capacity {result['slow_fill']:,} took more than 4 s "
            f"({result['filled']:,} puts done): put() is far from O(1)",
        )
    ratio = result["big"] / result["small"]
    check(
        ratio <= 5.0,
        f"per operation: {result['small'] * 1e9:,.0f} ns at capacity 1,000 and "
        f"{result['big'] * 1e9:,.0f} ns at capacity 100,000, a ratio of {ratio:.1f}x "
        "(at most 5x allowed; a scan of the entries gives about 100x)",
    )


@case(
    "7.2",
    1.0,
    "LRUCache must be thread-safe: with 8 threads calling get()/put(), no exception, hits + "
    "misses = get calls, at most capacity keys, and LRU order intact afterwards",
    critical=True,
    rules=("7.2-q", "7.2-r"),
)
def test_7_2_threads(learner):
    hammer = worker_function(learner, LRU_THREADS, "hammer")
    threads, per_thread, capacity = 8, 3000, 100
    gets = threads * sum(1 for i in range(per_thread) if i % 3)
    for n in range(1, 4):
        cache = learner.LRUCache(capacity)
        r = hammer(cache, threads, per_thread)
        confirm(isinstance(r, dict), "running the threads")
        # The worker's report can only fail the case; the counts are read from here.
        check(
            r.get("alive") == 0, f"run {n}: {r.get('alive')} threads were still running after 5 s"
        )
        check(r.get("errors") == [], f"run {n}: threads raised {r.get('errors')}")
        stats = cache.stats.value()
        counted = stats["hits"] + stats["misses"]
        check(counted == gets, f"run {n}: {gets} get calls but hits + misses = {counted}")
        size = len(cache)
        check(size <= capacity, f"run {n}: the cache held {size} keys with capacity {capacity}")
        fresh = [f"z{i}" for i in range(capacity)]
        try:
            for key in fresh:
                cache.put(key, 1)
            after = cache.keys() == fresh and len(cache) == capacity
        except LearnerException as exc:
            after = exc.type
        check(
            after is True,
            f"run {n}: after the threads, putting {capacity} new keys did not leave "
            f"exactly those keys in LRU order ({after})",
        )


# =========================================================================== exercise 7.3
def cache_has(learner, cctx, key):
    """``key in cctx.cache``, answered by the learner's cache over the bridge."""
    return learner_contains(learner, cctx.cache.value(), key)


def history(cctx):
    return [(e["key"], e["after"], e["step"]) for e in cctx.get_history()]


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


# =========================================================================== exercise 7.4
def ring_hash(text: str) -> int:
    return int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[:8], "big")


class RefRing:
    """The trusted reference: what the exercise text defines."""

    def __init__(self, nodes, replicas):
        self.ring = {ring_hash(f"{n}#{i}"): n for n in nodes for i in range(replicas)}
        self.points = sorted(self.ring)

    def owner(self, key):
        i = bisect.bisect_left(self.points, ring_hash(key))
        return self.ring[self.points[i % len(self.points)]]

    def walk(self, key, count):
        start = bisect.bisect_left(self.points, ring_hash(key))
        found = []
        for step in range(len(self.points)):
            node = self.ring[self.points[(start + step) % len(self.points)]]
            if node not in found:
                found.append(node)
                if len(found) == count:
                    break
        return found


def owners(learner, ring, keys):
    return in_worker(learner, "lambda r, keys: [r.get_node(k) for k in keys]", ring, keys)


def positions(learner, ring):
    """The ring's (position, node) pairs, sorted, read over the bridge."""
    table = ring.ring.value()
    pairs = learner.builtin("list", table.items()) if isinstance(table, Remote) else table.items()
    return sorted(tuple(p) for p in pairs)


NODES5 = [f"node-{i}" for i in range(5)]
KEYS = [f"user:{i}" for i in range(3000)]


@case(
    "7.4",
    0.5,
    "ConsistentHashRing must place exactly `replicas` virtual nodes per node, at "
    "ring_hash(f'{node}#{i}'), with _points the sorted positions; add_node() adds the node's "
    "positions and the node to nodes",
    rules=("7.4-a", "7.4-b", "7.4-i"),
)
def test_7_4_positions(learner):
    ring = learner.ConsistentHashRing(["n1", "n2", "n3", "n2"], replicas=7)
    ref = RefRing(["n1", "n2", "n3"], 7)
    got = positions(learner, ring)
    check(len(got) == 21, f"the ring had {len(got)} positions for 3 nodes x 7 virtual nodes")
    check(
        got == sorted(ref.ring.items()), "the positions (or their nodes) are not the specified ones"
    )
    check(ring._points.value() == ref.points, "_points is not the sorted list of positions")
    ring.add_node("n4")
    ref = RefRing(["n1", "n2", "n3", "n4"], 7)
    check(
        positions(learner, ring) == sorted(ref.ring.items()) and ring._points.value() == ref.points,
        "after add_node('n4'), the positions (or _points) are not those of n1..n4 with 7 each",
    )
    nodes = sorted(learner.builtin("list", ring.nodes.value()))
    check(nodes == ["n1", "n2", "n3", "n4"], f"after add_node('n4'), nodes was {nodes}")
    solo = positions(learner, learner.ConsistentHashRing(["solo"]))
    check(
        solo == sorted(RefRing(["solo"], 100).ring.items()),
        f"ConsistentHashRing(['solo']) had {len(solo)} positions; the default is 100 per node",
    )
    one = positions(learner, learner.ConsistentHashRing(["a", "b"], replicas=1))
    check(one == sorted(RefRing(["a", "b"], 1).ring.items()), "replicas=1 must be accepted")
    for bad in (0, -1, "3", 2.0):
        raises(
            lambda bad=bad: learner.ConsistentHashRing(["a"], replicas=bad),
            "ValueError",
            f"ConsistentHashRing(['a'], replicas={bad!r}) (replicas must be an int >= 1)",
        )


@case(
    "7.4",
    1.0,
    "ConsistentHashRing.get_node() must return the node of the first position >= "
    "ring_hash(key), wrapping around to the smallest position",
    rules=("7.4-c", "7.4-d"),
)
def test_7_4_owners(learner):
    ring = learner.ConsistentHashRing(NODES5, replicas=50)
    ref = RefRing(NODES5, 50)
    last = ref.points[-1]
    wrapping = [k for k in (f"wrap:{i}" for i in range(20000)) if ring_hash(k) > last][:5]
    exact = [f"node-{i}#{j}" for i in range(5) for j in (0, 7, 49)]
    keys = KEYS + wrapping + exact
    got = owners(learner, ring, keys)
    wrong = [(k, g, ref.owner(k)) for k, g in zip(keys, got, strict=False) if g != ref.owner(k)]
    check(
        not wrong,
        f"{len(wrong)} of {len(keys)} keys got the wrong node, e.g. (key, got, expected) "
        f"{wrong[:3]}",
    )
    check(len(wrapping) == 5, "grader error: no wrapping keys found")


@case(
    "7.4",
    0.25,
    "get_node() and get_nodes() on a ring without nodes must raise LookupError",
    rules=("7.4-e", "7.4-h", "7.4-l"),
)
def test_7_4_empty(learner):
    empty = learner.ConsistentHashRing([], replicas=3)
    raises(lambda: empty.get_node("k"), "LookupError", "get_node() on an empty ring")
    raises(lambda: empty.get_nodes("k", 2), "LookupError", "get_nodes() on an empty ring")
    single = learner.ConsistentHashRing(["only"], replicas=3)
    single.remove_node("only")
    raises(lambda: single.get_node("k"), "LookupError", "get_node() after removing the last node")


@case(
    "7.4",
    0.75,
    "ConsistentHashRing.add_node() must move only the keys the new node now owns (about 1/(N+1) "
    "of them) and answer like a ring built with the new nodes; adding a known node changes nothing",
    critical=True,
    rules=("7.4-i", "7.4-j", "7.4-k", "7.4-n"),
)
def test_7_4_add(learner):
    ring = learner.ConsistentHashRing(NODES5, replicas=100)
    before = owners(learner, ring, KEYS)
    ring.add_node("node-5")
    after = owners(learner, ring, KEYS)
    moved = [(k, b, a) for k, b, a in zip(KEYS, before, after, strict=False) if a != b]
    share = len(moved) / len(KEYS)
    check(
        all(a == "node-5" for _k, _b, a in moved),
        f"keys moved between old nodes: {[m for m in moved if m[2] != 'node-5'][:3]}",
    )
    check(
        0.5 / 6 <= share <= 1.5 / 6,
        f"{len(moved)} of {len(KEYS)} keys moved ({share:.1%}); about 1/6 (16.7%) should",
    )
    ref = RefRing(NODES5 + ["node-5"], 100)
    check(after == [ref.owner(k) for k in KEYS], "after add_node() some keys got the wrong node")
    ring.add_node("node-5")
    check(
        len(positions(learner, ring)) == 600 and owners(learner, ring, KEYS) == after,
        "adding a node that is already on the ring changed the ring",
    )


@case(
    "7.4",
    0.75,
    "ConsistentHashRing.remove_node() must move only the removed node's keys and take all its "
    "positions off the ring; an unknown node raises KeyError",
    critical=True,
    rules=("7.4-l", "7.4-m", "7.4-o"),
)
def test_7_4_remove(learner):
    ring = learner.ConsistentHashRing(NODES5, replicas=100)
    before = owners(learner, ring, KEYS)
    ring.remove_node("node-2")
    after = owners(learner, ring, KEYS)
    check("node-2" not in after, "a removed node still owns keys")
    stray = [
        (k, b, a) for k, b, a in zip(KEYS, before, after, strict=False) if a != b and b != "node-2"
    ]
    check(not stray, f"keys of other nodes moved: {stray[:3]}")
    ref = RefRing([n for n in NODES5 if n != "node-2"], 100)
    check(after == [ref.owner(k) for k in KEYS], "after remove_node() some keys got the wrong node")
    check(len(positions(learner, ring)) == 400, "the removed node's positions stayed on the ring")
    check(
        sorted(learner.builtin("list", ring.nodes.value())) == [n for n in NODES5 if n != "node-2"],
        "nodes still lists the removed node",
    )
    raises(lambda: ring.remove_node("node-9"), "KeyError", "remove_node() of an unknown node")


@case(
    "7.4",
    0.75,
    "ConsistentHashRing.get_nodes(key, count) must walk clockwise from the key's position and "
    "return the first `count` distinct nodes (all nodes when count is larger)",
    rules=("7.4-f", "7.4-g"),
)
def test_7_4_get_nodes(learner):
    ring = learner.ConsistentHashRing(NODES5, replicas=20)
    ref = RefRing(NODES5, 20)
    keys = KEYS[:300]
    for count in (1, 3, 9):
        got = in_worker(
            learner, "lambda r, ks, n: [r.get_nodes(k, n) for k in ks]", ring, keys, count
        )
        wrong = [
            (k, g, ref.walk(k, count))
            for k, g in zip(keys, got, strict=False)
            if g != ref.walk(k, count)
        ]
        check(
            not wrong,
            f"get_nodes(key, {count}) was wrong for {len(wrong)} keys, e.g. (key, got, "
            f"expected) {wrong[:2]}",
        )
    many = [f"m{i:03d}" for i in range(270)]
    wide = learner.ConsistentHashRing(many, replicas=2)
    got = in_worker(
        learner, "lambda r, ks, n: [r.get_nodes(k, n) for k in ks]", wide, ["wide:1", "wide:2"], 257
    )
    want = [RefRing(many, 2).walk(k, 257) for k in ("wide:1", "wide:2")]
    check(
        got == want,
        f"with 270 nodes, get_nodes(key, 257) returned {[len(g) for g in got]} nodes (or the "
        "wrong ones); expected the first 257 distinct nodes clockwise",
    )


# =========================================================================== exercise 7.5
FAKE_CLUSTER = (
    "(lambda NS: NS(nodes={{nid: NS(node_id=nid, is_active=up, "
    "get_health_status=(lambda nid=nid, up=up: {{'node_id': nid, 'is_active': up, 'keys': 3}})) "
    "for nid, up in {pairs}}}))(__import__('types').SimpleNamespace)"
)


def fake_cluster(learner, pairs):
    return learner.make(expr(FAKE_CLUSTER.format(pairs=repr(pairs))))


@case(
    "7.5",
    0.5,
    "LoadBalancer round_robin must return nodes[current_index % len(nodes)] and advance the "
    "index on every call; an empty list raises ValueError",
    rules=("7.5-a", "7.5-b", "7.5-c", "7.5-d", "7.5-e"),
)
def test_7_5_round_robin(learner):
    lb = learner.LoadBalancer()
    picks = [lb.select_node(["a", "b", "c"], "get") for _ in range(5)]
    check(picks == ["a", "b", "c", "a", "b"], f"five calls over [a, b, c] returned {picks}")
    more = [lb.select_node(["x", "y"], "set") for _ in range(2)]
    check(more == ["y", "x"], f"with current_index 5, two calls over [x, y] returned {more}")
    check(lb.current_index.value() == 7, f"current_index was {lb.current_index.value()}")
    raises(lambda: lb.select_node([], "get"), "ValueError", "select_node([])")


@case(
    "7.5",
    0.5,
    "LoadBalancer least_loaded must return the node with the smallest recorded load (unknown "
    "nodes count 0.0, ties go to the first in the list); negative loads raise ValueError",
    rules=("7.5-a", "7.5-b", "7.5-c", "7.5-f", "7.5-g", "7.5-h", "7.5-i", "7.5-j"),
)
def test_7_5_least_loaded(learner):
    lb = learner.LoadBalancer("least_loaded")
    lb.update_node_load("a", 0.5)
    lb.update_node_load("b", 0.2)
    lb.update_node_load("c", 0.2)
    results = [
        lb.select_node(["a", "b", "c"], "get"),
        lb.select_node(["c", "b", "a"], "set"),
        lb.select_node(["a", "d"], "scan"),
    ]
    check(results == ["b", "c", "d"], f"the selections were {results}; expected [b, c, d]")
    lb.update_node_load("d", 0.7)
    check(lb.select_node(["a", "d"], "get") == "a", "a higher recorded load did not count")
    raises(lambda: lb.update_node_load("a", -0.1), "ValueError", "a negative load")
    lb.update_node_load("e", 1)
    loads = lb.node_loads.value()
    check(
        loads == {"a": 0.5, "b": 0.2, "c": 0.2, "d": 0.7, "e": 1.0} and type(loads["e"]) is float,
        f"node_loads was {loads}",
    )
    lb.update_node_load("z", 0)
    check(lb.node_loads.value().get("z") == 0.0, "a load of 0 must be recorded (only < 0 raises)")
    tie = lb.select_node(["z", "w"], "get")
    check(
        tie == "z",
        f"over [z, w] with z at 0.0 and w without a load it chose {tie!r}; w counts as 0.0, "
        "so the tie goes to z, the first",
    )
    raises(lambda: lb.select_node([], "get"), "ValueError", "select_node([])")


@case(
    "7.5",
    0.5,
    "HealthMonitor.check_cluster_health() must return the report described (nodes, checks that "
    "pass only when truthy and fail when they raise, healthy)",
    rules=("7.5-k", "7.5-m", "7.5-n", "7.5-p"),
)
def test_7_5_health_report(learner):
    cluster = fake_cluster(learner, [("n2", True), ("n0", False), ("n3", False), ("n1", True)])
    hm = learner.HealthMonitor(clock=fake_clock(learner, range(100, 200)))
    hm.register_health_check("ok", learner.make(expr("lambda c: 1")))
    hm.register_health_check("bad", learner.make(expr("lambda c: 0")))
    hm.register_health_check("boom", learner.make(expr("lambda c: 1 / 0")))
    report = hm.check_cluster_health(cluster)
    want = {
        "total_nodes": 4,
        "active_nodes": 2,
        "inactive_nodes": ["n0", "n3"],
        "nodes": {
            nid: {"node_id": nid, "is_active": up, "keys": 3}
            for nid, up in (("n2", True), ("n0", False), ("n3", False), ("n1", True))
        },
        "checks": {"ok": True, "bad": False, "boom": False},
        "healthy": False,
    }
    check(report == want, f"the report was {report}; expected {want}")
    fine = learner.HealthMonitor()
    fine.register_health_check("ok", learner.make(expr("lambda c: False")))
    fine.register_health_check("ok", learner.make(expr("lambda c: True")))
    healthy = fine.check_cluster_health(fake_cluster(learner, [("a", True), ("b", True)]))
    check(
        healthy.get("healthy") is True and healthy.get("checks") == {"ok": True},
        f"all nodes up and a passing check (registered twice) gave {healthy}",
    )
    fine.register_health_check("disk", learner.make(expr("lambda c: False")))
    failing = fine.check_cluster_health(fake_cluster(learner, [("a", True), ("b", True)]))
    check(
        failing.get("healthy") is False,
        f"all nodes up but a failing check must not be healthy: {failing}",
    )
    none = fine.check_cluster_health(fake_cluster(learner, []))
    check(none.get("healthy") is False, "a cluster without nodes must not be healthy")
    bare = learner.HealthMonitor()
    empty = bare.check_cluster_health(fake_cluster(learner, []))
    check(
        empty.get("healthy") is False,
        f"a cluster without nodes must not be healthy, even with no checks registered: {empty}",
    )
    lone = bare.check_cluster_health(fake_cluster(learner, [("solo", True)]))
    check(
        lone.get("healthy") is True,
        f"one active node and no checks must be healthy: {lone}",
    )


@case(
    "7.5",
    0.5,
    "HealthMonitor.trigger_alert() must record {type, details, timestamp=clock()} and return that "
    "dict; check_cluster_health() must alert node_down (sorted ids) then check_failed (in "
    "registration order)",
    rules=("7.5-l", "7.5-n", "7.5-o"),
)
def test_7_5_alerts(learner):
    hm = learner.HealthMonitor(clock=fake_clock(learner, range(100, 200)))
    details = learner.keep({"a": 1})
    alert = hm.trigger_alert.live("custom", details)
    details.update(a=2)  # a dict method called over the bridge: no grader code there
    confirm(read_back(learner, details) == {"a": 2}, "changing the details after the alert")
    want = {"type": "custom", "details": {"a": 1}, "timestamp": 100.0}
    got = read_back(learner, alert)
    check(got == want, f"trigger_alert() returned {got}")
    check(hm.alerts.value() == [want], f"alerts was {hm.alerts.value()}")
    mark = secrets.token_hex(4)
    alert.update(seen=mark)  # the returned dict's own method, called over the bridge
    confirm(read_back(learner, alert).get("seen") == mark, "marking the returned alert")
    check(
        hm.alerts.value() == [dict(want, seen=mark)],
        "trigger_alert() must return the dict it appended to alerts, not a copy of it",
    )
    hm.register_health_check("fine", learner.make(expr("lambda c: True")))
    hm.register_health_check("zz_bad", learner.make(expr("lambda c: None")))
    hm.register_health_check("boom", learner.make(expr("lambda c: {}['x']")))
    hm.check_cluster_health(fake_cluster(learner, [("n3", False), ("n1", True), ("n0", False)]))
    alerts = hm.alerts.value()
    seen = [(a.get("type"), a.get("details")) for a in alerts[1:]]
    check(
        seen
        == [
            ("node_down", {"node_id": "n0"}),
            ("node_down", {"node_id": "n3"}),
            ("check_failed", {"check": "zz_bad"}),
            ("check_failed", {"check": "boom"}),
        ],
        f"the alerts raised by check_cluster_health() were {seen}; expected node_down for n0 "
        "and n3 (sorted ids), then check_failed for zz_bad and boom (registration order)",
    )
    stamps = [a.get("timestamp") for a in alerts]
    check(
        all(isinstance(t, float) for t in stamps) and stamps == sorted(stamps),
        f"alert timestamps must come from the clock: {stamps}",
    )


# =========================================================================== exercise 7.6
class ClusterTools:
    """Reads and writes on a learner's ContextCluster, each one a bridge call of its methods.

    No grader code runs in the worker: what a test checks is what the learner's objects
    answer, and a change the grader makes (a node going down) is read back to confirm it.
    """

    def __init__(self, learner):
        self.learner = learner

    def fill(self, cluster, items, who=None):
        for key, value in items:
            cluster.set(key, value, who=who)

    def read_all(self, cluster, keys, default=None):
        return [cluster.get(key, default) for key in keys]

    def as_list(self, value):
        return self.learner.builtin("list", value) if isinstance(value, Remote) else list(value)

    def layout(self, cluster):
        return {
            n: sorted(self.as_list(node.context.keys()))
            for n, node in cluster.nodes.value().items()
            if node.is_active.value()
        }

    def replica_sets(self, cluster, keys):
        return [self.as_list(cluster.replicas_for(key)) for key in keys]

    def set_active(self, cluster, node_id, up):
        node = cluster.nodes.value()[node_id]
        node.is_active = up
        confirm(node.is_active.value() is up, f"marking {node_id} {'up' if up else 'down'}")

    def ring_nodes(self, cluster):
        return self.learner.builtin("sorted", cluster.hash_ring.nodes.value())

    def ring_says(self, cluster, keys, count):
        ring = cluster.hash_ring.value()
        return [ring.get_nodes(key, count) for key in keys]

    def steps(self, cluster, key):
        """who of each replica's history entries for ``key``."""
        nodes = cluster.nodes.value()
        return [
            e["step"]
            for n in self.as_list(cluster.replicas_for(key))
            for e in nodes[n].context.get_history()
            if e["key"] == key
        ]


def filled_cluster(learner, tools, nodes, rf, n_keys, prefix="k"):
    cluster = learner.ContextCluster(nodes, replication_factor=rf)
    items = [[f"{prefix}{i}", {"n": i}] for i in range(n_keys)]
    tools.fill(cluster, items, who="grader")
    keys = [k for k, _v in items]
    return cluster, keys, [v for _k, v in items]


def holders(layout, key):
    return sorted(n for n, keys in layout.items() if key in keys)


@case(
    "7.6",
    0.5,
    "ContextCluster.set() must write each key to exactly the nodes of replicas_for(key) "
    "(hash_ring.get_nodes(key, replication_factor)); get() must read it back",
    rules=("7.6-a", "7.6-b", "7.6-e", "7.6-f"),
)
def test_7_6_replication(learner):
    tools = ClusterTools(learner)
    cluster, keys, values = filled_cluster(learner, tools, NODES5, 3, 200)
    replicas = tools.replica_sets(cluster, keys)
    ring_says = tools.ring_says(cluster, keys, 3)
    check(replicas == ring_says, "replicas_for(key) is not hash_ring.get_nodes(key, 3)")
    layout = tools.layout(cluster)
    wrong = [
        k
        for k, r in zip(keys, replicas, strict=False)
        if holders(layout, k) != sorted(r) or len(r) != 3
    ]
    check(
        not wrong, f"{len(wrong)} keys are not stored on exactly their 3 replicas, e.g. {wrong[:3]}"
    )
    check(tools.read_all(cluster, keys) == values, "get() did not return the values set")
    check(cluster.get("missing", "D") == "D", "get() of a missing key must return the default")
    steps = tools.steps(cluster, keys[0])
    check(steps == ["grader"] * 3, f"the replicas recorded who = {steps}")
    default = learner.ContextCluster(NODES5)
    sizes = [len(r) for r in tools.replica_sets(default, keys[:20])]
    check(sizes == [3] * 20, f"ContextCluster(nodes) must keep 3 replicas by default: {sizes}")
    virtual = len(positions(learner, default.hash_ring.value()))
    check(virtual == 500, f"ContextCluster(5 nodes) had {virtual} ring positions; 100 per node")
    small, small_keys, small_values = filled_cluster(learner, tools, ["a", "b"], 3, 20)
    small_layout = tools.layout(small)
    check(
        all(holders(small_layout, k) == ["a", "b"] for k in small_keys),
        "with replication_factor 3 and 2 nodes, every key must be on both nodes",
    )


@case(
    "7.6",
    0.75,
    "ContextCluster must keep serving reads and writes from the other replicas while a node is "
    "down; set() raises ConnectionError only when no replica is reachable",
    critical=True,
    rules=("7.6-b", "7.6-c", "7.6-f", "7.6-g"),
)
def test_7_6_failover_reads(learner):
    tools = ClusterTools(learner)
    cluster, keys, values = filled_cluster(learner, tools, NODES5, 3, 200)
    tools.set_active(cluster, "node-1", False)
    got = tools.read_all(cluster, keys)
    lost = [k for k, g, v in zip(keys, got, values, strict=False) if g != v]
    check(not lost, f"with node-1 down, {len(lost)} keys could not be read, e.g. {lost[:3]}")
    tools.fill(cluster, [[f"new{i}", i] for i in range(60)])
    check(
        tools.read_all(cluster, [f"new{i}" for i in range(60)]) == list(range(60)),
        "with node-1 down, keys written afterwards could not be read back",
    )
    for node in NODES5:
        tools.set_active(cluster, node, False)
    raises(lambda: cluster.set("nowhere", 1), "ConnectionError", "set() with every node down")
    check(cluster.get(keys[0], "D") == "D", "get() with every node down must return the default")


@case(
    "7.6",
    0.75,
    "ContextCluster.handle_node_failure() must take the node off the ring and copy its keys so "
    "every key is again on replication_factor active nodes; it returns the copies made",
    critical=True,
    rules=("7.6-h", "7.6-i", "7.6-m", "7.6-n", "7.6-o", "7.6-p"),
)
def test_7_6_node_failure(learner):
    tools = ClusterTools(learner)
    cluster, keys, values = filled_cluster(learner, tools, NODES5, 3, 200)
    before = tools.layout(cluster)
    copies = cluster.handle_node_failure("node-2")
    check(
        tools.ring_nodes(cluster) == [n for n in NODES5 if n != "node-2"],
        f"the ring's nodes were {tools.ring_nodes(cluster)}",
    )
    check(cluster.nodes.value()["node-2"].is_active.value() is False, "node-2 was not marked down")
    after = tools.layout(cluster)
    replicas = tools.replica_sets(cluster, keys)
    wrong = [
        k
        for k, r in zip(keys, replicas, strict=False)
        if holders(after, k) != sorted(r) or len(r) != 3
    ]
    check(
        not wrong,
        f"{len(wrong)} keys are not on exactly their 3 new replicas after the failure, "
        f"e.g. {wrong[:3]}",
    )
    check(tools.read_all(cluster, keys) == values, "values changed or got lost after the failure")
    new_copies = sum(len(after[n]) - len(before[n]) for n in after)
    check(
        copies == new_copies == len(before["node-2"]),
        f"it returned {copies}; {new_copies} copies were made for the "
        f"{len(before['node-2'])} keys node-2 held",
    )
    check(
        cluster.handle_node_failure("node-2") == 0, "a second call for the same node must return 0"
    )
    raises(lambda: cluster.handle_node_failure("node-9"), "KeyError", "an unknown node")


@case(
    "7.6",
    0.25,
    "ContextCluster.set() must skip replicas that are down (they get nothing) and let errors "
    "other than ConnectionError propagate; get() must return the value of the first replica, "
    "in replicas_for() order, that holds the key",
    rules=("7.6-b", "7.6-d", "7.6-e"),
)
def test_7_6_read_order(learner):
    tools = ClusterTools(learner)
    cluster = learner.ContextCluster(NODES5, replication_factor=3)
    key = "order:ключ"
    replicas = tools.replica_sets(cluster, [key])[0]
    check(len(replicas) == 3, f"replicas_for({key!r}) gave {replicas}, not 3 nodes")
    first, second, third = replicas
    tools.set_active(cluster, first, False)
    tools.set_active(cluster, third, False)
    cluster.set(key, "zweite-ü", who="writer-2")
    tools.set_active(cluster, third, True)
    tools.set_active(cluster, second, False)
    cluster.set(key, "dritte", who="writer-3")
    tools.set_active(cluster, first, True)
    tools.set_active(cluster, second, True)
    nodes = cluster.nodes.value()
    held = [
        [(e["after"], e["step"]) for e in nodes[n].context.get_history() if e["key"] == key]
        for n in (first, second, third)
    ]
    check(
        held == [[], [("zweite-ü", "writer-2")], [("dritte", "writer-3")]],
        f"with some replicas down, the writes reached (value, who) per replica {held}; a "
        "replica that is down must get nothing, the others the value with its who",
    )
    got = cluster.get(key, "D")
    check(
        got == "zweite-ü",
        f"get() returned {got!r}: its first replica does not hold the key, the second holds "
        "'zweite-ü' (the third 'dritte'), so the second's value is due",
    )
    raises(
        lambda: cluster.set("bad", expr("{1, 2}")),
        "TypeError",
        "set() of a value that is not JSON data must let the node's TypeError through",
    )


@case(
    "7.6",
    0.25,
    "ContextCluster rebalancing must write the value to every active new replica that lacks the "
    "key or holds a different value, with who='rebalance', and count those writes",
    rules=("7.6-h", "7.6-i", "7.6-n", "7.6-o"),
)
def test_7_6_rebalance_overwrites(learner):
    cluster = learner.ContextCluster(NODES5, replication_factor=3)
    ring = cluster.hash_ring.value()
    for i in range(100):
        key, walk = f"stale:{i}", ring.get_nodes(f"stale:{i}", 4)
        if "node-2" in walk[:3]:
            break
    check(len(walk) == 4 and "node-2" in walk[:3], "get_nodes(key, 4) did not give 4 nodes")
    heir = walk[3]  # the replica that takes node-2's place
    value = {"wert": "frisch-ü", "n": [1, 2]}
    cluster.set(key, value, who="grader")
    stale = cluster.nodes.value()[heir].context
    stale.set(key, "veraltet", who="old")
    confirm(stale.get(key) == "veraltet", f"giving {heir} an old copy of {key}")
    copies = cluster.handle_node_failure("node-2")
    entries = [(e["after"], e["step"]) for e in stale.get_history() if e["key"] == key]
    check(
        entries == [("veraltet", "old"), (value, "rebalance")],
        f"{heir} held an old, different value of {key} and became its replica when node-2 "
        f"failed; its writes for the key were (value, who) {entries}, expected the current "
        "value written over it with who 'rebalance'",
    )
    check(
        copies == 1,
        f"handle_node_failure() returned {copies}; one write was made (the other two replicas "
        "already held the value)",
    )
    # node-1 is down but the cluster was not told; node-3 fails. Rebalancing skips node-1
    # and still writes to the active replicas that come after it.
    tools = ClusterTools(learner)
    cluster, keys, values = filled_cluster(learner, tools, NODES5, 3, 200)
    tools.set_active(cluster, "node-1", False)
    before = tools.layout(cluster)
    copies = cluster.handle_node_failure("node-3")
    after = tools.layout(cluster)
    replicas = tools.replica_sets(cluster, keys)
    missing = [
        (k, n)
        for k, r in zip(keys, replicas, strict=False)
        for n in r
        if n in after and k not in after[n]
    ]
    check(
        not missing,
        f"with node-1 down (not yet reported) and node-3 failed, {len(missing)} active new "
        f"replicas lack their key, e.g. (key, node) {missing[:3]}; a replica that is down is "
        "skipped, the ones after it still get the value",
    )
    made = sum(len(after[n]) - len(before[n]) for n in after)
    check(copies == made, f"handle_node_failure() returned {copies}; {made} copies were made")


@case(
    "7.6",
    0.5,
    "ContextCluster.add_node() must give the new node exactly the keys it now replicates (written "
    "with who='rebalance', and nothing else moves); it returns the copies made; a node already in "
    "the cluster, even a failed one, raises ValueError",
    rules=("7.6-h", "7.6-i", "7.6-j", "7.6-k", "7.6-l"),
)
def test_7_6_add_node(learner):
    tools = ClusterTools(learner)
    cluster, keys, values = filled_cluster(learner, tools, NODES5[:4], 2, 200)
    before = tools.layout(cluster)
    copies = cluster.add_node("node-9")
    after = tools.layout(cluster)
    replicas = tools.replica_sets(cluster, keys)
    expected = sorted(k for k, r in zip(keys, replicas, strict=False) if "node-9" in r)
    check(
        after.get("node-9") == expected,
        f"node-9 holds {len(after.get('node-9', []))} keys; it replicates {len(expected)}",
    )
    check(copies == len(expected), f"add_node() returned {copies}; {len(expected)} copies were due")
    check(
        all(after[n] == before[n] for n in before),
        "add_node() wrote keys to the old nodes",
    )
    check(tools.read_all(cluster, keys) == values, "values changed or got lost after add_node()")
    whos = {e["step"] for e in cluster.nodes.value()["node-9"].context.get_history()}
    check(
        whos == {"rebalance"},
        f"the copies on node-9 were written with who = {sorted(map(repr, whos))}; expected "
        "'rebalance'",
    )
    raises(lambda: cluster.add_node("node-9"), "ValueError", "adding node-9 twice")
    cluster.handle_node_failure("node-0")
    raises(
        lambda: cluster.add_node("node-0"),
        "ValueError",
        "adding node-0 after its failure (it stays in the cluster's nodes, marked down)",
    )
    single, single_keys, _ = filled_cluster(learner, tools, NODES5, 1, 600, prefix="s")
    moved = single.add_node("node-5")
    check(
        0.5 / 6 * 600 <= moved <= 1.5 / 6 * 600,
        f"with replication_factor 1, adding a 6th node copied {moved} of 600 keys; "
        "about 1/6 (100) should move",
    )
