"""Module 8's hidden suite, exercise 8.5: A health monitor with failover. Instructor-only: never
released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import random

from _support import B_NODES, a_tool, b_tool, settable_clock

from academy.bridge.client import expr
from academy.grading.cases import case, check, confirm, in_worker, read_back, worker_function

# Exercise 8.5's monitor watches this test double, not a real service: the part of
# DistributedContextService that the notebook says a monitor uses (nodes that answer ping()
# or not, crashed_at, marked_down, mark_down, mark_up, resync_node), plus the notebook's given
# controls. It replicates nothing: resync_node returns the count the grader set, and every
# failover switch is logged with the clock's time, so each check reads plain data.
B_DOUBLE = r'''
class GraderNode:
    """A node as the notebook's SimulatedNode: ping() raises ConnectionError while it is down;
    every request is counted, answered or not."""

    def __init__(self, node_id):
        self.node_id = node_id
        self.data = {}
        self.requests = 0
        self._up = True

    def crash(self):
        self._up = False

    def restart(self):
        self._up = True

    @property
    def is_up(self):
        return self._up

    def ping(self):
        self.requests += 1
        if not self._up:
            raise ConnectionError(f"node {self.node_id} does not answer")
        return True


class GraderCluster:
    """What a HealthMonitor sees of a service; it stores nothing and replicates nothing."""

    def __init__(self, node_ids, clock):
        self.nodes = {node_id: GraderNode(node_id) for node_id in node_ids}
        self.replicas = 3
        self.clock = clock
        self.marked_down = set()
        self.crashed_at = {}
        self.resync_counts = {}  # node id -> what resync_node returns for it
        self.calls = []  # [switch, node id, clock()] for mark_down, mark_up and resync_node

    def fail_node(self, node_id):
        node = self.nodes[node_id]
        if node.is_up:
            node.crash()
            self.crashed_at[node_id] = self.clock()

    def recover_node(self, node_id):
        self.nodes[node_id].restart()
        self.crashed_at.pop(node_id, None)

    def live_nodes(self):
        return sorted(n for n, node in self.nodes.items() if node.is_up)

    def mark_down(self, node_id):
        if node_id not in self.nodes:
            raise KeyError(node_id)
        self.calls.append(["mark_down", node_id, self.clock()])
        self.marked_down.add(node_id)

    def mark_up(self, node_id):
        if node_id not in self.nodes:
            raise KeyError(node_id)
        self.calls.append(["mark_up", node_id, self.clock()])
        self.marked_down.discard(node_id)

    def resync_node(self, node_id):
        self.nodes[node_id].ping()
        self.calls.append(["resync_node", node_id, self.clock()])
        return self.resync_counts.get(node_id, 0)

    def send(self, operations):
        """What operations would send: one request per operation to every node contacted."""
        for node_id, node in self.nodes.items():
            if node_id in self.marked_down:
                continue
            for _ in range(operations):
                try:
                    node.ping()
                except ConnectionError:
                    pass


def b_failover_chaos(Monitor, service, clock, ticks, interval, events_at):
    """Checks every interval, node events in between; what each check saw, and the events."""
    start = clock.now
    monitor = Monitor(service, clock=clock)
    rounds = []
    for tick in range(1, ticks + 1):
        for when, kind, node_id in events_at.get(str(tick), []):
            clock.now = when
            if kind == "fail":
                service.fail_node(node_id)
            else:
                service.recover_node(node_id)
        clock.now = start + tick * interval
        found = monitor.check()
        rounds.append({"now": clock.now, "found": list(found),
                       "marked": sorted(service.marked_down), "status": monitor.status()})
        service.send(3)
    return {"rounds": rounds, "events": [dict(e) for e in monitor.events]}
'''


def b_double(learner, nodes, clock):
    return worker_function(learner, B_DOUBLE, "GraderCluster")(list(nodes), clock)


def b_monitored(learner, nodes, timeout=0.25, start=1000.0):
    """A settable clock, the grader's test double of a service, and the learner's monitor."""
    clock = settable_clock(learner, start)
    service = b_double(learner, nodes, clock)
    monitor = learner.HealthMonitor(service, heartbeat_timeout=timeout, clock=clock)
    return clock, service, monitor


def b_marked(learner, service):
    return learner.builtin("sorted", service.marked_down.value())


def b_calls(service, since=0):
    """The failover switches the monitor pulled on the double, as (switch, node, time)."""
    return [tuple(c) for c in service.calls.value()[since:]]


# =========================================================================== exercise 8.5
@case(
    "8.5",
    0.5,
    "HealthMonitor.check() must declare a node down at the first check where "
    "now - last_heartbeat >= heartbeat_timeout (not before, and >= not >), report it once, "
    "in sorted order, and status() must show it; check() reads the clock once",
    rules=("8.5-a", "8.5-b", "8.5-c", "8.5-f", "8.5-g", "8.5-h"),
)
def test_8_5_detection(learner):
    clock = settable_clock(learner)
    service = b_double(learner, ["n1", "n2", "n3"], clock)
    counting = learner.make(
        expr(
            "type('CountingClock', (), {'__module__': 'grader', 'calls': 0, 'base': None,"
            " '__call__': lambda self: [setattr(self, 'calls', self.calls + 1),"
            " self.base()][1]})()"
        )
    )
    counting.base = clock
    monitor = learner.HealthMonitor(service, heartbeat_timeout=0.25, clock=counting)
    seen = [monitor.check()]
    clock.now = 1000.0625
    service.fail_node("n2")
    clock.now = 1000.125
    seen.append(monitor.check())
    status_mid = monitor.status()
    clock.now = 1000.25
    seen.append(monitor.check())
    seen.append(monitor.check())
    clock.now = 1000.5
    seen.append(monitor.check())
    calls = counting.calls.value()
    check(
        calls == 6,
        f"the monitor read its clock {calls} times in its creation and 5 calls of check(); "
        "check() must call self.clock() exactly once (and __init__ once)",
    )
    events = monitor.events.value()
    check(
        len(events) == 1,
        f"a node already down that still does not answer must stay down without a new event; "
        f"after 3 more checks there were {len(events)} events",
    )
    check(
        status_mid == {"n1": "up", "n2": "up", "n3": "up"},
        f"125 ms after the last heartbeat (timeout 250 ms) status() was {status_mid}",
    )
    check(
        seen == [[], [], ["n2"], [], []],
        "with heartbeat_timeout 0.25: checks at t = 0, 0.125, 0.25, 0.25 again and 0.5 (n2 "
        f"crashed at 0.0625, last heartbeat at 0) returned {seen}; expected "
        "[[], [], ['n2'], [], []] (silent for exactly the timeout counts as down)",
    )
    final = monitor.status()
    check(final == {"n1": "up", "n2": "down", "n3": "up"}, f"status() afterwards was {final}")
    construct = a_tool(learner, "a_construct")
    for timeout, want in [
        (0.0625, "ok"),
        (0, "ValueError"),
        (0.0, "ValueError"),
        (-0.25, "ValueError"),
        ("0.1", "ValueError"),
        (None, "ValueError"),
    ]:
        got = construct(
            learner.HealthMonitor, [service], {"heartbeat_timeout": timeout, "clock": clock}
        )
        check(
            got == want,
            f"HealthMonitor with heartbeat_timeout={timeout!r}: "
            f"{'accepted' if got == 'ok' else got}; expected "
            f"{'it to be accepted' if want == 'ok' else 'ValueError'} (a number > 0)",
        )
    # Nodes that crash before the monitor exists count from its creation; several at once.
    clock, service, monitor = b_monitored(learner, ["n3", "n1", "n2", "n4"])
    clock.now = 1000.125
    service.fail_node("n4")
    service.fail_node("n1")
    check(monitor.check() == [], "a check 125 ms after creation must not declare anything down")
    clock.now = 1000.25
    both = monitor.check()
    check(
        both == ["n1", "n4"],
        "two nodes silent since the monitor was created (at t = 0; timeout 250 ms) must be "
        f"declared down at t = 0.25, as ['n1', 'n4']; check() returned {both}",
    )
    order = [(e.get("node_id"), e.get("type")) for e in monitor.events.value()]
    check(
        order == [("n1", "failover"), ("n4", "failover")],
        f"check() must visit the nodes in sorted order: the events were {order}",
    )


@case(
    "8.5",
    0.5,
    "On detection, check() must fail the node over (service.mark_down) so operations stop "
    "contacting it, and record a failover event with crashed_at, last_heartbeat, detected_at "
    "and failover_ms = round((detected_at - crashed_at) * 1000, 3)",
    rules=("8.5-a", "8.5-f", "8.5-h"),
    critical=True,
)
def test_8_5_failover(learner):
    clock, service, monitor = b_monitored(learner, B_NODES)
    monitor.check()
    clock.now = 1000.0625
    service.fail_node("n2")
    clock.now = 1000.25
    found = monitor.check()
    check(
        found == ["n2"],
        f"n2 crashed at t = 0.0625 s (timeout 0.25 s): the check at t = 0.25 s returned {found}",
    )
    marked = b_marked(learner, service)
    check(marked == ["n2"], f"after n2 was declared down, service.marked_down was {marked}")
    events = monitor.events.value()
    want = {
        "type": "failover",
        "node_id": "n2",
        "crashed_at": 1000.0625,
        "last_heartbeat": 1000.0,
        "detected_at": 1000.25,
        "failover_ms": 187.5,
    }
    check(
        events == [want],
        f"n2 crashed at t = 0.0625 s and was detected at t = 0.25 s; events were {events}, "
        f"expected [{want}]",
    )
    before = b_tool(learner, "b_requests")(service)["n2"]
    service.send(15)
    after = b_tool(learner, "b_requests")(service)["n2"]
    check(
        after == before,
        f"after the failover of n2, 15 operations on keys it replicates still sent it "
        f"{after - before} requests: the service must stop using a failed-over node",
    )
    # A node that crashed without a recorded crash time: measured from its last heartbeat.
    clock.now = 1000.3125
    in_worker(learner, "lambda s: s.nodes['n4'].crash()", service)
    clock.now = 1000.4375
    found = monitor.check()
    clock.now = 1000.5
    found_later = monitor.check()
    events = monitor.events.value()
    last = events[-1] if events else {}
    check(
        found == [] and found_later == ["n4"] and last.get("failover_ms") == 250.0,
        "n4 stopped answering after its heartbeat at t = 0.25 s, with no crash time in "
        f"service.crashed_at: checks at 0.4375 and 0.5 returned {found} and {found_later}, and "
        f"the last event was {last}; expected detection at 0.5 and failover_ms 250.0 "
        "(measured from the last heartbeat)",
    )
    # Times near 0, and a crash time whose failover_ms has more than three decimals.
    clock, service, monitor = b_monitored(learner, ["n1", "n2"], start=0.0)
    clock.now = 0.125
    monitor.check()
    crashed = 0.18798828125
    clock.now = crashed
    service.fail_node("n1")
    clock.now = 0.5
    found = monitor.check()
    events = monitor.events.value()
    want = {
        "type": "failover",
        "node_id": "n1",
        "crashed_at": crashed,
        "last_heartbeat": 0.125,
        "detected_at": 0.5,
        "failover_ms": round((0.5 - crashed) * 1000, 3),
    }
    check(
        found == ["n1"] and events == [want],
        f"monitor created at t = 0, heartbeat at 0.125, n1 crashed at {crashed}, check at 0.5 "
        f"(silent 0.375 s, timeout 0.25 s): check() returned {found} and the events were "
        f"{events}; expected ['n1'] and [{want}] (now - last_heartbeat, and failover_ms = "
        "round((now - crashed_at) * 1000, 3))",
    )


@case(
    "8.5",
    0.5,
    "A node that answers again must be declared up at the next check: service.resync_node() "
    "first, then service.mark_up(), status 'up', and a recovered event with the copies made; "
    "status() is a new dict every time",
    rules=("8.5-c", "8.5-d", "8.5-e", "8.5-g", "8.5-i", "8.5-j"),
    critical=True,
)
def test_8_5_recovery(learner):
    clock, service, monitor = b_monitored(learner, B_NODES)
    monitor.check()
    clock.now = 1000.0625
    service.fail_node("n3")
    clock.now = 1000.25
    monitor.check()
    missed = 6  # writes n3 missed while it was down: what the double's resync_node copies
    service.resync_counts = {"n3": missed}
    service.recover_node("n3")
    clock.now = 1000.3125
    switches = len(b_calls(service))
    found = monitor.check()
    pulled = b_calls(service, switches)
    status = monitor.status()
    marked = b_marked(learner, service)
    check(found == [], f"the check that saw n3 again returned {found}; a recovery is not listed")
    check(status["n3"] == "up", f"after n3 answered again, its status was {status['n3']!r}")
    check(
        marked == [], f"after n3 recovered, service.marked_down was {marked}: not back in service"
    )
    events = monitor.events.value()
    last = events[-1] if events else None
    want = {"type": "recovered", "node_id": "n3", "at": 1000.3125, "copies": missed}
    check(last == want, f"the last event was {last}; expected {want}")
    resynced = ("resync_node", "n3", 1000.3125) in b_calls(service)
    stale = 0 if resynced else missed
    check(
        resynced,
        f"after its recovery, n3 still lacked {stale} of the {missed} writes it "
        "missed: it must be resynchronised (service.resync_node) before it serves again",
    )
    check(
        pulled == [("resync_node", "n3", 1000.3125), ("mark_up", "n3", 1000.3125)],
        f"the check that saw n3 again called {pulled}; expected service.resync_node('n3') "
        "first, then service.mark_up('n3'): a node is back in service only once it is in sync",
    )
    beats = monitor.last_heartbeat.value()
    check(
        beats.get("n3") == 1000.3125 and beats.get("n1") == 1000.3125,
        f"after a check at t = 0.3125 s, last_heartbeat was {beats}: every node that answers "
        "gets last_heartbeat = now",
    )
    first, second = monitor.status.live(), monitor.status.live()
    check(
        not learner.same(first, second),
        "status() returned the same dict twice: it must return a new dict every time",
    )
    first.update({"n1": "down"})
    confirm(read_back(learner, first).get("n1") == "down", "changing the dict status() returned")
    check(
        monitor.status().get("n1") == "up",
        "changing the dict status() returned changed what the monitor says about n1",
    )
    # A crash shorter than the timeout is never reported.
    clock.now = 1000.375
    service.fail_node("n5")
    clock.now = 1000.4375
    quiet = monitor.check()
    service.recover_node("n5")
    clock.now = 1000.5
    quiet_too = monitor.check()
    count = len(monitor.events.value())
    check(
        quiet == [] and quiet_too == [] and count == 2 and monitor.status()["n5"] == "up",
        "a node silent for 62.5 ms (timeout 250 ms) that answered again must stay 'up' with "
        f"no event; check() returned {quiet} and {quiet_too}, and there were {count} events",
    )


def b_failover_schedule(seed: int, ticks: int, interval: float, start: float):
    """Crashes between two checks (u in [0.1, 0.9] of the interval): long ones (6-14 checks)
    that must be detected, and blips that end before the next check and must not be."""
    rng = random.Random(seed)
    busy_until = {n: 0 for n in B_NODES}
    events_at: dict = {}
    long_crashes = []
    tick = 2
    while tick < ticks - 20:
        free = [n for n in B_NODES if busy_until[n] < tick]
        down_now = sum(1 for n in B_NODES if busy_until[n] >= tick)
        if free and down_now < 2:
            node = rng.choice(free)
            when = start + (tick + rng.uniform(0.1, 0.5)) * interval
            if rng.random() < 0.7:
                length = rng.randint(6, 14)
                back = start + (tick + length + rng.uniform(0.6, 0.9)) * interval
                events_at.setdefault(str(tick + 1), []).append([when, "fail", node])
                events_at.setdefault(str(tick + length + 1), []).append([back, "recover", node])
                long_crashes.append((node, tick, when, tick + length + 1))
                busy_until[node] = tick + length + 4
            else:
                back = start + (tick + rng.uniform(0.6, 0.9)) * interval
                events_at.setdefault(str(tick + 1), []).append([when, "fail", node])
                events_at[str(tick + 1)].append([back, "recover", node])
                busy_until[node] = tick + 2
        tick += rng.randint(1, 4)
    for moments in events_at.values():
        moments.sort()
    return events_at, long_crashes


@case(
    "8.5",
    0.5,
    "With the default heartbeat_timeout (0.1 s) and a check every 50 ms, every failover must "
    "take less than 150 ms (the seed's bound), each crash must be failed over once and each "
    "recovery brought back at the next check, under random crashes",
    rules=("8.5-e", "8.5-f", "8.5-h", "8.5-k"),
)
def test_8_5_chaos(learner):
    start, interval, ticks = 1024.0, 0.05, 160
    events_at, long_crashes = b_failover_schedule(58, ticks, interval, start)
    clock = settable_clock(learner, start)
    service = b_double(learner, B_NODES, clock)
    result = worker_function(learner, B_DOUBLE, "b_failover_chaos")(
        learner.HealthMonitor, service, clock, ticks, interval, events_at
    )
    rounds, events = result["rounds"], result["events"]
    failovers = [e for e in events if e.get("type") == "failover"]
    recoveries = [e for e in events if e.get("type") == "recovered"]
    check(
        len(failovers) == len(long_crashes) and len(recoveries) == len(long_crashes),
        f"{len(long_crashes)} nodes crashed for 300 ms or more (and crashes shorter than one "
        f"check interval happened too); the monitor recorded {len(failovers)} failovers and "
        f"{len(recoveries)} recoveries",
    )
    times = [e["failover_ms"] for e in failovers]
    check(
        all(isinstance(t, (int, float)) and 0 < t < 150 for t in times),
        f"failover times (ms) were {times}: every one must be below 150 ms",
    )
    for (node, tick, when, back_tick), event in zip(long_crashes, failovers, strict=True):
        last_beat = start + tick * interval
        # The first check at least 0.1 s after the last heartbeat; when that silence is 0.1 s
        # up to rounding, either that check or the next one is right.
        first = next(
            k
            for k in range(tick + 1, ticks + 1)
            if (start + k * interval) - last_beat >= 0.1 - 1e-9
        )
        allowed = {first}
        if abs((start + first * interval) - last_beat - 0.1) < 1e-9:
            allowed.add(first + 1)
        detected = [i + 1 for i, r in enumerate(rounds) if node in r["found"] and i + 1 > tick]
        check(
            event.get("node_id") == node and event.get("crashed_at") == when,
            f"failover event {event} does not match the crash of {node} at t = "
            f"{when - start:.4f} s",
        )
        check(
            len(detected) >= 1 and detected[0] in allowed,
            f"{node} crashed at t = {when - start:.4f} s (last heartbeat at "
            f"{last_beat - start:.2f} s) and was first reported by the check at t = "
            f"{(detected[0] * interval) if detected else None} s; expected the check at t = "
            f"{first * interval:.2f} s",
        )
        up_again = rounds[back_tick - 1]
        check(
            up_again["status"].get(node) == "up" and node not in up_again["marked"],
            f"{node} answered again before the check at t = {up_again['now'] - start:.2f} s, "
            f"which left it {up_again['status'].get(node)!r} and marked down = "
            f"{up_again['marked']}",
        )
    for r in rounds:
        downs = sorted(n for n, s in r["status"].items() if s == "down")
        check(
            downs == r["marked"],
            f"at t = {r['now'] - start:.2f} s the monitor said {downs} were down but the service "
            f"had {r['marked']} marked down: failover and status must agree",
        )
