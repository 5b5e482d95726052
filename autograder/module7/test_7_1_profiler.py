"""Module 7's hidden suite, exercise 7.1: A Context profiler. Instructor-only: never released to
learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import math
import random
import re

from _support import fake_clock

from academy.bridge.client import Remote, expr
from academy.grading.cases import case, check, confirm, in_worker, is_a, raises, worker_function

TOL = 1e-6


def close(a, b):
    return isinstance(a, (int, float)) and abs(a - b) <= TOL * max(1.0, abs(b))


def nearest_rank(values, p):
    s = sorted(values)
    return s[math.ceil(p / 100 * len(s)) - 1]


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


# =========================================================================== exercise 7.1
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
