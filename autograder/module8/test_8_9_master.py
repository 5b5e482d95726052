"""Module 8's hidden suite, exercise 8.9: ContextMaster: everything behind one API. Instructor-
only: never released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import json
import random

import jwt
from _support import c_action, confirmed, run_async, settable_clock, speed_answers_right, timed_call
from cryptography.fernet import Fernet, InvalidToken

from academy.bridge.client import expr
from academy.grading.cases import (
    case,
    check,
    confirm,
    contains,
    in_worker,
    is_a,
    read_back,
    worker_function,
)

D_SECRET = "master-secret-for-the-hidden-tests-of-exercise-8-9-64-bytes-long"

D_TOOLS = r'''
import asyncio


def d_run(master, calls):
    """Run [(method, args, kwargs)] against master in order; describe each outcome."""
    async def go():
        out = []
        for name, args, kwargs in calls:
            try:
                value = await getattr(master, name)(*args, **kwargs)
                out.append({"value": value})
            except Exception as exc:
                out.append({"raised": type(exc).__name__,
                            "mro": [c.__name__ for c in type(exc).__mro__]})
        return out
    return asyncio.run(go())


def d_stored(master, storage_key):
    """What each replica node holds for storage_key: [node id, version, stored value]."""
    rows = []
    for node_id in master.service.replica_nodes(storage_key):
        entry = master.service.nodes[node_id].data.get(storage_key)
        rows.append([node_id, None, None] if entry is None else [node_id, entry[0], entry[1]])
    return rows


def d_audit(master):
    return [[e["actor"], e["action"], e["tenant_id"], e["key"], e["outcome"]]
            for e in master.audit.entries()]
'''

# One timed batch of exercise 8.9, as in 8.4: one bridge call, timed here, whose answers and
# whose encrypted copies on the nodes are checked here. Every value holds a number sent with
# the timed call (``run``), so no answer can be worked out before the clock starts.
D_SPEED = r'''
def d_timed(master, token, rounds, budget, minimum, run):
    """Rounds of (set, strong get, eventual get), stopping after budget seconds once minimum
    rounds ran; JSON text of what the gets returned and of what every node holds."""
    import asyncio
    import json
    import time

    async def go():
        gets = []
        start = time.monotonic()
        for i in range(rounds):
            await master.set(token, "perf", "ctx", f"k{i % 50}", {"i": i, "run": run})
            gets.append(await master.get(token, "perf", "ctx", f"k{(i * 7) % 50}"))
            gets.append(await master.get(token, "perf", "ctx", f"k{(i * 3) % 50}",
                                         consistency="eventual"))
            if i + 1 >= minimum and time.monotonic() - start > budget:
                break
        return gets

    gets = asyncio.run(go())
    stored = {node_id: {key: entry[1] for key, entry in node.data.items()}
              for node_id, node in master.service.nodes.items()}
    return json.dumps([gets, stored], default=repr)
'''
D_SPEED_ROUNDS = 4  # timed batches per ContextMaster, the learner's and the reference's in turn
D_SPEED_CALLS = 100  # rounds of (set, get, get) per batch: the bridge call costs ~1% of it
D_SPEED_MINIMUM = 25
D_SPEED_BUDGET = 0.5
D_SPEED_KEY = Fernet.generate_key().decode()  # the batch's encryption key, known here


def d_speed_problem(raw, rounds, minimum, run):
    """What is wrong with a timed batch of d_timed (None: the gets returned the values set, and
    every node holds each key's newest value, encrypted with D_SPEED_KEY)."""
    try:
        gets, stored = json.loads(raw)
    except (TypeError, ValueError):
        return "the run returned no readable answers"
    if not isinstance(gets, list) or len(gets) % 2 or not minimum <= len(gets) // 2 <= rounds:
        return "the run stopped before its calls were done"
    newest = {}
    for i in range(len(gets) // 2):
        newest[f"k{i % 50}"] = {"i": i, "run": run}
        for offset, (key, consistency) in enumerate(
            ((f"k{(i * 7) % 50}", "strong"), (f"k{(i * 3) % 50}", "eventual"))
        ):
            want, got = newest.get(key), gets[2 * i + offset]
            if got != want:
                return (
                    f"call {3 * i + 2 + offset} of the timed run, a {consistency} get of {key!r} "
                    f"after {i + 1} sets: expected {want!r}, got {str(got)[:200]}"
                )
    if not isinstance(stored, dict) or not stored:
        return "after the timed run, the nodes held nothing"
    fernet = Fernet(D_SPEED_KEY.encode())
    for node_id, held in sorted(stored.items()):
        for key, value in sorted(newest.items()):
            token = held.get(f"perf/ctx/{key}") if isinstance(held, dict) else None
            try:
                back = json.loads(fernet.decrypt(token.encode("ascii")))
            except (AttributeError, InvalidToken, TypeError, ValueError):
                back = None
            if back != value:
                return (
                    f"after the timed run, node {node_id} did not hold the newest value of "
                    f"{key!r}, encrypted with the security manager's key"
                )
    return None


def d_speed(bridge, rounds=D_SPEED_CALLS):
    """(calls per second, None) of bridge's ContextMaster on one timed batch; (0.0, what is
    wrong) when it answered wrongly."""
    tool = worker_function(bridge, D_SPEED, "d_timed")
    clock = settable_clock(bridge, 1_700_000_000.0)
    master = bridge.ContextMaster(D_SECRET, clock=clock)
    # The same manager the constructor makes, with a key this process knows.
    master.security = bridge.SecurityManager(D_SECRET, encryption_key=D_SPEED_KEY, clock=clock)
    master.register_tenant("perf")
    token = master.issue_token("bench", "perf", ["writer"])
    minimum = min(rounds, D_SPEED_MINIMUM)
    run = random.SystemRandom().getrandbits(48)
    seconds, raw = timed_call(tool, master, token, rounds, D_SPEED_BUDGET, minimum, run)
    problem = d_speed_problem(raw, rounds, minimum, run)
    if problem is not None:
        return 0.0, problem
    return 3 * (len(json.loads(raw)[0]) // 2) / seconds, None


def d_tools(learner):
    return {
        name: worker_function(learner, D_TOOLS, name) for name in ("d_run", "d_stored", "d_audit")
    }


def d_master(learner, clock=None, **kwargs):
    clock = clock if clock is not None else settable_clock(learner, 1_700_000_000.0)
    master = learner.ContextMaster(D_SECRET, clock=clock, **kwargs)
    for tenant in ("acme", "globex"):
        master.register_tenant(tenant)
    return master, clock


def d_call(method, *args, **kwargs):
    return [method, list(args), kwargs]


def d_outcome(row):
    return row.get("raised", "ok")


# =========================================================================== exercise 8.9
@case(
    "8.9",
    0.75,
    "ContextMaster.set and get must round-trip values through the service: set "
    "returns {'ok': True, 'version': ...}, get returns the value (or default for a missing "
    "key, which is not cached; a value read from the cluster is), what get returns is a "
    "private copy, of default too, and the cache holds a private copy of what set was given",
    rules=("8.9-g", "8.9-h", "8.9-j", "8.9-l", "8.9-m"),
)
def test_8_9_round_trip(learner):
    tools = d_tools(learner)
    master, _ = d_master(learner)
    writer = master.issue_token("alice", "acme", ["writer"])
    value = {"total": 99.5, "items": [1, 2, 3]}
    rows = tools["d_run"](
        master,
        [
            d_call("set", writer, "acme", "orders", "order.1", value),
            d_call("get", writer, "acme", "orders", "order.1"),
            d_call("get", writer, "acme", "orders", "nothing", default="none"),
            d_call("set", writer, "acme", "orders", "order.1", {"total": 1}),
            d_call("get", writer, "acme", "orders", "order.1", consistency="eventual"),
        ],
    )
    check("value" in rows[0], f"set raised {rows[0].get('raised')}")
    first = rows[0]["value"]
    check(
        isinstance(first, dict)
        and first.get("ok") is True
        and isinstance(first.get("version"), int),
        f"set returned {first!r}",
    )
    check(rows[1] == {"value": value}, f"get after set returned {rows[1]!r}")
    check(rows[2] == {"value": "none"}, f"get of a missing key returned {rows[2]!r}")
    check(rows[4] == {"value": {"total": 1}}, f"get after a second set returned {rows[4]!r}")
    returned, changed = in_worker(
        learner,
        "lambda m, t: (lambda v: [v.__setitem__('total', -5), "
        "[v, __import__('asyncio').run(m.get(t, 'acme', 'orders', 'order.1'))]][-1])"
        "(__import__('asyncio').run(m.get(t, 'acme', 'orders', 'order.1')))",
        master,
        writer,
    )
    confirmed(returned == {"total": -5}, "the value get returned")
    check(changed == {"total": 1}, f"changing a returned value changed what is stored: {changed}")
    fallback = learner.keep([1, 2])
    same = in_worker(
        learner,
        "lambda m, t, d: __import__('asyncio').run(m.get(t, 'acme', 'orders', 'absent', "
        "default=d)) is d",
        master,
        writer,
        fallback,
    )
    check(same is False, "get returned the default object itself instead of a private copy")
    cache = master.cache.value()
    missing = master.storage_key("acme", "orders", "nothing")
    check(
        contains(learner, cache, missing) is False,
        "a get of a missing key put its default into the cache; a default is never cached",
    )
    stored = master.storage_key("acme", "orders", "order.1")
    cache.invalidate(stored)
    again = tools["d_run"](master, [d_call("get", writer, "acme", "orders", "order.1")])
    held = contains(learner, cache, stored)
    check(
        again == [{"value": {"total": 1}}] and held is True,
        "a get that missed the cache must read the cluster and put the decrypted value in the "
        f"cache: it returned {again[0]!r}, and the cache "
        f"{'holds' if held else 'does not hold'} the key",
    )
    given = learner.keep({"total": 7, "items": ["ü"]})
    done = run_async(learner, master.set(writer, "acme", "orders", "order.2", given))
    check(isinstance(done, dict) and done.get("ok") is True, f"set returned {done!r}")
    given.update({"total": -7})
    confirm(read_back(learner, given).get("total") == -7, "changing the value given to set")
    back = tools["d_run"](master, [d_call("get", writer, "acme", "orders", "order.2")])
    check(
        back == [{"value": {"total": 7, "items": ["ü"]}}],
        "changing a value after set() changed what get() returns: set must put a private copy "
        f"in the cache; get returned {back[0]!r}",
    )


@case(
    "8.9",
    1,
    "ContextMaster must refuse what security and tenancy forbid, through set and "
    "get: another tenant's token (AuthorizationError), a reader writing (AuthorizationError), "
    "a bad or expired token (AuthenticationError), a tenant over its key limit "
    "(QuotaExceededError), a request without a tenant or key (check_request's TypeError, "
    "neither audited nor recorded in the analytics); a refused set changes nothing, and two "
    "tenants' equal keys stay apart",
    rules=("8.9-c", "8.9-d", "8.9-e", "8.9-f", "8.9-k", "8.9-o", "8.9-p"),
    critical=True,
)
def test_8_9_refusals(learner):
    tools = d_tools(learner)
    clock = settable_clock(learner, 1_700_000_000.0)
    master = learner.ContextMaster(D_SECRET, clock=clock)
    master.register_tenant("acme")
    master.register_tenant("globex")
    master.register_tenant("tiny", learner.TenantLimits(max_keys=1))
    a_writer = master.issue_token("alice", "acme", ["writer"])
    a_reader = master.issue_token("rita", "acme", ["reader"])
    g_writer = master.issue_token("gus", "globex", ["writer"])
    t_writer = master.issue_token("tom", "tiny", ["writer"])
    short = master.issue_token("sam", "acme", ["writer"], 10)
    rows = tools["d_run"](
        master,
        [
            d_call("set", a_writer, "acme", "c", "k", "acme-value"),
            d_call("set", g_writer, "globex", "c", "k", "globex-value"),
            d_call("get", g_writer, "acme", "c", "k"),
            d_call("set", g_writer, "acme", "c", "k", "stolen"),
            d_call("set", a_reader, "acme", "c", "k", "by-reader"),
            d_call("get", "not-a-token", "acme", "c", "k"),
            d_call("set", t_writer, "tiny", "c", "one", 1),
            d_call("set", t_writer, "tiny", "c", "two", 2),
            d_call("get", a_reader, "acme", "c", "k"),
            d_call("get", g_writer, "globex", "c", "k"),
        ],
    )
    expect = [
        "ok",
        "ok",
        "AuthorizationError",
        "AuthorizationError",
        "AuthorizationError",
        "AuthenticationError",
        "ok",
        "QuotaExceededError",
    ]
    got = [d_outcome(r) for r in rows[:8]]
    check(got == expect, f"outcomes {got}, expected {expect}")
    check(rows[8] == {"value": "acme-value"}, f"acme's value became {rows[8]!r}")
    check(rows[9] == {"value": "globex-value"}, f"globex's value is {rows[9]!r}")
    clock.now = 1_700_000_000.0 + 11
    late = tools["d_run"](master, [d_call("get", short, "acme", "c", "k")])
    check(
        d_outcome(late[0]) == "AuthenticationError",
        f"a token used after it expired gave {d_outcome(late[0])}",
    )
    stored = tools["d_stored"](master, "tiny/c/two")
    check(all(row[2] is None for row in stored), "a set refused by the quota reached the nodes")
    before = len(master.audit.entries())
    counted = master.analytics.snapshot()["count"]
    nameless = tools["d_run"](
        master,
        [
            d_call("set", a_writer, None, "c", "k", 1),
            d_call("get", a_writer, "acme", "c", 7),
        ],
    )
    check(
        [d_outcome(r) for r in nameless] == ["TypeError", "TypeError"],
        f"a request without a tenant or key gave {[d_outcome(r) for r in nameless]}; "
        "check_request must raise its TypeError first",
    )
    check(
        len(master.audit.entries()) == before,
        "a request rejected by check_request was written to the audit log",
    )
    check(
        master.analytics.snapshot()["count"] == counted,
        "a request rejected by check_request was recorded in the analytics; it must be "
        "recorded nowhere",
    )


@case(
    "8.9",
    1,
    "ContextMaster must encrypt values before they reach the nodes: every replica "
    "holds a string that is not the value's JSON, and security.decrypt gives the value back",
    rules=("8.9-g",),
    critical=True,
)
def test_8_9_encrypted_at_rest(learner):
    tools = d_tools(learner)
    master, _ = d_master(learner)
    writer = master.issue_token("alice", "acme", ["writer"])
    secret_value = {"card": "4111-1111-1111-1111", "cvv": 123}
    tools["d_run"](master, [d_call("set", writer, "acme", "pay", "card", secret_value)])
    rows = tools["d_stored"](master, "acme/pay/card")
    held = [row for row in rows if row[2] is not None]
    check(
        len(held) >= 2,
        f"the value reached {len(held)} of the key's replicas under "
        "storage_key('acme', 'pay', 'card')",
    )
    for node_id, _, stored in held:
        check(isinstance(stored, str), f"node {node_id} holds a {type(stored).__name__}")
        check(
            "4111" not in stored and stored != json.dumps(secret_value),
            f"node {node_id} holds the value in plaintext",
        )
        back = master.security.decrypt(stored)
        check(back == secret_value, f"decrypting node {node_id}'s copy gave {back!r}")


@case(
    "8.9",
    0.75,
    "ContextMaster must write every operation to the audit log, successes and "
    "refusals alike: (actor, action, tenant_id, key, outcome) with outcome_of(exc) for a "
    "refusal and 'anonymous' when authentication failed; the chain must verify",
    rules=("8.9-b", "8.9-i", "8.9-n", "8.9-o"),
    critical=True,
)
def test_8_9_audit_trail(learner):
    tools = d_tools(learner)
    master, _ = d_master(learner)
    writer = master.issue_token("alice", "acme", ["writer"])
    reader = master.issue_token("rita", "acme", ["reader"])
    other = master.issue_token("gus", "globex", ["admin"])
    tools["d_run"](
        master,
        [
            d_call("set", writer, "acme", "c", "k", 1),
            d_call("get", reader, "acme", "c", "k"),
            d_call("set", reader, "acme", "c", "k", 2),
            d_call("get", other, "acme", "c", "k"),
            d_call("get", "forged.token.value", "acme", "c", "k"),
            d_call("set", writer, "acme", "bad/context", "k", 3),
        ],
    )
    expected = [
        ["system", "register_tenant", "acme", None, "ok"],
        ["system", "register_tenant", "globex", None, "ok"],
        ["alice", "set", "acme", "k", "ok"],
        ["rita", "get", "acme", "k", "ok"],
        ["rita", "set", "acme", "k", "denied"],
        ["gus", "get", "acme", "k", "denied"],
        ["anonymous", "get", "acme", "k", "unauthenticated"],
        ["alice", "set", "acme", "k", "error"],
    ]
    got = tools["d_audit"](master)
    check(got == expected, f"the audit log holds {got}")
    check(master.audit.verify()["ok"] is True, "the audit chain does not verify")
    snap = master.analytics.snapshot()
    check(
        snap["count"] == 6 and snap["errors"] == 4,
        f"analytics counted {snap['count']} operations with {snap['errors']} errors; "
        "expected 6 with 4 errors",
    )


@case(
    "8.9",
    1,
    "ContextMaster must keep working when a replica fails: acknowledged strong "
    "writes stay readable from the cluster, new strong writes succeed with one node down, "
    "and with two nodes down a strong set raises NotEnoughReplicasError, audited "
    "'unavailable', and leaves no value behind (not in the cluster, not in the cache)",
    rules=("8.9-g", "8.9-o", "8.9-p"),
    critical=True,
)
def test_8_9_failover(learner):
    tools = d_tools(learner)
    master, clock = d_master(learner)
    writer = master.issue_token("alice", "acme", ["writer"])
    keys = [f"k{i}" for i in range(12)]
    tools["d_run"](master, [d_call("set", writer, "acme", "c", k, {"v": k}) for k in keys])
    victim = master.service.replica_nodes("acme/c/k0")[0]
    master.service.fail_node(victim)
    for k in keys:
        master.cache.invalidate(f"acme/c/{k}")
    rows = tools["d_run"](
        master,
        [d_call("get", writer, "acme", "c", k) for k in keys]
        + [d_call("set", writer, "acme", "c", "after", "x")],
    )
    lost = [k for k, row in zip(keys, rows, strict=False) if row != {"value": {"v": k}}]
    check(lost == [], f"after node {victim} failed these keys were not read back: {lost}")
    check(d_outcome(rows[-1]) == "ok", f"a strong set with one node down gave {rows[-1]}")
    second = [n for n in master.service.replica_nodes("acme/c/z") if n != victim][0]
    master.service.fail_node(second)
    last = tools["d_run"](master, [d_call("set", writer, "acme", "c", "z", 1)])
    check(
        d_outcome(last[0]) == "NotEnoughReplicasError",
        f"a strong set with two of three nodes down gave {d_outcome(last[0])}",
    )
    check(
        tools["d_audit"](master)[-1] == ["alice", "set", "acme", "z", "unavailable"],
        f"the failed set was audited as {tools['d_audit'](master)[-1]}",
    )
    master.service.recover_node(victim)
    master.service.recover_node(second)
    after = tools["d_run"](master, [d_call("get", writer, "acme", "c", "z", default="absent")])
    check(
        after == [{"value": "absent"}],
        "a strong set refused with NotEnoughReplicasError must reach neither the cluster nor "
        f"the cache, but reading the key back (nodes recovered) gave {after[0]!r}",
    )


D_PARTS = {
    "security": "SecurityManager",
    "tenants": "TenantManager",
    "service": "DistributedContextService",
    "cache": "SmartCacheManager",
    "analytics": "RealTimeAnalytics",
    "health": "HealthMonitor",
    "audit": "AuditLogger",
    "optimizer": "PerformanceOptimizer",
}


@case(
    "8.9",
    0.5,
    "ContextMaster must build one of each component on the same clock (replicas = "
    "min(3, len(node_ids)), the cache's capacity, the optimizer on that cache), measure "
    "latency_ms with time.perf_counter(), and health_check() and optimize() must return what "
    "health.status() and optimizer.analyze_and_optimize(metrics of the analytics and the "
    "cache) return",
    rules=("8.9-a", "8.9-q", "8.9-r", "8.9-s"),
)
def test_8_9_wiring(learner):
    tools = d_tools(learner)
    clock = settable_clock(learner, 1_700_000_000.0)
    master = learner.ContextMaster(
        D_SECRET, node_ids=("alpha", "beta"), cache_capacity=5, clock=clock
    )
    for attribute, kind in D_PARTS.items():
        check(
            is_a(learner, getattr(master, attribute).value(), kind),
            f"ContextMaster's attribute {attribute!r} must be a {kind}",
        )
    nodes = learner.builtin("list", master.service.nodes.value())
    replicas = master.service.replicas.value()
    capacity = master.cache.stats()["capacity"]
    check(
        (nodes, replicas, capacity) == (["alpha", "beta"], 2, 5),
        "ContextMaster(secret, node_ids=('alpha', 'beta'), cache_capacity=5) gave a service "
        f"with nodes {nodes} and replicas {replicas}, and a cache of capacity {capacity}; "
        "expected ['alpha', 'beta'], min(3, 2) = 2 and 5",
    )
    for attribute in ("security", "tenants", "service", "health", "audit"):
        check(
            learner.same(getattr(master, attribute).clock.live_value(), clock),
            f"ContextMaster's {attribute} does not use the clock ContextMaster was given",
        )
    check(
        master.analytics.started.value() == 1_700_000_000.0,
        "ContextMaster's analytics did not read the clock ContextMaster was given",
    )
    check(
        learner.same(master.optimizer.cache.live_value(), master.cache.live_value())
        and learner.same(master.health.service.live_value(), master.service.live_value()),
        "the optimizer must tune ContextMaster's own cache, and the monitor watch its own service",
    )

    # optimize() on a master that did nothing: p99 0.0, hit rate 0.0, memory 0/256
    idle = learner.ContextMaster(D_SECRET, clock=settable_clock(learner, 1_700_000_000.0))
    got = idle.optimize()
    want = [c_action("cache_hit_rate_low", "cache_hit_rate", 0.0, 0.8, "grow_cache", 256, 512)]
    check(
        got == want and idle.cache.stats()["capacity"] == 512,
        f"optimize() of a ContextMaster that served nothing returned {got}; expected {want}, "
        "and the cache grown to 512",
    )

    # latency_p99 is 0.0 while the analytics has no operation: seen with a target of 0.0
    quiet = learner.ContextMaster(D_SECRET, clock=settable_clock(learner, 1_700_000_000.0))
    in_worker(
        learner, "lambda o: o.targets.__setitem__('latency_p99', 0.0)", quiet.optimizer.live_value()
    )
    rules = [a.get("rule") for a in quiet.optimize()]
    check(
        "latency_p99_high" not in rules,
        f"optimize() of a ContextMaster that served nothing, with the optimizer's latency target "
        f"set to 0.0, fired {rules}: with no operation latency_p99 must be 0.0, which is not "
        "above 0.0",
    )

    # latency_ms is the real time of the call: it cannot be longer than the bridge call around
    # it, timed here. A clock that sleeps 20 ms per reading (read by authenticate inside each
    # call) makes an honest p99 exceed the optimizer's 10 ms target
    slow = learner.make(
        expr(
            "type('SlowClock', (), {'__module__': 'grader', 'now': 1700000000.0,"
            " '__call__': lambda self: [__import__('time').sleep(0.02), self.now][1]})()"
        )
    )
    timed = learner.ContextMaster(D_SECRET, node_ids=("n1", "n2", "n3", "n4"), clock=slow)
    replicas = timed.service.replicas.value()
    check(
        replicas == 3,
        f"ContextMaster with 4 node ids gave a service with replicas {replicas}; expected "
        "min(3, 4) = 3",
    )
    timed.register_tenant("acme")
    token = timed.issue_token("alice", "acme", ["writer"])
    claims = jwt.decode(
        token,
        D_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
    )
    check(
        claims["exp"] - claims["iat"] == 3600,
        f"ContextMaster.issue_token without ttl_seconds gave iat {claims['iat']} and exp "
        f"{claims['exp']}; the default ttl_seconds is 3600",
    )
    refused = d_call("set", token, "globex", "c", "k", 1)  # acme's token: AuthorizationError
    seconds, rows = timed_call(tools["d_run"], timed, [refused])
    check(
        d_outcome(rows[0]) == "AuthorizationError",
        f"a set with acme's token in globex gave {rows[0]}",
    )
    snap = timed.analytics.snapshot()
    check(
        snap["count"] == 1 and 0.0 < snap["p50"] <= seconds * 1000.0,
        f"a refused set that took at most {seconds * 1000.0:.1f} ms in all was recorded with "
        f"the latency {snap['p50']} ms (count {snap['count']}): a failure's latency_ms must be "
        "the call's real time in milliseconds too, (time.perf_counter() - start) * 1000",
    )
    spans = [seconds * 1000.0]
    for call in (d_call("set", token, "acme", "c", "k", 1), d_call("get", token, "acme", "c", "k")):
        seconds, rows = timed_call(tools["d_run"], timed, [call])
        check(d_outcome(rows[0]) == "ok", f"a {call[0]} on a slow clock gave {rows[0]}")
        spans.append(seconds * 1000.0)
    snap = timed.analytics.snapshot()
    low, high = snap["p50"], snap["p99"]
    check(
        0.0 < low and high <= max(spans),
        f"a refused set, a set and a get that each took at most {max(spans):.1f} ms in all "
        f"were recorded with latencies from {low} to {high} ms: "
        "latency_ms must be the call's real time in milliseconds, "
        "(time.perf_counter() - start) * 1000",
    )
    got = [(a.get("rule"), a.get("value")) for a in timed.optimize()]
    fired = [value for rule, value in got if rule == "latency_p99_high"]
    check(
        fired == ([high] if high > 10.0 else []),
        f"with the analytics' p99 at {high} ms (target 10 ms), optimize() fired {got}: "
        "latency_p99 must be the analytics snapshot's p99",
    )

    # 4 sets into a cache of 5 (memory 0.8), one hit and one miss (hit rate 0.5)
    master.register_tenant("acme")
    writer = master.issue_token("alice", "acme", ["writer"])
    calls = [d_call("set", writer, "acme", "c", f"k{i}", i) for i in range(4)]
    calls += [d_call("get", writer, "acme", "c", "k0"), d_call("get", writer, "acme", "c", "no")]
    rows = tools["d_run"](master, calls)
    check(
        [d_outcome(r) for r in rows] == ["ok"] * 6,
        f"4 sets and 2 gets gave {[d_outcome(r) for r in rows]}",
    )
    snap = master.analytics.snapshot()
    check(
        snap["count"] == 6 and snap["p50"] > 0.0,
        f"with the clock frozen, 6 operations gave count {snap['count']} and p50 latency "
        f"{snap['p50']} ms: latency_ms must be the real time the call took "
        "(time.perf_counter()), never the frozen clock",
    )
    p99 = snap["p99"]
    got = master.optimize()
    want = [
        c_action("memory_usage_high", "memory_usage", 0.8, 0.8, "shrink_cache", 5, 5),
        c_action("cache_hit_rate_low", "cache_hit_rate", 0.5, 0.8, "alert"),
    ]
    if p99 > 10.0:
        want.append(c_action("latency_p99_high", "latency_p99", p99, 10.0, "alert"))
    check(
        got == want,
        f"after 4 sets (cache of 5) and a get that hit and one that missed, with the "
        f"analytics' p99 at {p99} ms, optimize() returned {got}; expected {want}",
    )

    # health_check(): one round of the monitor, then its status
    master.service.fail_node("beta")
    clock.now = 1_700_000_000.125
    status = master.health_check()
    marked = learner.builtin("sorted", master.service.marked_down.value())
    check(
        status == {"alpha": "up", "beta": "down"} and marked == ["beta"],
        "beta crashed and stayed silent for 125 ms (heartbeat_timeout 0.1 s): health_check() "
        f"returned {status} and the service had {marked} marked down; expected "
        "{'alpha': 'up', 'beta': 'down'} and ['beta']",
    )


@case(
    "8.9",
    1,
    "ContextMaster must be at least a quarter as fast as the reference solution "
    "on the same workload of set and get calls, measured in the same run",
    rules=("8.9-t",),
)
def test_8_9_throughput_against_reference(learner, reference):
    bridges = {"mine": learner, "ref": reference}
    for who in ("mine", "ref"):  # warm up both: first calls pay for imports and caches
        _rate, problem = d_speed(bridges[who], 20)
        speed_answers_right(who, "ContextMaster", problem)
    best = {"mine": 0.0, "ref": 0.0}
    for round_number in range(D_SPEED_ROUNDS):
        for who in ("mine", "ref") if round_number % 2 == 0 else ("ref", "mine"):
            rate, problem = d_speed(bridges[who])
            speed_answers_right(who, "ContextMaster", problem)
            best[who] = max(best[who], rate)
    best_mine, best_ref = best["mine"], best["ref"]
    check(
        best_mine >= 0.25 * best_ref,
        f"your ContextMaster ran {best_mine:,.0f} operations/s, the reference "
        f"{best_ref:,.0f} operations/s (ratio {best_mine / best_ref:.2f}, at least 0.25 needed)",
    )
