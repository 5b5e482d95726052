"""Module 7's hidden suite, exercise 7.6: Replication, failover and rebalancing. Instructor-only:
never released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

from _support import NODES5, positions

from academy.bridge.client import Remote, expr
from academy.grading.cases import case, check, confirm, raises


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


# =========================================================================== exercise 7.6
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
