"""Module 8's hidden suite, exercise 8.7: RealTimeAnalytics, a sliding window with live
subscribers. Instructor-only: never released to learners. What several exercises share is in
``_support.py``.
"""

from __future__ import annotations

import math
import random

from _support import c_close, c_tool, settable_clock

from academy.bridge.client import expr
from academy.grading.cases import case, check, in_worker, raises, worker_function

C_SUMMARY_KEYS = {"count", "errors", "error_rate", "throughput", "p50", "p95", "p99"}
C_SNAPSHOT_KEYS = C_SUMMARY_KEYS | {"time", "window_seconds", "tenants", "operations"}


def c_nearest_rank(values, p):
    s = sorted(values)
    return s[math.ceil(p / 100 * len(s)) - 1]


def c_analytics(learner, window=60.0, start=1000.0):
    clock = settable_clock(learner, start)
    return learner.RealTimeAnalytics(window_seconds=window, clock=clock), clock


def c_record_all(learner, analytics, clock, rows):
    """rows: (time, tenant, operation, latency, ok), recorded one after the other."""
    tool = worker_function(
        learner,
        "def c_record_rows(a, clock, rows):\n"
        "    for t, tenant, op, latency, ok in rows:\n"
        "        clock.now = t\n"
        "        a.record(tenant, op, latency, ok=ok)\n",
        "c_record_rows",
    )
    tool(analytics, clock, [list(r) for r in rows])


def c_summary(rows, span):
    n = len(rows)
    latencies = [r[3] for r in rows]
    errors = sum(1 for r in rows if not r[4])
    return {
        "count": n,
        "errors": errors,
        "error_rate": errors / n if n else 0.0,
        "throughput": n / span if span > 0 else 0.0,
        "p50": c_nearest_rank(latencies, 50) if n else 0.0,
        "p95": c_nearest_rank(latencies, 95) if n else 0.0,
        "p99": c_nearest_rank(latencies, 99) if n else 0.0,
    }


def c_summary_matches(got, want):
    return (
        isinstance(got, dict)
        and set(got) == C_SUMMARY_KEYS
        and got["count"] == want["count"]
        and got["errors"] == want["errors"]
        and all(c_close(got[k], want[k]) for k in ("error_rate", "throughput", "p50", "p95", "p99"))
    )


# =========================================================================== exercise 8.7
@case(
    "8.7",
    0.25,
    "RealTimeAnalytics must raise ValueError for a window_seconds that is not a finite number "
    "above 0, and record() for an empty or non-str tenant or operation, a latency that is not "
    "a finite number >= 0, or an ok that is not a bool, recording nothing; __init__ reads the "
    "clock once, record() and snapshot() once each",
    rules=("8.7-a", "8.7-b", "8.7-c", "8.7-d", "8.7-e", "8.7-h"),
)
def test_8_7_validation(learner):
    clock = settable_clock(learner, 5.0)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "60", None):
        raises(
            lambda bad=bad: learner.RealTimeAnalytics(window_seconds=bad, clock=clock),
            "ValueError",
            f"window_seconds={bad!r}",
        )
    analytics = learner.RealTimeAnalytics(window_seconds=30, clock=clock)
    check(
        analytics.window_seconds.value() == 30.0 and analytics.started.value() == 5.0,
        "window_seconds must be kept as a float and started must be clock() at creation",
    )
    analytics.record("t1", "get", 2)
    bad_calls = [
        ("", "get", 1.0, True),
        (7, "get", 1.0, True),
        ("t1", "", 1.0, True),
        ("t1", None, 1.0, True),
        ("t1", "get", -0.5, True),
        ("t1", "get", float("nan"), True),
        ("t1", "get", float("inf"), True),
        ("t1", "get", True, True),
        ("t1", "get", "3", True),
        ("t1", "get", 1.0, "yes"),
        ("t1", "get", 1.0, 1),
    ]
    for args in bad_calls:
        raises(
            lambda args=args: analytics.record(args[0], args[1], args[2], ok=args[3]),
            "ValueError",
            f"record{args!r}",
        )
    snap = analytics.snapshot()
    check(
        isinstance(snap, dict) and snap.get("count") == 1 and len(analytics) == 1,
        f"after one good record and rejected ones, count was "
        f"{snap.get('count') if isinstance(snap, dict) else snap}",
    )
    check(
        isinstance(snap.get("p50"), float) and snap["p50"] == 2.0,
        f"a latency recorded as int 2 must come back as the float 2.0, got {snap.get('p50')!r}",
    )
    check(
        analytics.callback_errors.value() == 0,
        f"callback_errors must start at 0; it was {analytics.callback_errors.value()!r}",
    )
    default = learner.RealTimeAnalytics(clock=clock)
    small = learner.RealTimeAnalytics(window_seconds=0.5, clock=clock)
    check(
        default.window_seconds.value() == 60.0 and small.window_seconds.value() == 0.5,
        f"window_seconds must default to 60.0 and accept 0.5 (above 0): they were "
        f"{default.window_seconds.value()!r} and {small.window_seconds.value()!r}",
    )
    for latency in (0, 0.0):
        default.record("t1", "get", latency)
    check(
        default.snapshot().get("count") == 2,
        "record() with latency_ms 0 and 0.0 (not negative) must record both; count was "
        f"{default.snapshot().get('count')}",
    )
    counting = learner.make(
        expr(
            "type('CountingClock', (), {'__module__': 'grader', 'calls': 0, 'now': 7.0,"
            " '__call__': lambda self: [setattr(self, 'calls', self.calls + 1),"
            " self.now][1]})()"
        )
    )
    counted = learner.RealTimeAnalytics(window_seconds=10, clock=counting)
    after_init = counting.calls.value()
    counting.now = 8.0
    counted.record("t1", "get", 1.5)
    after_record = counting.calls.value()
    counting.now = 9.0
    shot = counted.snapshot()
    after_snapshot = counting.calls.value()
    check(
        (after_init, after_record, after_snapshot) == (1, 2, 3),
        "the clock was read "
        f"{after_init} times by __init__, {after_record - after_init} by one record() (no "
        f"subscribers) and {after_snapshot - after_record} by one snapshot(); expected once each",
    )
    check(
        isinstance(shot, dict) and shot.get("time") == 9.0 and counted.started.value() == 7.0,
        "started must be the clock's time at creation and a snapshot's time the clock's time "
        f"when it is taken: started {counted.started.value()!r}, snapshot time "
        f"{shot.get('time') if isinstance(shot, dict) else shot!r}",
    )


@case(
    "8.7",
    0.5,
    "RealTimeAnalytics.snapshot() must give nearest-rank p50/p95/p99 (index ceil(p/100*n)-1 of "
    "the sorted latencies in the window), and 0.0 with no event",
    rules=("8.7-l",),
)
def test_8_7_percentiles(learner):
    rng = random.Random(87)
    for latencies in (
        [0.5 * i for i in range(1, 21)],
        [3.0, 9.0, 1.0, 7.0, 5.0, 2.0, 8.0],
        [round(rng.uniform(0.1, 80.0), 3) for _ in range(200)],
        [4.25],
    ):
        shuffled = latencies[:]
        rng.shuffle(shuffled)
        analytics, clock = c_analytics(learner)
        empty = analytics.snapshot()
        check(
            isinstance(empty, dict)
            and (empty.get("count"), empty.get("p50"), empty.get("p95"), empty.get("p99"))
            == (0, 0.0, 0.0, 0.0),
            f"with no event, snapshot() gave {empty}",
        )
        rows = [(1000.0 + 0.01 * i, "t", "get", d, True) for i, d in enumerate(shuffled)]
        c_record_all(learner, analytics, clock, rows)
        snap = analytics.snapshot()
        want = {p: c_nearest_rank(latencies, int(p[1:])) for p in ("p50", "p95", "p99")}
        seen = {p: snap.get(p) for p in want} if isinstance(snap, dict) else snap
        check(seen == want, f"for {len(latencies)} latencies expected {want}, got {seen}")


@case(
    "8.7",
    0.5,
    "RealTimeAnalytics must count only the events with now - t < window_seconds: an event "
    "exactly window_seconds old has left the window",
    rules=("8.7-f",),
)
def test_8_7_window(learner):
    analytics, clock = c_analytics(learner, window=5.0, start=990.0)
    rows = [(1000.0 + 0.5 * i, "t", "get", float(i + 1), True) for i in range(11)]
    c_record_all(learner, analytics, clock, rows)
    for now in (1005.0, 1005.25, 1007.5, 1009.5, 1010.0, 1020.0):
        clock.now = now
        snap = analytics.snapshot()
        inside = [r for r in rows if now - r[0] < 5.0]
        got = (snap.get("count"), snap.get("p50"), snap.get("p99"))
        want = c_summary(inside, 5.0)
        check(
            got == (want["count"], want["p50"], want["p99"]),
            f"events every 0.5 s from t=1000 to t=1005, window 5 s: at now={now} (count, p50, "
            f"p99) was {got}; expected {(want['count'], want['p50'], want['p99'])}",
        )


@case(
    "8.7",
    0.5,
    "RealTimeAnalytics throughput must be count / min(window_seconds, now - started), overall "
    "and per tenant, and 0.0 when that span is not above 0",
    rules=("8.7-k", "8.7-m"),
)
def test_8_7_throughput(learner):
    analytics, clock = c_analytics(learner, window=60.0, start=1000.0)
    c_record_all(learner, analytics, clock, [(1000.0, "a", "get", 1.0, True)])
    snap = analytics.snapshot()
    check(
        snap.get("throughput") == 0.0,
        f"at the creation time (span 0) throughput must be 0.0, got {snap.get('throughput')}",
    )
    rows = [(1000.0 + 0.25 * i, "a" if i % 3 else "b", "get", 1.0, True) for i in range(1, 17)]
    c_record_all(learner, analytics, clock, rows)
    all_rows = [(1000.0, "a", "get", 1.0, True)] + rows
    for now in (1004.0, 1010.0, 1050.0, 1062.0, 1063.5):
        clock.now = now
        snap = analytics.snapshot()
        inside = [r for r in all_rows if now - r[0] < 60.0]
        span = min(60.0, now - 1000.0)
        want = c_summary(inside, span)["throughput"]
        got = snap.get("throughput")
        check(
            c_close(got, want),
            f"created at t=1000 with a 60 s window, {len(inside)} events in the window at "
            f"now={now}: throughput {got}; expected {want} ({len(inside)} / {span})",
        )
        for tenant in ("a", "b"):
            mine = [r for r in inside if r[1] == tenant]
            want_t = c_summary(mine, span)["throughput"]
            got_t = snap.get("tenants", {}).get(tenant, {}).get("throughput", 0.0)
            check(
                c_close(got_t, want_t),
                f"at now={now}, tenant {tenant!r} throughput {got_t}; expected {want_t}",
            )
    analytics, clock = c_analytics(learner, window=10.0, start=0.0)
    c_record_all(
        learner,
        analytics,
        clock,
        [(1.0, "a", "get", 5.0, True), (2.0, "a", "get", 1.0, False), (3.0, "a", "get", 3.0, True)],
    )
    seen = []
    for now in (4.0, 11.0):
        clock.now = now
        snap = analytics.snapshot()
        seen.append((snap.get("count"), snap.get("throughput")))
    check(
        seen == [(3, 0.75), (2, 0.2)],
        "the notebook's example (window 10, created at t = 0, events at 1, 2, 3): (count, "
        f"throughput) at now = 4 and 11 were {seen}; expected [(3, 0.75), (2, 0.2)]",
    )
    analytics, clock = c_analytics(learner, window=60.0, start=2.0)
    c_record_all(learner, analytics, clock, [(2.25, "a", "get", 1.0, True)])
    clock.now = 2.5
    got = analytics.snapshot().get("throughput")
    check(
        got == 2.0,
        f"created at t = 2, one event, snapshot at 2.5 (span 0.5 s): throughput {got}; "
        "expected 2.0 (1 / 0.5)",
    )
    clock.now = 1.5
    snap = analytics.snapshot()
    got = (snap.get("throughput"), snap.get("tenants", {}).get("a", {}).get("throughput"))
    check(
        got == (0.0, 0.0),
        f"a clock moved back before started (span -0.5 s) must give throughput 0.0 overall "
        f"and per tenant: got {got}",
    )


@case(
    "8.7",
    0.5,
    "RealTimeAnalytics.snapshot() must have exactly the documented keys, count errors and "
    "error_rate, and summarise each tenant with events in the window (count, errors, "
    "error_rate, throughput, p50, p95, p99) and count operations",
    rules=("8.7-h", "8.7-i", "8.7-j", "8.7-m", "8.7-n"),
)
def test_8_7_tenants(learner):
    empty, _clock = c_analytics(learner)
    snap = empty.snapshot()
    got = (snap.get("count"), snap.get("errors"), snap.get("error_rate"))
    check(
        got == (0, 0, 0.0),
        f"with no event, (count, errors, error_rate) were {got}; expected (0, 0, 0.0)",
    )
    rng = random.Random(870)
    analytics, clock = c_analytics(learner, window=30.0, start=1000.0)
    rows = [(1001.0, "gone", "get", 50.0, False)]
    for i in range(120):
        tenant = rng.choice(["acme_corp", "globex", "initech"])
        op = rng.choice(["get", "get", "set", "delete"])
        ok = rng.random() > (0.3 if tenant == "globex" else 0.05)
        rows.append((1035.0 + 0.1 * i, tenant, op, round(rng.uniform(0.5, 40.0), 2), ok))
    c_record_all(learner, analytics, clock, rows)
    clock.now = 1050.0
    snap = analytics.snapshot()
    check(
        isinstance(snap, dict) and set(snap) == C_SNAPSHOT_KEYS,
        f"snapshot() keys were {sorted(snap) if isinstance(snap, dict) else snap}; expected "
        f"{sorted(C_SNAPSHOT_KEYS)}",
    )
    inside = [r for r in rows if 1050.0 - r[0] < 30.0]
    want = c_summary(inside, 30.0)
    overall = {k: snap[k] for k in sorted(C_SUMMARY_KEYS)}
    check(c_summary_matches(overall, want), f"overall: got {overall}; expected {want}")
    check(
        snap["time"] == 1050.0 and snap["window_seconds"] == 30.0,
        f"time and window_seconds were {snap['time']}, {snap['window_seconds']}",
    )
    tenants = snap["tenants"]
    check(
        isinstance(tenants, dict) and sorted(tenants) == ["acme_corp", "globex", "initech"],
        f"tenants with events in the window are acme_corp, globex and initech; got "
        f"{sorted(tenants) if isinstance(tenants, dict) else tenants}",
    )
    for tenant in sorted(tenants):
        want_t = c_summary([r for r in inside if r[1] == tenant], 30.0)
        check(
            c_summary_matches(tenants[tenant], want_t),
            f"tenant {tenant!r}: got {tenants[tenant]}; expected {want_t}",
        )
    ops = {}
    for r in inside:
        ops[r[2]] = ops.get(r[2], 0) + 1
    check(snap["operations"] == ops, f"operations was {snap['operations']}; expected {ops}")


@case(
    "8.7",
    0.5,
    "RealTimeAnalytics.subscribe(callback, every) must return ids 1, 2, ..., call due callbacks "
    "in subscription order with a fresh snapshot after every every-th record, survive and count "
    "a callback's exception, and stop after unsubscribe(); every is counted from the "
    "subscription",
    rules=("8.7-o", "8.7-p", "8.7-q", "8.7-r", "8.7-s", "8.7-t"),
)
def test_8_7_subscribe(learner):
    analytics, clock = c_analytics(learner, window=60.0, start=1000.0)
    log = learner.keep([])
    recorder = c_tool(learner, "c_recorder")
    first = analytics.subscribe(recorder(log, "every3"), every=3)
    second = analytics.subscribe(recorder(log, "broken", True))
    third = analytics.subscribe(recorder(log, "each"))
    check((first, second, third) == (1, 2, 3), f"subscription ids were {first, second, third}")
    rows = [(1001.0 + i, "t", "get", 1.0, True) for i in range(6)]
    c_record_all(learner, analytics, clock, rows)
    got = [row[:3] for row in learner.builtin("list", log)]
    want = []
    for i in range(1, 7):
        if i % 3 == 0:
            want.append(["every3", i, 1000.0 + i])
        want.append(["broken", i, 1000.0 + i])
        want.append(["each", i, 1000.0 + i])
    check(got == want, f"callbacks saw (name, count, time) {got}; expected {want}")
    keys = {tuple(row[3]) for row in learner.builtin("list", log)}
    check(keys == {tuple(sorted(C_SNAPSHOT_KEYS))}, "callbacks must receive a full snapshot()")
    check(
        analytics.callback_errors.value() == 6,
        f"callback_errors was {analytics.callback_errors.value()} after 6 failing callbacks",
    )
    check(
        (analytics.unsubscribe(2), analytics.unsubscribe(2), analytics.unsubscribe(99))
        == (True, False, False),
        "unsubscribe() must return True for a subscribed id, then False",
    )
    in_worker(learner, "lambda log: log.clear()", log)
    c_record_all(learner, analytics, clock, [(1010.0, "t", "get", 1.0, True)])
    got = [row[:2] for row in learner.builtin("list", log)]
    check(got == [["each", 7]], f"after unsubscribe(2), one record reached {got}")
    check(analytics.callback_errors.value() == 6, "an unsubscribed callback was still called")
    late = analytics.subscribe(recorder(log, "late2"), every=2)
    check(late == 4, f"the fourth subscription (after unsubscribe(2)) got the id {late!r}, not 4")
    in_worker(learner, "lambda log: log.clear()", log)
    rows = [(1011.0 + i, "t", "get", 1.0, True) for i in range(3)]
    c_record_all(learner, analytics, clock, rows)
    got = [row[:2] for row in learner.builtin("list", log) if row[0] == "late2"]
    check(
        got == [["late2", 9]],
        "a subscription with every=2 made after 7 records must be called after the 2nd record "
        f"that follows it (the 9th in all), not after every 2nd record in all; it saw {got}",
    )
    for bad in (0, -1, True, 1.5):
        raises(
            lambda bad=bad: analytics.subscribe(recorder(log, "x"), every=bad),
            "ValueError",
            f"subscribe(callback, every={bad!r})",
        )
    raises(lambda: analytics.subscribe("not callable"), "ValueError", "subscribe('not callable')")


@case(
    "8.7",
    0.25,
    "RealTimeAnalytics.record() must discard the events that left the window, so len() stays "
    "one window's worth",
    rules=("8.7-e", "8.7-g"),
)
def test_8_7_discard(learner):
    analytics, clock = c_analytics(learner, window=10.0, start=0.0)
    rows = [(0.125 * i, "t", "get", 1.0, True) for i in range(240)]
    c_record_all(learner, analytics, clock, rows)
    held = len(analytics)
    check(held == 80, f"after 30 s of events in a 10 s window, len() was {held}; expected 80")
    c_record_all(learner, analytics, clock, [(500.0, "t", "get", 1.0, True)])
    check(len(analytics) == 1, f"after a record 470 s later, len() was {len(analytics)}")
