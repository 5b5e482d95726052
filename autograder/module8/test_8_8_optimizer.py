"""Module 8's hidden suite, exercise 8.8: PerformanceOptimizer, a rule table. Instructor-only:
never released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

from _support import c_action, c_tool

from academy.grading.cases import case, check, raises

SEED_METRICS = {"latency_p99": 15.2, "cache_hit_rate": 0.72, "memory_usage": 0.85}


def c_fake(learner, capacity):
    return c_tool(learner, "c_fake_cache")(capacity)


# =========================================================================== exercise 8.8
@case(
    "8.8",
    0.5,
    "PerformanceOptimizer.analyze_and_optimize() on the seed's metrics must return the three "
    "actions of the rule table, in order, with exactly the documented keys, and shrink a "
    "cache of 256 to 192",
    rules=("8.8-e", "8.8-i", "8.8-j", "8.8-k", "8.8-l", "8.8-m", "8.8-n", "8.8-q"),
)
def test_8_8_seed_example(learner):
    got = learner.PerformanceOptimizer().analyze_and_optimize(dict(SEED_METRICS))
    want = [
        c_action("memory_usage_high", "memory_usage", 0.85, 0.8, "shrink_cache"),
        c_action("cache_hit_rate_low", "cache_hit_rate", 0.72, 0.8, "alert"),
        c_action("latency_p99_high", "latency_p99", 15.2, 10.0, "alert"),
    ]
    check(got == want, f"without a cache it returned {got}; expected {want}")
    cache = c_fake(learner, 256)
    got = learner.PerformanceOptimizer(cache=cache).analyze_and_optimize(dict(SEED_METRICS))
    want[0] = c_action("memory_usage_high", "memory_usage", 0.85, 0.8, "shrink_cache", 256, 192)
    check(got == want, f"with a cache of capacity 256 it returned {got}; expected {want}")
    calls = cache.calls.value()
    check(calls == [192], f"the cache's resize() was called with {calls}; expected [192]")


@case(
    "8.8",
    0.5,
    "PerformanceOptimizer rules must compare exactly: memory_usage >= target, cache_hit_rate < "
    "target, latency_p99 > target, with targets overridable (a new dict of floats)",
    rules=("8.8-a", "8.8-j", "8.8-k", "8.8-l"),
)
def test_8_8_thresholds(learner):
    cases = [
        ({"memory_usage": 0.8}, ["memory_usage_high"]),
        ({"memory_usage": 0.7999}, []),
        ({"cache_hit_rate": 0.8}, []),
        ({"cache_hit_rate": 0.7999}, ["cache_hit_rate_low"]),
        ({"latency_p99": 10.0}, []),
        ({"latency_p99": 10.001}, ["latency_p99_high"]),
        ({"latency_p99": 0, "cache_hit_rate": 1, "memory_usage": 0}, []),
        (
            {"latency_p99": 99, "cache_hit_rate": 0, "memory_usage": 1},
            ["memory_usage_high", "cache_hit_rate_low", "latency_p99_high"],
        ),
    ]
    optimizer = learner.PerformanceOptimizer()
    for metrics, want in cases:
        got = optimizer.analyze_and_optimize(metrics)
        rules = [a.get("rule") for a in got] if isinstance(got, list) else got
        check(rules == want, f"metrics {metrics}: rules fired {rules}; expected {want}")
    given = learner.keep({"latency_p99": 5, "memory_usage": 0.5})
    custom = learner.PerformanceOptimizer(targets=given)
    targets = custom.targets.value()
    check(
        targets == {"latency_p99": 5.0, "cache_hit_rate": 0.8, "memory_usage": 0.5}
        and all(type(v) is float for v in targets.values()),
        f"targets={{'latency_p99': 5, 'memory_usage': 0.5}} gave {targets}; expected every "
        "value as a float, 5 as 5.0",
    )
    kept = custom.targets.live_value()
    check(
        not learner.same(kept, given)
        and not learner.same(kept, learner.PerformanceOptimizer.DEFAULT_TARGETS.live_value()),
        "self.targets must be a new dict, neither the targets passed in nor DEFAULT_TARGETS",
    )
    got = custom.analyze_and_optimize({"latency_p99": 6.0, "memory_usage": 0.5})
    want = [
        c_action("memory_usage_high", "memory_usage", 0.5, 0.5, "shrink_cache"),
        c_action("latency_p99_high", "latency_p99", 6.0, 5.0, "alert"),
    ]
    check(got == want, f"with custom targets it returned {got}; expected {want}")


@case(
    "8.8",
    0.5,
    "PerformanceOptimizer must resize the cache as the table says: grow x2 up to max_capacity, "
    "shrink to 3/4 down to min_capacity, never the wrong way, no resize() when the capacity "
    "does not change, and no growing under memory pressure",
    rules=("8.8-e", "8.8-j", "8.8-k", "8.8-n", "8.8-o"),
)
def test_8_8_cache_actions(learner):
    scenarios = [
        # capacity, min, max, metrics, (action, new capacity or None when unchanged)
        (100, 16, 4096, {"cache_hit_rate": 0.5}, "grow_cache", 200),
        (3000, 16, 4096, {"cache_hit_rate": 0.5}, "grow_cache", 4096),
        (4096, 16, 4096, {"cache_hit_rate": 0.5}, "grow_cache", None),
        (10, 16, 8, {"cache_hit_rate": 0.5}, "grow_cache", None),
        (100, 16, 4096, {"memory_usage": 0.9}, "shrink_cache", 75),
        (20, 16, 4096, {"memory_usage": 0.9}, "shrink_cache", 16),
        (16, 16, 4096, {"memory_usage": 0.9}, "shrink_cache", None),
        (10, 16, 4096, {"memory_usage": 0.9}, "shrink_cache", None),
        (7, 1, 4096, {"memory_usage": 0.9}, "shrink_cache", 5),
    ]
    for capacity, low, high, metrics, action, new in scenarios:
        if low > high:
            low = high
        cache = c_fake(learner, capacity)
        optimizer = learner.PerformanceOptimizer(cache=cache, min_capacity=low, max_capacity=high)
        got = optimizer.analyze_and_optimize(metrics)
        target = new if new is not None else capacity
        want = (action, capacity, target)
        seen = [(a.get("action"), a.get("old_capacity"), a.get("new_capacity")) for a in got]
        where = f"capacity {capacity}, bounds [{low}, {high}], metrics {metrics}"
        check(seen == [want], f"{where}: actions (action, old, new) {seen}; expected {[want]}")
        calls = cache.calls.value()
        want_calls = [new] if new is not None else []
        check(calls == want_calls, f"{where}: resize() calls {calls}; expected {want_calls}")
    cache = c_fake(learner, 20)
    optimizer = learner.PerformanceOptimizer(cache=cache)
    bounds = (optimizer.min_capacity.value(), optimizer.max_capacity.value())
    shrunk = optimizer.analyze_and_optimize({"memory_usage": 0.9})
    check(
        bounds == (16, 4096) and cache.calls.value() == [16],
        f"PerformanceOptimizer(cache) must default to min_capacity 16 and max_capacity 4096: "
        f"they were {bounds}, and shrinking a capacity of 20 gave {shrunk}",
    )
    cache = c_fake(learner, 4000)
    grown = learner.PerformanceOptimizer(cache=cache).analyze_and_optimize({"cache_hit_rate": 0})
    check(
        cache.calls.value() == [4096],
        f"growing a capacity of 4000 with the default max_capacity (4096) gave {grown}",
    )
    cache = c_fake(learner, 64)
    optimizer = learner.PerformanceOptimizer(cache=cache)
    got = optimizer.analyze_and_optimize({"memory_usage": 0.95, "cache_hit_rate": 0.1})
    seen = [(a.get("action"), a.get("old_capacity"), a.get("new_capacity")) for a in got]
    want = [("shrink_cache", 64, 48), ("alert", None, None)]
    check(
        seen == want and cache.calls.value() == [48],
        f"under memory pressure with a low hit rate: actions {seen}, resize() calls "
        f"{cache.calls.value()}; expected {want} and [48]",
    )
    got = optimizer.analyze_and_optimize({"cache_hit_rate": 0.1})
    seen = [(a.get("action"), a.get("old_capacity"), a.get("new_capacity")) for a in got]
    check(
        seen == [("grow_cache", 48, 96)],
        f"the next call must read the capacity again (48) and grow it: {seen}",
    )


@case(
    "8.8",
    0.25,
    "PerformanceOptimizer must raise ValueError for unknown or non-numeric targets, bad "
    "capacity bounds, and metrics that are not a dict or hold impossible values (before "
    "changing anything); DEFAULT_TARGETS must never change; cache, min_capacity and "
    "max_capacity are kept as attributes",
    rules=("8.8-a", "8.8-b", "8.8-c", "8.8-d", "8.8-f", "8.8-h"),
)
def test_8_8_validation(learner):
    opt = learner.PerformanceOptimizer
    for kwargs in (
        {"targets": {"throughput": 5.0}},
        {"targets": {"latency_p99": "10"}},
        {"targets": {"cache_hit_rate": True}},
        {"min_capacity": 0},
        {"max_capacity": 2.5},
        {"min_capacity": 100, "max_capacity": 50},
        {"min_capacity": True},
    ):
        raises(
            lambda kwargs=kwargs: opt(**kwargs), "ValueError", f"PerformanceOptimizer(**{kwargs})"
        )
    opt(targets={"cache_hit_rate": 0.5, "memory_usage": 0.6})
    defaults = opt.DEFAULT_TARGETS.value()
    check(
        defaults == {"latency_p99": 10.0, "cache_hit_rate": 0.8, "memory_usage": 0.8},
        f"after an optimizer with custom targets, DEFAULT_TARGETS was {defaults}",
    )
    cache = c_fake(learner, 100)
    optimizer = opt(cache=cache, min_capacity=24, max_capacity=640)
    check(
        (optimizer.min_capacity.value(), optimizer.max_capacity.value()) == (24, 640)
        and learner.same(optimizer.cache.live_value(), cache),
        "PerformanceOptimizer(cache=c, min_capacity=24, max_capacity=640) must keep them as "
        "the attributes cache, min_capacity and max_capacity",
    )
    bad_metrics = [
        {"memory_usage": 0.95, "cache_hit_rate": 1.2},
        {"memory_usage": 0.95, "latency_p99": -1.0},
        {"memory_usage": 0.95, "latency_p99": float("nan")},
        {"memory_usage": 0.95, "cache_hit_rate": True},
        {"memory_usage": "high"},
        {"memory_usage": 1.01},
    ]
    for metrics in bad_metrics:
        raises(
            lambda metrics=metrics: optimizer.analyze_and_optimize(metrics),
            "ValueError",
            f"analyze_and_optimize({metrics})",
        )
    raises(lambda: optimizer.analyze_and_optimize([0.5]), "ValueError", "metrics as a list")
    check(cache.calls.value() == [], "a rejected call resized the cache")


@case(
    "8.8",
    0.25,
    "PerformanceOptimizer.analyze_and_optimize() must skip the rules of missing metrics, "
    "ignore other keys, and return [] when nothing fires",
    rules=("8.8-g", "8.8-o", "8.8-p"),
)
def test_8_8_missing_metrics(learner):
    optimizer = learner.PerformanceOptimizer()
    check(optimizer.analyze_and_optimize({}) == [], "for {} it must return []")
    got = optimizer.analyze_and_optimize({"qps": 12345, "cache_hit_rate": 0.9, "note": "x"})
    check(got == [], f"with only a good hit rate and unknown keys it returned {got}")
    got = optimizer.analyze_and_optimize({"cache_hit_rate": 0.5})
    want = [c_action("cache_hit_rate_low", "cache_hit_rate", 0.5, 0.8, "grow_cache")]
    check(got == want, f"a low hit rate without memory_usage: {got}; expected {want}")
