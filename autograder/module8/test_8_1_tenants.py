"""Module 8's hidden suite, exercise 8.1: Tenants, isolation and quotas. Instructor-only: never
released to learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import json

from _support import a_attempt, a_raised, a_said, a_sec, a_tool, settable_clock

from academy.bridge.client import expr
from academy.grading.cases import case, check, is_a


def a_kind(outcome):
    """'ok', or the error's name, with its limit for a QuotaExceededError."""
    if "returned" in outcome:
        return "ok"
    if "QuotaExceededError" in outcome["mro"]:
        return f"quota:{outcome['limit']}"
    return outcome["raised"]


def a_manager(learner, tenants, start=1000.0):
    """A TenantManager on a settable clock with ``tenants`` = {tenant id: limits kwargs}."""
    clock = settable_clock(learner, start)
    manager = learner.TenantManager(clock=clock)
    for tenant, limits in tenants.items():
        manager.register_tenant(tenant, learner.TenantLimits(**limits))
    return clock, manager


# =========================================================================== exercise 8.1
@case(
    "8.1",
    0.5,
    "Tenant and context ids must be str matching [A-Za-z0-9_-]{1,64} in full (else ValueError "
    "whose message contains repr(id)), and check_id must return a valid id; a tenant is "
    "registered once, its id checked before its limits, and limits=None means TenantLimits(); "
    "check_operation must reject a bad id, operation or key with ValueError before checking "
    "the caller",
    rules=("8.1-a", "8.1-b", "8.1-c", "8.1-d", "8.1-e", "8.1-f", "8.1-g"),
)
def test_8_1_ids(learner):
    clock = settable_clock(learner)
    manager = learner.TenantManager(clock=clock)
    bad_ids = ["", "a" * 65, "acme\n", "a/b", "a b", "acme.corp", "ümlaut", 42, None]
    for kind, value, want in [
        ("context", "orders-2024_Q1", "orders-2024_Q1"),
        ("tenant", "Z" * 64, "Z" * 64),
        ("context", "Zürich", None),
        ("tenant", ["acme"], None),
    ]:
        out = a_attempt(learner, learner.TenantManager, "check_id", kind, value)
        if want is not None:
            check(
                out == {"returned": want},
                f"TenantManager.check_id({kind!r}, {value!r}) must return the id; {a_said(out)}",
            )
        else:
            check(
                a_raised(out, "ValueError") and repr(value) in out["message"],
                f"TenantManager.check_id({kind!r}, {value!r}) must raise ValueError whose "
                f"message contains {repr(value)!r}; {a_said(out)}",
            )
    for bad in bad_ids:
        out = a_attempt(learner, manager, "register_tenant", bad)
        check(
            a_raised(out, "ValueError"),
            f"register_tenant({bad!r}) must raise ValueError; {a_said(out)}",
        )
        check(
            repr(bad) in out["message"],
            f"the ValueError for {bad!r} must contain {repr(bad)!r}; it said {out['message']!r}",
        )
    for good in ["a" * 64, "A-z_09", "x"]:
        out = a_attempt(learner, manager, "register_tenant", good)
        check(out == {"returned": None}, f"register_tenant({good!r}) must work; {a_said(out)}")
    again = a_attempt(learner, manager, "register_tenant", "x")
    check(a_raised(again, "ValueError"), f"registering 'x' twice: {a_said(again)}")
    wrong = a_attempt(learner, manager, "register_tenant", "y", "lots")
    check(a_raised(wrong, "TypeError"), f"register_tenant('y', 'lots'): {a_said(wrong)}")
    for tenant, why in (("x", "an id already registered"), ("bad id", "an invalid id")):
        out = a_attempt(learner, manager, "register_tenant", tenant, "lots")
        check(
            a_raised(out, "ValueError"),
            f"register_tenant({tenant!r}, 'lots'), {why} with limits that are not a "
            f"TenantLimits, must raise ValueError (the id is checked first); {a_said(out)}",
        )
    out = a_attempt(learner, manager, "register_tenant", "y", None)
    check(out == {"returned": None}, f"register_tenant('y', None) must work; {a_said(out)}")
    # limits=None means TenantLimits(): 1000 operations per second, not fewer, not unlimited
    why = a_sec(learner, "yusuf", "y", ["reader"])
    outs = a_tool(learner, "a_batch")(
        clock, [[2000.0, manager, "check_operation", ["y", "main", why, "get", "k"]]] * 1001
    )
    kinds = [a_kind(o) for o in outs]
    check(
        kinds[:1000] == ["ok"] * 1000 and kinds[1000] == "quota:ops",
        "a tenant registered with limits=None must get TenantLimits() (1000 operations per "
        f"second): of 1001 operations in one second, {kinds.count('ok')} were admitted and the "
        f"last one gave {kinds[1000]}",
    )

    mine = a_sec(learner, "u", "x", ["admin"])
    foreign = a_sec(learner, "v", "elsewhere", ["admin"])
    calls = {
        "a context id 'bad id'": ("x", "bad id", mine, "get", "k"),
        "a tenant id 'x\\n'": ("x\n", "main", mine, "get", "k"),
        "a bad context id and another tenant's caller": ("x", "a/b", foreign, "get", "k"),
        "operation 'delete'": ("x", "main", mine, "delete", "k"),
        "an empty key": ("x", "main", mine, "get", ""),
        "key None for a set": ("x", "main", mine, "set", None, 1),
        "key 5": ("x", "main", mine, "get", 5),
    }
    for what, args in calls.items():
        out = a_attempt(learner, manager, "check_operation", *args)
        check(
            a_raised(out, "ValueError"),
            f"check_operation with {what} must raise ValueError; {a_said(out)}",
        )
    out = a_attempt(learner, manager, "get_context", "x", "bad id", mine)
    check(a_raised(out, "ValueError"), f"get_context with context id 'bad id': {a_said(out)}")
    out = a_attempt(learner, manager, "check_operation", "x", "main", mine, "list", None)
    check(out == {"returned": None}, f"a 'list' with key None must be admitted; {a_said(out)}")


@case(
    "8.1",
    1.0,
    "A caller must never reach another tenant through any method (get_context, "
    "check_operation, list_contexts, usage): AuthorizationError with the same words whether "
    "that tenant exists or not, and nothing counted against the other tenant",
    rules=("8.1-f", "8.1-h", "8.1-i", "8.1-k", "8.1-t", "8.1-u"),
    critical=True,
)
def test_8_1_isolation(learner):
    limits = {"max_keys": 5, "max_bytes": 500, "max_ops_per_second": 3}
    clock, manager = a_manager(learner, {"acme": limits, "globex": limits})
    alice = a_sec(learner, "alice", "acme", ["admin"])
    bob = a_sec(learner, "bob", "globex", ["admin"])
    probes = {
        "get_context": ("get_context", ["orders", alice]),
        "check_operation get": ("check_operation", ["orders", alice, "get", "total"]),
        "check_operation set": ("check_operation", ["orders", alice, "set", "total", 1]),
        "check_operation list": ("check_operation", ["orders", alice, "list", None]),
        "list_contexts": ("list_contexts", [alice]),
        "usage": ("usage", [alice]),
    }
    for what, (method, rest) in probes.items():
        outs = {t: a_attempt(learner, manager, method, t, *rest) for t in ("globex", "initech")}
        for tenant, out in outs.items():
            check(
                a_raised(out, "AuthorizationError"),
                f"{what} by a caller of tenant 'acme' for tenant {tenant!r} "
                f"({'registered' if tenant == 'globex' else 'not registered'}) must raise "
                f"AuthorizationError; {a_said(out)}",
            )
        known = outs["globex"]["message"].replace("globex", "<tenant>")
        unknown = outs["initech"]["message"].replace("initech", "<tenant>")
        check(
            known == unknown and outs["globex"]["raised"] == outs["initech"]["raised"],
            f"{what}: the refusal for a registered tenant ({outs['globex']['message']!r}) and "
            f"for an unknown one ({outs['initech']['message']!r}) must be the same, apart from "
            "the tenant id: otherwise callers can find out which tenants exist",
        )
    for who, target in (("None", None), ("globex's caller", bob)):
        out = a_attempt(learner, manager, "check_operation", "acme", "orders", target, "get", "k")
        check(
            a_raised(out, "AuthorizationError"),
            f"check_operation on tenant 'acme' with {who} as security_ctx: {a_said(out)}",
        )
        out = a_attempt(learner, manager, "get_context", "acme", "orders", target)
        check(
            a_raised(out, "AuthorizationError"),
            f"get_context on tenant 'acme' with {who} as security_ctx: {a_said(out)}",
        )
    zed = a_sec(learner, "zed", "initech", ["admin"])
    out = a_attempt(learner, manager, "get_context", "initech", "orders", zed)
    check(
        a_raised(out, "TenantError") and not a_raised(out, "AuthorizationError"),
        f"a caller of the unregistered tenant 'initech' asking for 'initech' must get "
        f"TenantError; {a_said(out)}",
    )
    usage = manager.usage("globex", bob)
    check(
        usage == {"keys": 0, "bytes": 0, "contexts": 0},
        f"after the refused calls of another tenant's caller, globex's usage was {usage}",
    )
    outs = a_tool(learner, "a_batch")(
        clock, [[1000.0, manager, "check_operation", ["globex", "orders", bob, "get", "k"]]] * 3
    )
    check(
        [a_kind(o) for o in outs] == ["ok"] * 3,
        "refused calls of another tenant's caller used up globex's rate limit: globex's own "
        f"3 operations in the same second gave {[a_kind(o) for o in outs]}",
    )
    clock.now = 1005.0
    view = manager.get_context("acme", "orders", alice)
    view.set("total", 99)
    theirs = manager.get_context("globex", "orders", bob)
    check(
        theirs.get("total", "absent") == "absent" and theirs.keys() == [],
        "globex's context 'orders' showed data acme wrote into its own context 'orders'",
    )


@case(
    "8.1",
    0.5,
    "TenantContext: each (tenant, context) pair must have its own data (shared by every view of "
    "that pair, and by nothing else), keys() sorted, and get_context must return the same "
    "object for the same tenant, context and an equal security context; check_operation does "
    "not check roles",
    rules=("8.1-j", "8.1-u", "8.1-v", "8.1-aa", "8.1-ac", "8.1-ad", "8.1-ae"),
)
def test_8_1_contexts(learner):
    _clock, manager = a_manager(learner, {"acme": {}, "globex": {}})
    alice = a_sec(learner, "alice", "acme", ["writer"])
    bob = a_sec(learner, "bob", "globex", ["writer"])
    views = {
        ("acme", "orders"): manager.get_context("acme", "orders", alice),
        ("acme", "billing"): manager.get_context("acme", "billing", alice),
        ("globex", "orders"): manager.get_context("globex", "orders", bob),
    }
    for n, view in enumerate(views.values(), 1):
        view.set("total", n * 10)
    views[("acme", "orders")].set("b", 1)
    views[("acme", "orders")].set("a", {"x": [1, 2]})
    seen = {f"{t}/{c}": v.get("total") for (t, c), v in views.items()}
    check(
        seen == {"acme/orders": 10, "acme/billing": 20, "globex/orders": 30},
        f"after setting 'total' to 10, 20 and 30 in three contexts, get('total') gave {seen}",
    )
    keys = {f"{t}/{c}": v.keys() for (t, c), v in views.items()}
    check(
        keys
        == {
            "acme/orders": ["a", "b", "total"],
            "acme/billing": ["total"],
            "globex/orders": ["total"],
        },
        f"keys() gave {keys}",
    )
    first = views[("acme", "orders")]
    check(first.get("a") == {"x": [1, 2]}, "get() did not return the stored value")
    check(first.get("nope", "dflt") == "dflt", "get() of a missing key must return default")
    check(
        (first.tenant_id.value(), first.context_id.value()) == ("acme", "orders"),
        "a TenantContext must have the attributes tenant_id and context_id",
    )
    caller = first.security_ctx.value()
    check(
        is_a(learner, caller, "SecurityContext") and caller.user_id.value() == "alice",
        "a TenantContext's attribute security_ctx must be the caller's SecurityContext",
    )
    again = manager.get_context("acme", "orders", a_sec(learner, "alice", "acme", ["writer"]))
    check(
        learner.same(first, again),
        "get_context twice with the same tenant, context and an equal security context gave "
        "two objects; it must return the same object",
    )
    # Roles are not check_operation's business: a role unknown to ROLES still reads and writes.
    odd = manager.get_context("acme", "orders", a_sec(learner, "olga", "acme", ["auditor"]))
    out = a_attempt(learner, odd, "set", "olga", "ü")
    check(
        out == {"returned": None},
        f"TenantContext.set by a caller whose only role is 'auditor' must be admitted and return "
        f"None (check_operation does not check roles); {a_said(out)}",
    )
    check(first.get("olga") == "ü", "a value set through one view was not seen through another")
    carol = a_sec(learner, "carol", "acme", ["reader"])
    shared = manager.get_context("acme", "orders", carol)
    check(
        shared.get("total") == 10,
        "another user of tenant acme did not see the data of acme's context 'orders'",
    )


@case(
    "8.1",
    1.0,
    "Quotas: a set over max_keys (keys of all the tenant's contexts) or max_bytes (new size in "
    "place of the old) must raise QuotaExceededError naming the tenant and the limit, checked "
    "rate, then keys, then bytes; a value JSON cannot write raises value_size's TypeError; a "
    "refused operation must change nothing",
    rules=(
        "8.1-f",
        "8.1-m",
        "8.1-n",
        "8.1-o",
        "8.1-p",
        "8.1-q",
        "8.1-r",
        "8.1-s",
        "8.1-t",
        "8.1-ab",
    ),
    critical=True,
)
def test_8_1_quotas(learner):
    limits = {"max_keys": 3, "max_bytes": 40, "max_ops_per_second": 1000}
    clock, manager = a_manager(
        learner,
        {
            "acme": limits,
            "globex": {"max_keys": 1},
            "tiny": {"max_keys": 1, "max_ops_per_second": 2},
        },
    )
    alice = a_sec(learner, "alice", "acme", ["writer"])

    def sets(rows, tenant="acme", who=alice):
        calls = [
            [None, manager, "check_operation", [tenant, ctx, who, "set", key, value]]
            for ctx, key, value in rows
        ]
        return a_tool(learner, "a_batch")(clock, calls)

    steps = [
        ("orders", "a", "x" * 8, "ok", "a first key of 10 bytes"),
        ("orders", "b", "x" * 8, "ok", "a second key (20 bytes in all)"),
        ("billing", "a", "x" * 8, "ok", "key 'a' of another context: a third key, 30 bytes"),
        ("billing", "c", 1, "quota:keys", "a fourth key with max_keys=3"),
        ("orders", "a", "x" * 18, "ok", "replacing 10 bytes by 20: exactly 40 = max_bytes"),
        ("orders", "b", "x" * 9, "quota:bytes", "replacing 10 bytes by 11: 41 > 40"),
        ("fresh", "z", "x" * 100, "quota:keys", "a new key over both limits (keys first)"),
    ]
    outs = sets([row[:3] for row in steps])
    for (ctx, key, value, want, why), out in zip(steps, outs, strict=True):
        check(
            a_kind(out) == want,
            f"set {ctx}/{key} = {json.dumps(value)[:12]} ({why}): expected "
            f"{'admission' if want == 'ok' else 'QuotaExceededError ' + want[6:]}; {a_said(out)}",
        )
        if want != "ok":
            check(
                out["tenant_id"] == "acme"
                and "acme" in out["message"]
                and want[6:] in out["message"],
                f"a QuotaExceededError must have tenant_id 'acme' and limit {want[6:]!r}, and "
                f"its message must name both: tenant_id={out['tenant_id']!r}, "
                f"message={out['message']!r}",
            )
    out = a_attempt(
        learner, manager, "check_operation", "acme", "orders", alice, "set", "a", expr("{1, 2}")
    )
    check(
        a_raised(out, "TypeError"),
        "a set whose value JSON cannot write (a Python set) must let value_size's TypeError "
        f"propagate; {a_said(out)}",
    )
    usage = manager.usage("acme", alice)
    check(
        usage == {"keys": 3, "bytes": 40, "contexts": 2},
        f"usage after the refused sets was {usage}; expected 3 keys, 40 bytes, 2 contexts "
        "(refused sets change nothing)",
    )
    contexts = manager.list_contexts("acme", alice)
    check(contexts == ["billing", "orders"], f"a refused set created a context: {contexts}")
    view = manager.get_context("acme", "orders", alice)
    view.set("a", "x" * 18)  # the same 20 bytes again: still exactly 40
    out = a_attempt(learner, view, "set", "a", "x" * 19)
    check(a_kind(out) == "quota:bytes", f"TenantContext.set over max_bytes: {a_said(out)}")
    check(view.get("a") == "x" * 18, "a refused TenantContext.set changed the stored value")

    bob = a_sec(learner, "bob", "globex", ["writer"])
    out = sets([("orders", "a", 1)], tenant="globex", who=bob)[0]
    check(a_kind(out) == "ok", f"another tenant's first key was refused: {a_said(out)}")

    tina = a_sec(learner, "tina", "tiny", ["writer"])
    calls = [
        [1000.0, manager, "check_operation", ["tiny", "m", tina, "set", "a", 1]],
        [1000.0, manager, "check_operation", ["tiny", "m", tina, "set", "b", 1]],
        [1000.0, manager, "check_operation", ["tiny", "m", tina, "get", "a"]],
        [1000.0, manager, "check_operation", ["tiny", "m", tina, "set", "c", 1]],
    ]
    got = [a_kind(o) for o in a_tool(learner, "a_batch")(clock, calls)]
    check(
        got == ["ok", "quota:keys", "ok", "quota:ops"],
        "with max_keys=1 and max_ops_per_second=2: set a, set b, get a, set c in one second "
        f"gave {got}; expected ok, keys, ok, ops (a set refused for keys is not counted as an "
        "operation, and the rate is checked before the keys)",
    )


@case(
    "8.1",
    0.75,
    "Rate limit: an operation is admitted only if fewer than max_ops_per_second of the "
    "tenant's admitted operations have times t with now - t < 1.0 (refused ones do not count; "
    "TenantContext get, set and keys count; get_context, list_contexts and usage do not)",
    rules=("8.1-j", "8.1-l", "8.1-s", "8.1-t", "8.1-x", "8.1-ab", "8.1-ac", "8.1-ad", "8.1-ae"),
)
def test_8_1_rate_limit(learner):
    limits = {"max_ops_per_second": 3}
    clock, manager = a_manager(learner, {"acme": limits, "globex": limits})
    alice = a_sec(learner, "alice", "acme", ["reader"])
    bob = a_sec(learner, "bob", "globex", ["reader"])

    def op(t, tenant="acme", who=alice, kind="get"):
        args = [tenant, "main", who, kind, "k"] + ([1] if kind == "set" else [])
        return [t, manager, "check_operation", args]

    plan = [
        (op(1000.0), "ok"),
        (op(1000.0), "ok"),
        (op(1000.0), "ok"),
        (op(1000.0), "quota:ops"),
        (op(1000.5), "quota:ops"),
        (op(1000.5, "globex", bob), "ok"),
        (op(1000.5, "globex", bob), "ok"),
        (op(1000.5, "globex", bob), "ok"),
        (op(1000.75, kind="set"), "quota:ops"),
        (op(1001.0), "ok"),
        (op(1001.0), "ok"),
        (op(1001.0), "ok"),
        (op(1001.0), "quota:ops"),
        (op(1001.75), "quota:ops"),
        (op(1002.0), "ok"),
    ]
    outs = a_tool(learner, "a_batch")(clock, [call for call, _ in plan])
    got = [a_kind(o) for o in outs]
    want = [w for _, w in plan]
    timeline = ", ".join(
        f"{call[3][0]}@{call[0]}:{'ok' if g == 'ok' else 'refused'}"
        for (call, _), g in zip(plan, got, strict=True)
    )
    check(
        got == want,
        f"limit 3 per second; outcomes (tenant@time) were: {timeline}. Expected acme refused "
        "from its 4th operation at 1000.0 until 1001.0 (operations at 1000.0 no longer count "
        "at 1001.0, since now - t = 1.0), refused attempts never counted, globex unaffected",
    )
    refused = outs[3]
    check(
        refused.get("tenant_id") == "acme"
        and "acme" in refused.get("message", "")
        and "ops" in refused.get("message", ""),
        f"the rate-limit QuotaExceededError must name tenant 'acme' and limit 'ops': "
        f"{a_said(refused)} (tenant_id={refused.get('tenant_id')!r})",
    )
    view = manager.get_context("acme", "main", alice)
    calls = [
        [1003.0, view, "get", ["k"]],
        [1003.0, view, "set", ["k", 1]],
        [1003.0, view, "keys", []],
        [1003.0, view, "get", ["k"]],
    ]
    got = [a_kind(o) for o in a_tool(learner, "a_batch")(clock, calls)]
    check(
        got == ["ok", "ok", "ok", "quota:ops"],
        f"TenantContext get, set, keys, get in one second (limit 3) gave {got}: each of them "
        "must go through check_operation",
    )
    calls = [[1004.0, manager, "usage", ["acme", alice]]] * 2
    calls += [[1004.0, manager, "list_contexts", ["acme", alice]]] * 2
    calls += [[1004.0, manager, "get_context", ["acme", "other", alice]]] * 2
    calls += [op(1004.0)] * 3
    got = [a_kind(o) for o in a_tool(learner, "a_batch")(clock, calls)]
    check(
        got == ["ok"] * 9,
        f"usage, list_contexts and get_context (twice each), then 3 operations in one second "
        f"gave {got}: only operations count against the rate limit",
    )
    clock, manager = a_manager(learner, {"initech": {"max_ops_per_second": 2}}, start=0.0)
    carol = a_sec(learner, "carol", "initech", ["reader"])
    plan = [(0.25, "ok"), (0.5, "ok"), (1.0, "quota:ops"), (1.25, "ok"), (1.5, "ok")]
    calls = [
        [t, manager, "check_operation", ["initech", "main", carol, "get", "k"]] for t, _ in plan
    ]
    got = [a_kind(o) for o in a_tool(learner, "a_batch")(clock, calls)]
    want = [w for _, w in plan]
    check(
        got == want,
        f"limit 2 per second, operations at {[t for t, _ in plan]} gave {got}; expected {want}: "
        "at 1.25 the operation of 0.25 has left the window (1.25 - 0.25 = 1.0) while the one "
        "of 0.5 still counts, so one more is admitted (drop the oldest times while "
        "now - t >= 1.0)",
    )


@case(
    "8.1",
    0.25,
    "list_contexts must give the sorted ids of the contexts opened with get_context or written "
    "by an admitted set, and usage the tenant's keys, bytes and contexts as ints",
    rules=("8.1-r", "8.1-w", "8.1-y", "8.1-z"),
)
def test_8_1_usage(learner):
    _clock, manager = a_manager(learner, {"acme": {"max_bytes": 10}, "globex": {}})
    alice = a_sec(learner, "alice", "acme", ["writer"])
    bob = a_sec(learner, "bob", "globex", ["writer"])
    check(
        manager.usage("globex", bob) == {"keys": 0, "bytes": 0, "contexts": 0}
        and manager.list_contexts("globex", bob) == [],
        f"a new tenant's usage was {manager.usage('globex', bob)}",
    )
    manager.get_context("acme", "zeta", alice)
    manager.check_operation("acme", "alpha", alice, "set", "k", [1, 2])
    manager.check_operation("acme", "alpha", alice, "set", "k2", "é")
    manager.check_operation("acme", "beta", alice, "get", "k")
    a_attempt(learner, manager, "check_operation", "acme", "gamma", alice, "set", "k", "x" * 20)
    contexts = manager.list_contexts("acme", alice)
    check(
        contexts == ["alpha", "zeta"],
        f"list_contexts gave {contexts}; expected ['alpha', 'zeta'] (a get does not create a "
        "context, nor does a refused set)",
    )
    usage = manager.usage("acme", alice)
    check(
        usage == {"keys": 2, "bytes": 9, "contexts": 2}
        and all(type(v) is int for v in usage.values()),
        f"usage gave {usage}; expected 2 keys, 9 bytes (value_size of [1,2] is 5 and of 'é' "
        "is 4: UTF-8 bytes) and 2 contexts",
    )
