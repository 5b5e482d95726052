"""Module 7's hidden suite, exercise 7.4: A consistent hash ring. Instructor-only: never released
to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import bisect
import hashlib

from _support import NODES5, positions

from academy.grading.cases import case, check, in_worker, raises


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


KEYS = [f"user:{i}" for i in range(3000)]


# =========================================================================== exercise 7.4
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
