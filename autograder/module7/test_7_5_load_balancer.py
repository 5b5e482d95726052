"""Module 7's hidden suite, exercise 7.5: Load balancer and health monitor. Instructor-only: never
released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import secrets

from _support import fake_clock

from academy.bridge.client import expr
from academy.grading.cases import case, check, confirm, raises, read_back

FAKE_CLUSTER = (
    "(lambda NS: NS(nodes={{nid: NS(node_id=nid, is_active=up, "
    "get_health_status=(lambda nid=nid, up=up: {{'node_id': nid, 'is_active': up, 'keys': 3}})) "
    "for nid, up in {pairs}}}))(__import__('types').SimpleNamespace)"
)


def fake_cluster(learner, pairs):
    return learner.make(expr(FAKE_CLUSTER.format(pairs=repr(pairs))))


# =========================================================================== exercise 7.5
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
