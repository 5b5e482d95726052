"""Hidden suite for module 8 (the master challenge, ContextMaster). Instructor-only: never
released to learners.

Every case checks one sentence of the notebook's exercise text and says, in its message,
which behaviour is wrong. The learner's code is reached through the ``learner`` fixture
(``academy.bridge``); every comparison happens here, on plain data.

Time is simulated: every component takes a ``clock``, and the grader passes a settable clock
that lives in the learner's worker, so no case sleeps and failover times are exact. Speed is
graded against the reference solution measured in the same run, never against a wall-clock
threshold alone.

Nothing the learner's worker computes or measures is trusted: learner code there may replace
``exec``, ``compile``, the clocks or the worker itself. So the reference solution runs in a
worker of its own (the ``reference`` fixture), never next to learner code; speed is timed here,
around one bridge call that runs a whole batch, and the batch's answers are checked here
against what this file computes; a helper that runs in the worker returns what it observed,
and the verdict is reached here. Exercise 8.5's monitor watches a grader-written test double
of the service (``GraderCluster``), not the reference.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import random
import time
from collections import OrderedDict
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet, InvalidToken

from academy.bridge.client import Learner, LearnerException, Remote, expr
from academy.grading.cases import (
    case,
    check,
    confirm,
    contains,
    in_worker,
    is_a,
    raises,
    read_back,
    worker_function,
)

SOURCE_NOTEBOOK = Path(__file__).resolve().parents[1] / "curriculum/module8/module8_master.ipynb"


def settable_clock(learner, start: float = 1000.0) -> Remote:
    """A clock in the worker: call it for the time; set ``clock.now = t`` to move it."""
    clock = learner.make(  # type() needs __module__: the worker's eval namespace has no __name__
        expr(
            "type('SettableClock', (), {'__module__': 'grader', 'now': 0.0,"
            " '__call__': lambda self: self.now})()"
        )
    )
    clock.now = float(start)
    return clock


def run_async(learner, awaitable: Remote):
    """Run a coroutine the learner's code returned, to completion, inside the worker."""
    return in_worker(learner, "lambda aw: __import__('asyncio').run(aw)", awaitable)


def reference_cells() -> list:
    """The reference solution as worker cells: the source notebook's setup and solution cells.

    Plain json, not nbformat: importing nbformat costs a second per grading run.
    """
    cells = json.loads(SOURCE_NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    out = []
    for index, cell in enumerate(cells):
        meta = cell.get("metadata", {})
        if cell["cell_type"] == "code" and (
            "setup" in meta.get("tags", []) or meta.get("nbgrader", {}).get("solution")
        ):
            source = cell["source"]
            text = source if isinstance(source, str) else "".join(source)
            out.append({"index": index, "label": f"reference cell {index + 1}", "source": text})
    return out


@pytest.fixture(scope="session")
def reference(learner):
    """The reference solution in a worker of its own, with the learner's limits and sandbox.

    Never in the learner's worker: code there could copy it, or time it with a fake clock.
    Started by the first case that asks for it (the speed checks), closed at the end.
    """
    bridge = Learner(reference_cells(), limits=learner.limits)
    try:
        if bridge.has("ContextMaster") is not True or bridge.load_problems:
            raise RuntimeError(
                f"internal: the reference solution did not load: {bridge.load_problems}"
            )
        yield bridge
    finally:
        bridge.close()


def timed_call(function, *args):
    """(seconds, result) of one bridge call, timed here with this process's clock."""
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def confirmed(condition: bool, what: str) -> None:
    """A change the grader made in the learner's worker must show in what comes back.

    Checks that a changed result leaves the stored data alone run their change in the worker;
    code there could skip it, and the stored data would look untouched. So the changed object
    comes back too, and the case fails unless the change is in it.
    """
    check(
        condition,
        f"the grader's own change to {what} did not take effect in your code's process, so "
        "the behaviour could not be checked",
    )


def speed_answers_right(who: str, what: str, problem) -> None:
    """A timed batch counts only when its answers were right: otherwise its time is no speed."""
    if problem is None:
        return
    if who == "ref":
        raise RuntimeError(f"internal: the reference {what} failed its timed run: {problem}")
    check(
        False,
        f"the answers of your {what} in the timed run were wrong, so its speed could not be "
        f"measured: {problem}",
    )


def jsonable(value) -> str:
    return json.dumps(value, sort_keys=True)


# =========================================================================== part A helpers
A_SECRET = "grader-secret-for-module-8-exercise-8-2-that-is-64-bytes-long!!!"
A_OTHER_SECRET = "a-different-secret-an-attacker-guessed-also-64-bytes-long-......"
A_GENESIS = "0" * 64
A_FIELDS = ("index", "timestamp", "actor", "action", "tenant_id", "key", "outcome")
A_DROP = object()

A_TOOLS = r'''
def a_plain(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(type(value).__name__)


def a_attempt(target, name, args):
    """Call target.name(*args) (target(*args) when name is None); describe the outcome."""
    try:
        function = target if name is None else getattr(target, name)
        value = function(*args)
    except Exception as exc:
        return {"raised": type(exc).__name__,
                "mro": [c.__name__ for c in type(exc).__mro__],
                "message": str(exc),
                "tenant_id": a_plain(getattr(exc, "tenant_id", None)),
                "limit": a_plain(getattr(exc, "limit", None))}
    return {"returned": value}


def a_construct(cls, args, kwargs):
    """The name of the exception cls(*args, **kwargs) raised, or "ok"."""
    try:
        cls(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def a_batch(clock, calls):
    """calls: [time or None, target, method name, args]; the outcome of each, in order."""
    out = []
    for t, target, name, args in calls:
        if t is not None:
            clock.now = t
        out.append(a_attempt(target, name, args))
    return out
'''


def a_tool(learner, name):
    return worker_function(learner, A_TOOLS, name)


def a_attempt(learner, target, name, *args):
    return a_tool(learner, "a_attempt")(target, name, list(args))


def a_raised(outcome, error):
    """Did the attempt raise ``error`` (or a subclass)?"""
    return "raised" in outcome and error in outcome["mro"]


def a_kind(outcome):
    """'ok', or the error's name, with its limit for a QuotaExceededError."""
    if "returned" in outcome:
        return "ok"
    if "QuotaExceededError" in outcome["mro"]:
        return f"quota:{outcome['limit']}"
    return outcome["raised"]


def a_said(outcome):
    """How the learner's code answered, in words, for a check's detail."""
    if "returned" in outcome:
        return f"it returned {outcome['returned']!r}"
    return f"it raised {outcome['raised']}: {outcome['message'][:160]}"


def a_sec(learner, user, tenant, roles):
    return learner.SecurityContext(user, tenant, tuple(roles))


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


# =========================================================================== exercise 8.2
def a_claims(**changes):
    claims = {
        "sub": "alice",
        "tenant": "acme",
        "roles": ["writer"],
        "aud": "contextmaster",
        "iss": "contextmaster",
        "iat": 1000,
        "exp": 1600,
    }
    for name, value in changes.items():
        if value is A_DROP:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def a_token(claims, secret=A_SECRET, algorithm="HS256"):
    return jwt.encode(claims, secret, algorithm=algorithm)


def a_security(learner, start=1000.0, **kwargs):
    clock = settable_clock(learner, start)
    return clock, learner.SecurityManager(A_SECRET, clock=clock, **kwargs)


def a_b64(data: dict) -> str:
    text = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode()


@case(
    "8.2",
    0.5,
    "issue_token must return an HS256 JWT with exactly the claims sub, tenant, roles, aud, iss, "
    "iat = clock() and exp = iat + ttl_seconds (ValueError for bad arguments), and "
    "authenticate must turn it back into the SecurityContext",
    rules=("8.2-a", "8.2-b", "8.2-c", "8.2-d", "8.2-e"),
)
def test_8_2_issue(learner):
    _clock, security = a_security(learner)
    token = security.issue_token("alice", "acme", ["writer", "reader"], ttl_seconds=60)
    check(isinstance(token, str), f"issue_token returned a {type(token).__name__}, not a str")
    header = jwt.get_unverified_header(token)
    check(header.get("alg") == "HS256", f"the token's header was {header}")
    try:
        claims = jwt.decode(
            token,
            A_SECRET,
            algorithms=["HS256"],
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        check(False, f"the token is not signed with the secret ({type(exc).__name__})")
    want = {
        "sub": "alice",
        "tenant": "acme",
        "roles": ["writer", "reader"],
        "aud": "contextmaster",
        "iss": "contextmaster",
        "iat": 1000.0,
        "exp": 1060.0,
    }
    check(claims == want, f"at clock() = 1000.0 with ttl 60 the claims were {claims}")
    ctx = security.authenticate(token)
    check(is_a(learner, ctx, "SecurityContext"), "authenticate must return a SecurityContext")
    got = (ctx.user_id.value(), ctx.tenant_id.value(), ctx.roles.value())
    check(
        got == ("alice", "acme", ("writer", "reader")),
        f"authenticate gave user_id, tenant_id, roles = {got}; roles must be a tuple",
    )
    clock2 = settable_clock(learner, 2000.0)
    custom = learner.SecurityManager(A_SECRET, audience="reports", issuer="idp", clock=clock2)
    claims = jwt.decode(
        custom.issue_token("bob", "globex", ("admin",)),
        A_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
    )
    check(
        (claims["aud"], claims["iss"], claims["roles"], claims["exp"])
        == ("reports", "idp", ["admin"], 5600.0),
        f"with audience 'reports', issuer 'idp', roles ('admin',) and the default ttl at "
        f"clock() = 2000.0 the claims were {claims}",
    )
    bad_calls = {
        "an empty user_id": ("", "acme", ["reader"]),
        "tenant id 'acme\\n'": ("alice", "acme\n", ["reader"]),
        "no roles": ("alice", "acme", []),
        "the unknown role 'root'": ("alice", "acme", ["reader", "root"]),
        "ttl_seconds 0": ("alice", "acme", ["reader"], 0),
        "ttl_seconds -5": ("alice", "acme", ["reader"], -5),
        "ttl_seconds True": ("alice", "acme", ["reader"], True),
    }
    for what, args in bad_calls.items():
        out = a_attempt(learner, security, "issue_token", *args)
        check(a_raised(out, "ValueError"), f"issue_token with {what}: {a_said(out)}")
    short = security.issue_token("alice", "acme", ["reader"], ttl_seconds=0.5)
    claims = jwt.decode(
        short,
        A_SECRET,
        algorithms=["HS256"],
        options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
    )
    check(
        claims["exp"] == claims["iat"] + 0.5,
        f"ttl_seconds 0.5 is above 0 and must give exp = iat + 0.5; the claims were {claims}",
    )
    construct = a_tool(learner, "a_construct")
    for what, secret, want in [
        ("a str of 32 ASCII bytes", "s" * 32, "ok"),
        ("bytes of length 32", expr("b's' * 32"), "ok"),
        ("a str of 16 'é' (32 bytes in UTF-8)", "é" * 16, "ok"),
        ("a str of 31 ASCII bytes", "s" * 31, "refused"),
        ("bytes of length 31", expr("b's' * 31"), "refused"),
        ("a str of 15 'é' and one 'a' (31 bytes in UTF-8)", "é" * 15 + "a", "refused"),
    ]:
        got = construct(learner.SecurityManager, [secret], {})
        check(
            (got == "ok") == (want == "ok"),
            f"SecurityManager(secret) with {what}: it "
            f"{'was accepted' if got == 'ok' else 'raised ' + got}; the secret must be "
            "accepted from 32 bytes (of UTF-8 for a str) and refused below",
        )


@case(
    "8.2",
    0.75,
    "authenticate must raise AuthenticationError for forged tokens: another secret, alg none, "
    "another algorithm (HS384/HS512), an edited payload, a missing signature, garbage and "
    "non-str tokens",
    rules=("8.2-e", "8.2-f", "8.2-g"),
    critical=True,
)
def test_8_2_forgery(learner):
    _clock, security = a_security(learner)
    genuine = security.issue_token("alice", "acme", ["reader"], ttl_seconds=600)
    header, payload, signature = genuine.split(".")
    promoted = a_b64(a_claims(roles=["admin"], iat=1000.0, exp=1600.0))
    attacks = {
        "a token signed with another secret": a_token(a_claims(), A_OTHER_SECRET),
        "an alg 'none' token": jwt.encode(a_claims(roles=["admin"]), None, algorithm="none"),
        "an HS384 token (right secret)": a_token(a_claims(), algorithm="HS384"),
        "an HS512 token (right secret)": a_token(a_claims(), algorithm="HS512"),
        "a genuine token whose payload was edited to roles admin": (
            f"{header}.{promoted}.{signature}"
        ),
        "a genuine token without its signature": f"{header}.{payload}.",
        "the empty string": "",
        "'not-a-token'": "not-a-token",
        "'a.b.c'": "a.b.c",
        "None": None,
        "the int 12345": 12345,
        "a list": [genuine],
        "the genuine token as bytes": learner.make(expr(f"{genuine!r}.encode()")),
    }
    for what, token in attacks.items():
        out = a_attempt(learner, security, "authenticate", token)
        check(
            a_raised(out, "AuthenticationError"),
            f"authenticate of {what} must raise AuthenticationError; {a_said(out)}",
        )
    ctx = security.authenticate(genuine)
    check(
        ctx.user_id.value() == "alice",
        "the genuine token stopped authenticating after the attacks",
    )


@case(
    "8.2",
    0.75,
    "Token expiry must be judged with the manager's clock only: valid while clock() < exp, "
    "expired from exp on, whatever the real time is (PyJWT's own exp, iat and nbf checks use "
    "the real time); an exp that is not a number is an AuthenticationError; iat must be "
    "present, but its value is not checked",
    rules=("8.2-e", "8.2-h", "8.2-i"),
    critical=True,
)
def test_8_2_expiry(learner):
    clock, security = a_security(learner)
    token = security.issue_token("alice", "acme", ["reader"], ttl_seconds=60)
    plan = [
        (1000.0, "ok"),
        (1059.5, "ok"),
        (1060.0, "expired"),
        (5000.0, "expired"),
        (1030.0, "ok"),
    ]
    crafted = a_token(a_claims())
    plan2 = [(1599.0, "ok"), (1600.0, "expired"), (1600.5, "expired")]
    calls = [[t, security, "authenticate", [token]] for t, _ in plan]
    calls += [[t, security, "authenticate", [crafted]] for t, _ in plan2]
    outs = a_tool(learner, "a_batch")(clock, calls)
    got = [
        "ok"
        if "returned" in o
        else ("expired" if a_raised(o, "AuthenticationError") else o["raised"])
        for o in outs
    ]
    want = [w for _, w in plan + plan2]
    check(
        got == want,
        f"a token with exp 1060 checked at clock() = {[t for t, _ in plan]} and one with exp "
        f"1600 at {[t for t, _ in plan2]} gave {got}; expected {want}",
    )
    future = settable_clock(learner, 4_000_000_000.0)
    late = learner.SecurityManager(A_SECRET, clock=future)
    out = a_attempt(learner, late, "authenticate", late.issue_token("alice", "acme", ["reader"]))
    check(
        "returned" in out,
        "with clock() in the year 2096, a token issued a moment ago was refused: the real "
        f"time decided ({a_said(out)}); turn off PyJWT's verify_iat, verify_exp and verify_nbf",
    )
    now = time.time()
    clock.now = now + 100_000.0
    out = a_attempt(learner, security, "authenticate", a_token(a_claims(iat=now, exp=now + 3600)))
    check(
        a_raised(out, "AuthenticationError"),
        "a token whose exp is an hour after the real time was accepted although clock() was "
        f"past its exp: expiry must be judged with clock(); {a_said(out)}",
    )
    clock.now = 1000.0
    for iat in ("yesterday", 9_999_999_999):
        out = a_attempt(learner, security, "authenticate", a_token(a_claims(iat=iat)))
        check(
            "returned" in out,
            f"a valid token with iat = {iat!r} was refused: iat must be present, but its value "
            f"is not checked; {a_said(out)}",
        )
    out = a_attempt(learner, security, "authenticate", a_token(a_claims(nbf=9_999_999_999)))
    check(
        "returned" in out,
        "a valid token with an extra nbf claim far after the real time was refused: the real "
        f"time must never matter (verify_nbf off); {a_said(out)}",
    )
    for exp in ("1600", True, None):
        out = a_attempt(learner, security, "authenticate", a_token(a_claims(exp=exp)))
        check(
            a_raised(out, "AuthenticationError"),
            f"a token with exp = {exp!r} must raise AuthenticationError; {a_said(out)}",
        )


@case(
    "8.2",
    0.75,
    "authenticate must check the audience and issuer, require all seven claims, and reject "
    "unknown or malformed roles, an empty or non-str sub and an invalid tenant id "
    "(AuthenticationError)",
    rules=("8.2-e", "8.2-g", "8.2-j"),
    critical=True,
)
def test_8_2_claims(learner):
    _clock, security = a_security(learner)
    ok = security.authenticate(a_token(a_claims(roles=["reader", "admin"])))
    check(
        ok.roles.value() == ("reader", "admin"),
        "a valid token made with PyJWT was not accepted with its roles",
    )
    bad = {
        "audience 'billing'": a_claims(aud="billing"),
        "issuer 'someone-else'": a_claims(iss="someone-else"),
        "roles ['root']": a_claims(roles=["root"]),
        "roles ['reader', 'root']": a_claims(roles=["reader", "root"]),
        "roles []": a_claims(roles=[]),
        "roles 'admin' (a str)": a_claims(roles="admin"),
        "roles [1]": a_claims(roles=[1]),
        "sub ''": a_claims(sub=""),
        "sub 42": a_claims(sub=42),
        "tenant 'acme/x'": a_claims(tenant="acme/x"),
        "tenant 7": a_claims(tenant=7),
    }
    for name in ("sub", "tenant", "roles", "aud", "iss", "iat", "exp"):
        bad[f"no {name} claim"] = a_claims(**{name: A_DROP})
    for what, claims in bad.items():
        out = a_attempt(learner, security, "authenticate", a_token(claims))
        check(
            a_raised(out, "AuthenticationError"),
            f"a correctly signed token with {what} must raise AuthenticationError; {a_said(out)}",
        )
    clock2 = settable_clock(learner, 1000.0)
    reports = learner.SecurityManager(A_SECRET, audience="reports", issuer="idp", clock=clock2)
    out = a_attempt(learner, reports, "authenticate", a_token(a_claims()))
    check(
        a_raised(out, "AuthenticationError"),
        f"a manager with audience 'reports' accepted a token for 'contextmaster'; {a_said(out)}",
    )
    out = a_attempt(learner, reports, "authenticate", a_token(a_claims(aud="reports", iss="idp")))
    check("returned" in out, f"its own audience and issuer were refused; {a_said(out)}")


@case(
    "8.2",
    0.5,
    "authorize must allow an action only inside the caller's own tenant and only when one of "
    "its roles grants it (reader: read; writer: read, write; admin: all); unknown roles grant "
    "nothing; an unknown action is a ValueError",
    rules=("8.2-k", "8.2-l", "8.2-m"),
    critical=True,
)
def test_8_2_authorize(learner):
    _clock, security = a_security(learner)
    table = [
        (["reader"], {"read"}),
        (["writer"], {"read", "write"}),
        (["admin"], {"read", "write", "admin"}),
        (["reader", "writer"], {"read", "write"}),
        (["superuser"], set()),
        (["superuser", "reader"], {"read"}),
    ]
    calls = []
    for roles, _ in table:
        ctx = a_sec(learner, "u", "acme", roles)
        calls += [
            [None, security, "authorize", [ctx, a, "acme"]] for a in ("read", "write", "admin")
        ]
    outs = a_tool(learner, "a_batch")(settable_clock(learner), calls)
    for row, (roles, allowed) in enumerate(table):
        for col, action in enumerate(("read", "write", "admin")):
            out = outs[row * 3 + col]
            want = "ok" if action in allowed else "AuthorizationError"
            got = "ok" if out == {"returned": None} else out.get("raised", out.get("returned"))
            check(
                got == want or (want != "ok" and a_raised(out, want)),
                f"authorize(roles {roles}, {action!r}, own tenant) must "
                f"{'return None' if want == 'ok' else 'raise AuthorizationError'}; "
                f"{a_said(out)}",
            )
    admin = a_sec(learner, "root", "acme", ["admin"])
    for what, args in {
        "an acme admin acting in globex": (admin, "read", "globex"),
        "a globex admin acting in acme": (
            a_sec(learner, "gadmin", "globex", ["admin"]),
            "read",
            "acme",
        ),
        "security_ctx None": (None, "read", "acme"),
    }.items():
        out = a_attempt(learner, security, "authorize", *args)
        check(a_raised(out, "AuthorizationError"), f"authorize for {what}: {a_said(out)}")
    for action in ("delete", "READ"):
        out = a_attempt(learner, security, "authorize", admin, action, "globex")
        check(
            a_raised(out, "ValueError"),
            f"authorize with the unknown action {action!r} must raise ValueError (before the "
            f"tenant is checked); {a_said(out)}",
        )


@case(
    "8.2",
    0.75,
    "encrypt must return a Fernet token (str) of the value's compact UTF-8 JSON made with the "
    "encryption key, "
    "different every call and never showing the plaintext; decrypt must round-trip, and raise "
    "TamperedDataError for changed, foreign or garbage tokens (TypeError for non-str); "
    "json.dumps's errors for non-JSON values propagate from encrypt",
    rules=("8.2-n", "8.2-o", "8.2-p", "8.2-q", "8.2-r"),
    critical=True,
)
def test_8_2_encryption(learner):
    key = Fernet.generate_key().decode()
    _clock, security = a_security(learner, encryption_key=key)
    values = [
        {"card": "4111 1111 1111 1111", "cvv": 123},
        "plain-secret-text",
        42,
        [1, 2.5, True, None],
        {"name": "Zoë ✓"},
        None,
    ]
    tokens = []
    for value in values:
        token = security.encrypt(value)
        check(isinstance(token, str), f"encrypt({value!r}) returned {type(token).__name__}")
        plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if len(plaintext) >= 12:
            check(
                plaintext not in token and "4111" not in token and "secret" not in token,
                f"the ciphertext of {value!r} shows the plaintext",
            )
        check(token != security.encrypt(value), f"two encryptions of {value!r} were equal")
        try:
            held = Fernet(key).decrypt(token.encode())
            mine = json.loads(held.decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - any failure means a wrong format
            check(False, f"encrypt({value!r}) is not a Fernet token of the key ({exc!r})")
        check(mine == value, f"the ciphertext of {value!r} holds {mine!r}")
        check(
            held == plaintext.encode("utf-8"),
            f"the ciphertext of {value!r} holds the text {held[:80]!r}; expected the compact "
            f"JSON {plaintext.encode('utf-8')!r} (separators (',', ':'), ensure_ascii=False, "
            "UTF-8)",
        )
        back = security.decrypt(token)
        check(back == value, f"decrypt(encrypt({value!r})) gave {back!r}")
        tokens.append(token)
    twin = learner.SecurityManager(A_SECRET, encryption_key=key)
    check(
        twin.decrypt(tokens[0]) == values[0],
        "another manager with the same encryption_key could not decrypt",
    )
    token = tokens[0]
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    fernet = Fernet(key)
    attacks = {
        "a token with one character changed": flipped,
        "a truncated token": token[:-6],
        "a token of another key": learner.SecurityManager(A_SECRET).encrypt(values[0]),
        "'garbage'": "garbage",
        "the empty string": "",
        "a token of the right key whose plaintext is not JSON": fernet.encrypt(
            b"not json"
        ).decode(),
        "a token of the right key whose plaintext is not UTF-8": fernet.encrypt(
            b"\xff\xfe"
        ).decode(),
    }
    for what, bad in attacks.items():
        out = a_attempt(learner, security, "decrypt", bad)
        check(
            a_raised(out, "TamperedDataError"),
            f"decrypt of {what} must raise TamperedDataError; {a_said(out)}",
        )
    for bad in (None, 42):
        raises(lambda bad=bad: security.decrypt(bad), "TypeError", f"decrypt({bad!r})")
    for bad, error in ((expr("{1, 2}"), "TypeError"), (float("nan"), "ValueError")):
        shown = "a Python set" if error == "TypeError" else "NaN (allow_nan=False)"
        raises(
            lambda bad=bad: security.encrypt(bad),
            error,
            f"encrypt of {shown} must let json.dumps's {error} propagate",
        )


# =========================================================================== exercise 8.3
def a_entry_hash(entry):
    body = {name: entry[name] for name in (*A_FIELDS, "prev_hash")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((entry["prev_hash"] + canonical).encode("utf-8")).hexdigest()


def a_rechain(entries):
    """What an attacker who knows the algorithm does: renumber and recompute every hash."""
    previous = A_GENESIS
    for i, entry in enumerate(entries):
        entry["index"], entry["prev_hash"] = i, previous
        entry["hash"] = previous = a_entry_hash(entry)
    return entries


A_DAY = [
    (1000.0, "alice", "set", "acme", "orders/total", "ok"),
    (1000.5, "bob", "get", "globex", "orders/total", "denied"),
    (1001.25, "admin", "rotate_keys", "acme", None, "ok"),
    (1002.0, "mallory", "get", "acme", "billing/iban", "denied"),
    (1003.0, "alice", "get", "acme", "billing/iban", "ok"),
]


def a_audit(learner, rows=A_DAY):
    clock = settable_clock(learner, rows[0][0])
    logger = learner.AuditLogger(clock=clock)
    returned = []
    for t, actor, action, tenant, key, outcome in rows:
        clock.now = t
        returned.append(logger.log(actor, action, tenant, key, outcome))
    return clock, logger, returned


def a_expected_entries(rows=A_DAY):
    entries = []
    for i, (t, actor, action, tenant, key, outcome) in enumerate(rows):
        entries.append(
            {
                "index": i,
                "timestamp": t,
                "actor": actor,
                "action": action,
                "tenant_id": tenant,
                "key": key,
                "outcome": outcome,
            }
        )
    return a_rechain(entries)


A_OK = {"ok": True, "first_bad_index": None, "reason": None}


def a_bad(index, reason):
    return {"ok": False, "first_bad_index": index, "reason": reason}


@case(
    "8.3",
    0.75,
    "AuditLogger.log must append an entry with index, timestamp = clock(), the five values, "
    "prev_hash and hash = sha256(prev_hash + canonical JSON of the other eight fields), return "
    "a copy, move head_hash, and refuse bad arguments with ValueError; entry_hash keeps "
    "non-ASCII text as it is (ensure_ascii=False) and leaves the hash field out",
    rules=("8.3-a", "8.3-b", "8.3-c", "8.3-d", "8.3-e", "8.3-f", "8.3-g"),
)
def test_8_3_log(learner):
    empty = learner.AuditLogger(clock=settable_clock(learner))
    check(empty.head_hash.value() == A_GENESIS, "an empty log's head_hash must be GENESIS_HASH")
    check(empty.entries() == [] and empty.verify() == A_OK, "an empty log must verify")
    # entry_hash on its own: non-ASCII text, a "hash" field that must stay out of the body
    probe = {
        "hash": "not part of the body",
        "outcome": "ok",
        "key": "ключ/✓",
        "tenant_id": "acme",
        "action": "set",
        "actor": "Zoë",
        "timestamp": 1000.5,
        "index": 3,
        "prev_hash": "ab" * 32,
    }
    got = learner.AuditLogger.entry_hash(probe)
    check(
        got == a_entry_hash(probe),
        f"AuditLogger.entry_hash of an entry with actor 'Zoë' and key 'ключ/✓' gave {got!r}; "
        "expected sha256(prev_hash + json.dumps(the eight fields other than 'hash', "
        "sort_keys=True, separators=(',', ':'), ensure_ascii=False)) as a hex digest",
    )
    _clock, logger, returned = a_audit(learner)
    want = a_expected_entries()
    for i, (got, expected) in enumerate(zip(returned, want, strict=True)):
        check(isinstance(got, dict), f"log() returned a {type(got).__name__}, not a dict")
        check(
            set(got) == set(expected),
            f"entry {i} had the fields {sorted(got)}; expected {sorted(expected)}",
        )
        fields = {k: got[k] for k in A_FIELDS}
        check(
            fields == {k: expected[k] for k in A_FIELDS},
            f"entry {i} was {fields}; expected { ({k: expected[k] for k in A_FIELDS}) }",
        )
        check(
            got["prev_hash"] == expected["prev_hash"],
            f"entry {i}'s prev_hash must be the previous entry's hash (GENESIS_HASH for entry 0)",
        )
        check(
            got["hash"] == expected["hash"],
            f"entry {i}'s hash is not sha256(prev_hash + canonical JSON of the eight other "
            "fields: sorted keys, separators (',', ':'), ensure_ascii=False)",
        )
    check(logger.entries() == want, "entries() did not return the logged entries, in order")
    check(logger.head_hash.value() == want[-1]["hash"], "head_hash is not the newest entry's hash")
    check(logger.verify() == A_OK, f"verify() of an untouched log gave {logger.verify()}")
    first, second, edited = in_worker(
        learner,
        "lambda log: (lambda a, b: [a[0].__setitem__('actor', 'mallory'), "
        "b[1].__setitem__('outcome', 'ok'), [a[0], b[1], log.entries()]][-1])"
        "(log.entries(), log.entries())",
        logger,
    )
    confirmed(
        isinstance(first, dict)
        and isinstance(second, dict)
        and first.get("actor") == "mallory"
        and second.get("outcome") == "ok",
        "what entries() returned",
    )
    check(edited == want, "changing what entries() returned changed the log")
    returned = in_worker(
        learner,
        "lambda log: (lambda d: [d.__setitem__('actor', 'mallory'), d][-1])"
        "(log.log('carol', 'get', 'acme', 'k'))",
        logger,
    )
    confirmed(
        isinstance(returned, dict) and returned.get("actor") == "mallory",
        "the dict log() returned",
    )
    check(
        logger.entries()[-1]["actor"] == "carol" and logger.verify() == A_OK,
        "changing the dict log() returned changed the stored entry",
    )
    head = logger.head_hash.value()
    bad_calls = {
        "an empty actor": ("", "set", "acme"),
        "action None": ("alice", None, "acme"),
        "an empty tenant_id": ("alice", "set", ""),
        "key 5": ("alice", "set", "acme", 5),
        "an empty outcome": ("alice", "set", "acme", "k", ""),
    }
    for what, args in bad_calls.items():
        out = a_attempt(learner, logger, "log", *args)
        check(
            a_raised(out, "ValueError"), f"log() with {what} must raise ValueError; {a_said(out)}"
        )
    check(
        len(logger.entries()) == 6 and logger.head_hash.value() == head,
        "a refused log() call added an entry or moved the head",
    )


@case(
    "8.3",
    0.75,
    "verify must detect an edit of any field of any entry (timestamp, actor, action, "
    "tenant_id, key, outcome, index, prev_hash, hash), even when the edited entry's own hash "
    "was recomputed, and report the first bad index and the reason (an entry entry_hash cannot "
    "hash is 'malformed')",
    rules=("8.3-h", "8.3-i", "8.3-j", "8.3-k", "8.3-l", "8.3-m"),
    critical=True,
)
def test_8_3_edits(learner):
    _clock, logger, _ = a_audit(learner)
    original = logger.entries()
    cases = []
    for field, value in [
        ("timestamp", 1001.5),
        ("actor", "nobody"),
        ("action", "get"),
        ("tenant_id", "globex"),
        ("key", "orders/total"),
        ("outcome", "denied"),
    ]:
        entries = [dict(e) for e in original]
        entries[2][field] = value
        cases.append((f"entry 2's {field} changed to {value!r}", entries, a_bad(2, "hash")))
    for field, value, want in [
        ("index", 7, a_bad(2, "index")),
        ("prev_hash", A_GENESIS, a_bad(2, "prev_hash")),
        ("prev_hash", "f" * 64, a_bad(2, "prev_hash")),
        ("hash", "f" * 64, a_bad(2, "hash")),
    ]:
        entries = [dict(e) for e in original]
        entries[2][field] = value
        cases.append((f"entry 2's {field} changed", entries, want))
    entries = [dict(e) for e in original]
    entries[2]["actor"] = "nobody"
    entries[2]["hash"] = a_entry_hash(entries[2])
    cases.append(
        ("entry 2's actor changed and its hash recomputed", entries, a_bad(3, "prev_hash"))
    )
    entries = [dict(e) for e in original]
    del entries[1]["outcome"]
    cases.append(("entry 1 without its outcome field", entries, a_bad(1, "malformed")))
    entries = [dict(e) for e in original]
    entries[1]["signed_by"] = "alice"
    cases.append(("entry 1 with an extra field", entries, a_bad(1, "malformed")))
    entries = [dict(e) for e in original]
    entries[1] = "an entry"
    cases.append(("entry 1 replaced by a str", entries, a_bad(1, "malformed")))
    results = in_worker(
        learner,
        "lambda log, lists: [log.verify(entries) for entries in lists]",
        logger,
        [entries for _, entries, _ in cases],
    )
    for (what, _, want), got in zip(cases, results, strict=True):
        check(got == want, f"verify() of the log with {what} gave {got}; expected {want}")
    check(
        logger.verify(original) == A_OK and logger.verify() == A_OK,
        "verify() of the untouched entries failed after checking tampered copies",
    )
    unhashable = [dict(e) for e in original]
    unhashable[1]["key"] = expr("{1, 2}")  # a Python set: json.dumps raises TypeError
    out = a_attempt(learner, logger, "verify", unhashable)
    check(
        out == {"returned": a_bad(1, "malformed")},
        "verify() of a list whose entry 1 holds a value entry_hash cannot hash (a Python set, "
        f"json.dumps raises TypeError) must give {a_bad(1, 'malformed')}; {a_said(out)}",
    )


@case(
    "8.3",
    0.5,
    "verify must detect deleted, inserted and reordered entries and report the first position "
    "that no longer fits (index checked before prev_hash and hash)",
    rules=("8.3-i", "8.3-k", "8.3-l"),
    critical=True,
)
def test_8_3_structure(learner):
    _clock, logger, _ = a_audit(learner)
    e = logger.entries()
    forged = {
        "index": 2,
        "timestamp": 1001.0,
        "actor": "mallory",
        "action": "grant",
        "tenant_id": "acme",
        "key": None,
        "outcome": "ok",
        "prev_hash": e[1]["hash"],
    }
    forged["hash"] = a_entry_hash(forged)
    cases = [
        ("entry 2 deleted", e[:2] + e[3:], a_bad(2, "index")),
        ("entry 0 deleted", e[1:], a_bad(0, "index")),
        ("entries 1 and 2 swapped", [e[0], e[2], e[1], e[3], e[4]], a_bad(1, "index")),
        ("the list reversed", e[::-1], a_bad(0, "index")),
        ("a copy of entry 1 inserted after it", e[:2] + [e[1]] + e[2:], a_bad(2, "index")),
        ("a well-chained forged entry inserted at 2", e[:2] + [forged] + e[2:], a_bad(3, "index")),
    ]
    results = in_worker(
        learner,
        "lambda log, lists: [log.verify(entries) for entries in lists]",
        logger,
        [entries for _, entries, _ in cases],
    )
    for (what, _, want), got in zip(cases, results, strict=True):
        check(got == want, f"verify() of the log with {what} gave {got}; expected {want}")


@case(
    "8.3",
    0.5,
    "verify must compare a valid chain with the logger's head: deleting the newest entries, "
    "appending entries or rewriting the whole chain must fail with reason 'head'",
    rules=("8.3-n", "8.3-o", "8.3-p"),
    critical=True,
)
def test_8_3_head(learner):
    clock, logger, _ = a_audit(learner)
    e = logger.entries()
    appended = {
        "index": 5,
        "timestamp": 1004.0,
        "actor": "mallory",
        "action": "get",
        "tenant_id": "acme",
        "key": "billing/iban",
        "outcome": "ok",
        "prev_hash": e[4]["hash"],
    }
    appended["hash"] = a_entry_hash(appended)
    cases = [
        ("the newest entry deleted", e[:-1], a_bad(4, "head")),
        ("the two newest entries deleted", e[:-2], a_bad(3, "head")),
        ("every entry deleted", [], a_bad(0, "head")),
        ("a well-chained entry appended", e + [appended], a_bad(5, "head")),
        (
            "entry 3 deleted and the chain rewritten",
            a_rechain([dict(x) for x in e[:3] + e[4:]]),
            a_bad(4, "head"),
        ),
        (
            "entry 0's actor edited and the chain rewritten",
            a_rechain([dict(x, actor="nobody") if x["index"] == 0 else dict(x) for x in e]),
            a_bad(5, "head"),
        ),
    ]
    results = in_worker(
        learner,
        "lambda log, lists: [log.verify(entries) for entries in lists]",
        logger,
        [entries for _, entries, _ in cases],
    )
    for (what, _, want), got in zip(cases, results, strict=True):
        check(got == want, f"verify() of the log with {what} gave {got}; expected {want}")
    clock.now = 1010.0
    logger.log("carol", "get", "acme", "orders/total")
    got = logger.verify(e)
    check(
        got == a_bad(5, "head"),
        f"after a sixth entry was logged, verify() of the first five gave {got}; expected "
        f"{a_bad(5, 'head')}",
    )
    check(logger.verify() == A_OK, "the logger's own entries stopped verifying")


@case(
    "8.3",
    0.5,
    "AuditLogger.query must return copies of the entries matching every filter given "
    "(tenant_id, actor, key, outcome; None means any), oldest first",
    rules=("8.3-q",),
)
def test_8_3_query(learner):
    rows = A_DAY + [
        (1004.0, "bob", "set", "globex", "orders/total", "ok"),
        (1005.0, "alice", "set", "acme", "orders/total", "denied"),
    ]
    _clock, logger, _ = a_audit(learner, rows)
    every = logger.entries()
    probes = [
        ({}, [0, 1, 2, 3, 4, 5, 6]),
        ({"tenant_id": "acme"}, [0, 2, 3, 4, 6]),
        ({"actor": "alice"}, [0, 4, 6]),
        ({"key": "billing/iban"}, [3, 4]),
        ({"outcome": "denied"}, [1, 3, 6]),
        ({"actor": "alice", "outcome": "denied"}, [6]),
        ({"tenant_id": "acme", "key": "orders/total", "outcome": "ok"}, [0]),
        ({"tenant_id": "globex", "actor": "bob", "key": "orders/total", "outcome": "ok"}, [5]),
        ({"tenant_id": "initech"}, []),
        ({"actor": "bob", "tenant_id": "acme"}, []),
    ]
    for filters, indexes in probes:
        got = logger.query(**filters)
        check(
            got == [every[i] for i in indexes],
            f"query({', '.join(f'{k}={v!r}' for k, v in filters.items())}) gave the entries "
            f"{[g.get('index') for g in got] if isinstance(got, list) else got}; expected "
            f"{indexes}",
        )
    first, after = in_worker(
        learner,
        "lambda log: (lambda q: [q[0].__setitem__('outcome', 'ok'), "
        "[q[0], log.query(actor='bob')]][-1])(log.query(actor='bob'))",
        logger,
    )
    confirmed(
        isinstance(first, dict) and first.get("outcome") == "ok", "an entry that query() returned"
    )
    check(
        after == [every[1], every[5]]
        and logger.verify() == {"ok": True, "first_bad_index": None, "reason": None},
        "changing an entry that query() returned changed the log",
    )


# =========================================================================== part B: 8.4, 8.5
# The rules of exercise 8.4 are written out once more below (BModel), in the grader, so that
# every answer of the learner's service can be compared with the exact answer the notebook's
# words require; the learner's code never sees this model.

B_NODES = ["n1", "n2", "n3", "n4", "n5"]
B_ENOUGH = "NotEnoughReplicasError"


def b_score(node_id: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{node_id}|{key}".encode()).digest(), "big")


@functools.lru_cache(maxsize=8192)
def b_ranking(nodes: tuple, key: str) -> tuple:
    return tuple(sorted(nodes, key=lambda n: (-b_score(n, key), n)))


def b_replicas(nodes, key: str, count: int = 3) -> list:
    return list(b_ranking(tuple(nodes), key)[:count])


def b_key_with(nodes, prefix: str, want: list) -> str:
    """The first key prefix0, prefix1, ... whose replica ranking starts with ``want``."""
    for i in range(100_000):
        key = f"{prefix}{i}"
        if b_replicas(nodes, key, len(want)) == want:
            return key
    raise AssertionError("no such key")


class BModel:
    """The notebook's rules for DistributedContextService, as plain data."""

    def __init__(self, nodes, replicas: int = 3):
        self.order = list(nodes)
        self.data = {n: {} for n in self.order}
        self.up = set(self.order)
        self.marked = set()
        self.replicas = replicas
        self.version = 0

    def replica_set(self, key, n=None):
        return b_replicas(self.order, key, self.replicas if n is None else n)

    def answering(self, node_ids):
        return [n for n in node_ids if n not in self.marked and n in self.up]

    def repair(self, sources, targets) -> int:
        newest = {}
        for n in sources:
            for key, entry in self.data[n].items():
                if key not in newest or entry[0] > newest[key][0]:
                    newest[key] = entry
        copies = 0
        for key in sorted(newest):
            for n in self.replica_set(key):
                if n in targets and self.store(n, key, *newest[key]):
                    copies += 1
        return copies

    def store(self, node_id, key, version, value) -> bool:
        current = self.data[node_id].get(key)
        if current is not None and current[0] >= version:
            return False
        self.data[node_id][key] = [version, value]
        return True

    def apply(self, step):
        kind = step[0]
        if kind == "fail":
            self.up.discard(step[1])
            return None
        if kind == "recover":
            self.up.add(step[1])
            return None
        if kind == "mark_down":
            self.marked.add(step[1])
            return None
        if kind == "mark_up":
            self.marked.discard(step[1])
            return None
        if kind == "anti_entropy":
            reachable = self.answering(self.order)
            return ["ok", self.repair(reachable, set(reachable))]
        if kind == "resync":
            if step[1] not in self.up:
                return ["error", "ConnectionError"]
            return ["ok", self.repair(self.answering(self.order), {step[1]})]
        op = step[1]
        key, n = op["key"], op.get("replicas", self.replicas)
        strong = op.get("consistency", "strong") == "strong"
        replica_set = self.replica_set(key, n)
        needed = n // 2 + 1 if strong else 1
        answering = self.answering(replica_set)
        if len(answering) < needed:
            return ["error", B_ENOUGH]
        if op["type"] == "set":
            self.version += 1
            acks = sum(self.store(x, key, self.version, op["value"]) for x in answering)
            return ["ok", {"ok": True, "version": self.version, "acks": acks}]
        copies = [self.data[x].get(key) for x in (answering if strong else answering[:1])]
        held = [c for c in copies if c is not None]
        if not held:
            return ["ok", {"ok": True, "found": False, "value": None, "version": None}]
        version, value = max(held, key=lambda c: c[0])
        return ["ok", {"ok": True, "found": True, "value": value, "version": version}]

    def describe(self, step) -> str:
        kind = step[0]
        if kind in ("fail", "recover", "mark_down", "mark_up", "resync"):
            return f"{kind} {step[1]}"
        if kind == "anti_entropy":
            return "anti_entropy()"
        op = step[1]
        key = op["key"]
        n = op.get("replicas", self.replicas)
        replica_set = self.replica_set(key, n)
        down = [x for x in replica_set if x not in self.answering([x])]
        state = f"replicas {', '.join(replica_set)}; " + (
            f"{', '.join(down)} crashed or marked down" if down else "all answering"
        )
        shown = {k: v for k, v in op.items() if k != "type"}
        consistency = op.get("consistency", "strong")
        article = "an" if consistency == "eventual" else "a"
        return f"{article} {consistency} {op['type']} {shown} ({state})"


B_HELPERS = r'''
def b_script(service, steps):
    """Run steps in order: node events, operations, anti_entropy, resync. Plain data back."""
    import asyncio
    import json

    async def go():
        log = []
        for step in steps:
            kind = step[0]
            try:
                if kind == "fail":
                    service.fail_node(step[1])
                    log.append(None)
                elif kind == "recover":
                    service.recover_node(step[1])
                    log.append(None)
                elif kind == "mark_down":
                    service.mark_down(step[1])
                    log.append(None)
                elif kind == "mark_up":
                    service.mark_up(step[1])
                    log.append(None)
                elif kind == "anti_entropy":
                    log.append(["ok", service.anti_entropy()])
                elif kind == "resync":
                    log.append(["ok", service.resync_node(step[1])])
                else:
                    log.append(["ok", await service.process_operation(step[1])])
            except Exception as exc:
                log.append(["error", type(exc).__name__,
                            [c.__name__ for c in type(exc).__mro__], str(exc)])
        return log

    return json.loads(json.dumps(asyncio.run(go()), default=repr))


def b_copies(service, key):
    """{node_id: [version, value] or None}: every node's copy of key."""
    import json

    out = {}
    for node_id, node in service.nodes.items():
        entry = node.data.get(key)
        out[node_id] = None if entry is None else [entry[0], entry[1]]
    return json.loads(json.dumps(out, default=repr))


def b_requests(service):
    return {node_id: node.requests for node_id, node in service.nodes.items()}
'''


def b_tool(learner, name):
    return worker_function(learner, B_HELPERS, name)


# One timed batch of exercise 8.4: the operations run in the worker (one bridge call, timed
# here), and come back with every answer and every node's versions, which must be exactly what
# the notebook's rules give (BModel), so a batch cannot be skipped or faked cheaply. The
# operations travel with the timed call itself, from a seed drawn for the run: nothing can be
# worked out ahead of the clock.
B_SPEED = r'''
def b_timed_ops(service, text, budget, minimum):
    """Run the operations of text (JSON) in order, stopping after budget seconds once minimum
    ran; JSON text of what each returned and of every node's version of every key afterwards."""
    import asyncio
    import json
    import time

    steps = json.loads(text)

    async def go():
        out = []
        start = time.monotonic()
        for op in steps:
            out.append(await service.process_operation(op))
            if len(out) >= minimum and time.monotonic() - start > budget:
                break
        return out

    results = asyncio.run(go())
    versions = {node_id: {key: entry[0] for key, entry in node.data.items()}
                for node_id, node in service.nodes.items()}
    return json.dumps([results, versions], default=repr)
'''
B_SPEED_ROUNDS = 5  # timed batches per service, the learner's and the reference's alternately
B_SPEED_OPS = 600  # operations per batch (one bridge call): the call costs ~2% of the batch
B_SPEED_MINIMUM = 150
B_SPEED_BUDGET = 0.4  # seconds: a slow service stops early, after B_SPEED_MINIMUM operations
B_SPEED_FILL = [{"type": "set", "key": f"k{i}", "value": {"n": i}} for i in range(200)]


def b_speed_workload(seed: int) -> list:
    """A mix of strong and eventual sets and gets over the 200 keys of B_SPEED_FILL."""
    rng = random.Random(seed)
    steps = []
    for i in range(B_SPEED_OPS):
        op = {
            "key": f"k{rng.randrange(200)}",
            "consistency": "strong" if rng.random() < 0.5 else "eventual",
        }
        if rng.random() < 0.4:
            op.update(type="set", value={"n": i, "tags": ["a", "b"]})
        else:
            op["type"] = "get"
        steps.append(op)
    return steps


@functools.lru_cache(maxsize=2)
def b_speed_expected(seed: int):
    """What a service must answer to b_speed_workload(seed) after B_SPEED_FILL (BModel), and
    every (index, key, version) written: (steps, answers, versions after the fill, writes)."""
    steps = b_speed_workload(seed)
    model = BModel(B_NODES)
    for op in B_SPEED_FILL:
        model.apply(["op", op])
    filled = {n: {key: entry[0] for key, entry in model.data[n].items()} for n in B_NODES}
    answers, writes = [], []
    for index, op in enumerate(steps):
        want = model.apply(["op", op])
        answers.append(want)
        if op["type"] == "set":
            writes.append((index, op["key"], want[1]["version"]))
    return steps, answers, filled, writes


def b_speed_label(seed: int, index: int) -> str:
    """The words for operation ``index`` (from 0) of b_speed_workload(seed), for a message."""
    steps = b_speed_workload(seed)
    model = BModel(B_NODES)
    for op in B_SPEED_FILL + steps[:index]:
        model.apply(["op", op])
    return model.describe(["op", steps[index]])


def b_speed_problem(raw, seed):
    """What is wrong with a timed batch's answers (None: they are what the rules require)."""
    steps, answers, filled, writes = b_speed_expected(seed)
    try:
        results, versions = json.loads(raw)
    except (TypeError, ValueError):
        return "the run returned no readable answers"
    if not isinstance(results, list) or not B_SPEED_MINIMUM <= len(results) <= len(steps):
        return "the run stopped before its operations were done"
    for index, (got, want) in enumerate(zip(results, answers, strict=False)):
        if want[0] != "ok" or got != want[1]:
            return (
                f"operation {index + 1} of the timed run, {b_speed_label(seed, index)}: "
                f"expected {b_shown(want)}, got {str(got)[:200]}"
            )
    held = {n: dict(keys) for n, keys in filled.items()}
    for index, key, version in writes:
        if index >= len(results):
            break
        for n in b_replicas(B_NODES, key):
            held[n][key] = version
    if versions != held:
        return "after the timed run, the nodes did not hold the versions that were written"
    return None


def b_speed(bridge, seed):
    """(operations per second, None) of bridge's DistributedContextService on one timed batch,
    b_speed_workload(seed), on a fresh service holding B_SPEED_FILL; (0.0, what is wrong) if it
    answered wrongly."""
    tool = worker_function(bridge, B_SPEED, "b_timed_ops")
    service = bridge.DistributedContextService(list(B_NODES), replicas=3)
    tool(service, json.dumps(B_SPEED_FILL), 60.0, 0)
    batch = json.dumps(b_speed_expected(seed)[0])  # one str: the bridge sends it as it is
    seconds, raw = timed_call(tool, service, batch, B_SPEED_BUDGET, B_SPEED_MINIMUM)
    problem = b_speed_problem(raw, seed)
    if problem is not None:
        return 0.0, problem
    return len(json.loads(raw)[0]) / seconds, None


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


def b_service(learner, nodes=None, replicas=3, clock=None):
    kwargs = {"replicas": replicas}
    if clock is not None:
        kwargs["clock"] = clock
    return learner.DistributedContextService(list(nodes or B_NODES), **kwargs)


def b_matches(got, want) -> bool:
    if want is None:
        return got is None
    if want[0] == "error":
        return isinstance(got, list) and got[0] == "error" and want[1] in got[2]
    return got == want


def b_shown(entry) -> str:
    if entry is None:
        return "nothing"
    if entry[0] == "error":
        return f"{entry[1]}" + (f" ({entry[3]})" if len(entry) > 3 and entry[3] else "")
    return repr(entry[1])


def b_run_checked(learner, service, model, steps, what: str):
    """Run steps on the learner's service and on the model; fail on the first difference."""
    log = b_tool(learner, "b_script")(service, steps)
    check(
        isinstance(log, list) and len(log) == len(steps),
        f"{what}: the run did not complete (got {str(log)[:200]})",
    )
    for index, (step, got) in enumerate(zip(steps, log, strict=True), start=1):
        label = model.describe(step)
        want = model.apply(step)
        if not b_matches(got, want):
            expected = f"{want[1]}" if want and want[0] == "error" else b_shown(want)
            check(
                False,
                f"{what}, step {index} of {len(steps)}, {label}: expected {expected}, "
                f"got {b_shown(got)}",
            )
    return log


def b_set(key, value, consistency="strong", **extra):
    return ["op", {"type": "set", "key": key, "value": value, "consistency": consistency, **extra}]


def b_get(key, consistency="strong", **extra):
    return ["op", {"type": "get", "key": key, "consistency": consistency, **extra}]


@case(
    "8.4",
    0.5,
    "DistributedContextService.replica_nodes(key) must rank ALL nodes by rendezvous_score, "
    "highest first, and return the first `replicas`, whichever nodes are down; a set with "
    "'replicas': n must write only to the first n",
    rules=("8.4-c", "8.4-d", "8.4-p"),
)
def test_8_4_placement(learner):
    service = b_service(learner)
    keys = [f"key:{i}" for i in range(150)] + ["critical_business_data", "é/ü", "a|b"]
    ask = (
        "lambda s, ks, n: [s.replica_nodes(k) if n is None else s.replica_nodes(k, n) for k in ks]"
    )
    want = [b_replicas(B_NODES, k) for k in keys]
    got = in_worker(learner, ask, service, keys, None)
    wrong = [(k, g, w) for k, g, w in zip(keys, got, want, strict=True) if g != w]
    if wrong:
        key, g, w = wrong[0]
        check(
            False,
            f"for {len(wrong)} of {len(keys)} keys the replica set is wrong, e.g. for {key!r} "
            f"it was {g}; expected {w}",
        )
    for n in (1, 2):
        got_n = in_worker(learner, ask, service, keys[:40], n)
        check(
            got_n == [b_replicas(B_NODES, k, n) for k in keys[:40]],
            f"replica_nodes(key, {n}) must be the first {n} of the ranking",
        )
    b_tool(learner, "b_script")(service, [["fail", "n1"], ["fail", "n4"], ["mark_down", "n2"]])
    after = in_worker(learner, ask, service, keys, None)
    moved = sum(a != w for a, w in zip(after, want, strict=True))
    check(
        moved == 0,
        f"after n1 and n4 crashed and n2 was marked down, {moved} of {len(keys)} keys got another "
        "replica set: the set must not depend on which nodes are up",
    )
    default = learner.DistributedContextService(list(B_NODES))
    sizes = {len(s) for s in in_worker(learner, ask, default, keys[:20], None)}
    check(
        default.replicas.value() == 3 and sizes == {3},
        f"DistributedContextService(node_ids) must default to replicas=3; it had replicas "
        f"{default.replicas.value()!r} and replica sets of sizes {sorted(sizes)}",
    )
    construct = a_tool(learner, "a_construct")
    for what, args, kwargs, want in [
        ("replicas=1", [list(B_NODES)], {"replicas": 1}, "ok"),
        (f"replicas={len(B_NODES)}", [list(B_NODES)], {"replicas": len(B_NODES)}, "ok"),
        ("replicas=0", [list(B_NODES)], {"replicas": 0}, "ValueError"),
        ("replicas=-1", [list(B_NODES)], {"replicas": -1}, "ValueError"),
        (
            f"replicas={len(B_NODES) + 1}",
            [list(B_NODES)],
            {"replicas": len(B_NODES) + 1},
            "ValueError",
        ),
        ("replicas=2.0", [list(B_NODES)], {"replicas": 2.0}, "ValueError"),
        ("no node ids", [[]], {"replicas": 1}, "ValueError"),
        ("a repeated node id", [["n1", "n2", "n1"]], {"replicas": 2}, "ValueError"),
        ("a node id that is an int", [["n1", "n2", 3]], {"replicas": 2}, "ValueError"),
        ("node ids that are ints", [[1, 2, 3]], {}, "ValueError"),
    ]:
        got = construct(learner.DistributedContextService, args, kwargs)
        check(
            got == want,
            f"DistributedContextService with {what}: {'accepted' if got == 'ok' else got}; "
            f"expected {'it to be accepted' if want == 'ok' else 'ValueError'} (node ids: one "
            "or more distinct non-empty str; replicas: an int from 1 to len(node_ids))",
        )
    fresh = b_service(learner)
    key = "orders:placed"
    model = BModel(B_NODES)
    b_run_checked(learner, fresh, model, [b_set(key, "v", replicas=2)], "a set with 'replicas': 2")
    copies = b_tool(learner, "b_copies")(fresh, key)
    holders = sorted(n for n, c in copies.items() if c is not None)
    check(
        holders == sorted(b_replicas(B_NODES, key, 2)),
        f"a set with 'replicas': 2 stored the key on {holders}; expected exactly the first two "
        f"of its ranking, {b_replicas(B_NODES, key, 2)}",
    )


B_BAD_OPS = [
    (["set", "k"], "op"),
    ({"key": "k", "value": 1}, "type"),
    ({"type": "delete", "key": "k"}, "type"),
    ({"type": "SET", "key": "k", "value": 1}, "type"),
    ({"type": "delete", "key": ""}, "type"),
    ({"type": "set", "value": 1}, "key"),
    ({"type": "get", "key": ""}, "key"),
    ({"type": "get", "key": 7}, "key"),
    ({"type": "get", "key": "", "consistency": "maybe"}, "key"),
    ({"type": "set", "key": "k", "value": 1, "consistency": "quorum"}, "consistency"),
    ({"type": "get", "key": "k", "consistency": None}, "consistency"),
    ({"type": "get", "key": "k", "consistency": "strong", "replicas": 0}, "replicas"),
    ({"type": "get", "key": "k", "replicas": 4}, "replicas"),
    ({"type": "set", "key": "k", "value": 1, "replicas": True}, "replicas"),
    ({"type": "get", "key": "k", "replicas": "3"}, "replicas"),
    ({"type": "get", "key": "k", "replicas": 2.0}, "replicas"),
    ({"type": "set", "key": "k", "replicas": 2}, "value"),
]


@case(
    "8.4",
    0.5,
    "process_operation() must raise ValueError naming the bad field ('type', 'key', "
    "'consistency', 'replicas', 'value'), checked in that order, and change nothing; the "
    "error comes when the operation is awaited, not when process_operation() is called",
    rules=(
        "8.4-f",
        "8.4-g",
        "8.4-h",
        "8.4-i",
        "8.4-j",
        "8.4-k",
        "8.4-l",
        "8.4-m",
        "8.4-n",
        "8.4-o",
    ),
)
def test_8_4_validation(learner):
    service = b_service(learner)
    try:
        pending = service.process_operation(["set", "k"])
    except LearnerException as exc:
        check(
            False,
            f"process_operation(['set', 'k']) raised {exc.type} as soon as it was called; "
            "every error must be raised when the operation is awaited",
        )
    raises(
        lambda: run_async(learner, pending),
        "ValueError",
        "awaiting process_operation(['set', 'k'])",
    )
    log = b_tool(learner, "b_script")(service, [["op", op] for op, _field in B_BAD_OPS])
    for (op, field), got in zip(B_BAD_OPS, log, strict=True):
        ok = isinstance(got, list) and got[0] == "error" and "ValueError" in got[2]
        check(ok, f"the op {op!r} must raise ValueError; got {b_shown(got)}")
        if field != "op":
            named = f"'{field}'" in got[3] or f'"{field}"' in got[3]
            check(
                named,
                f"the op {op!r} must raise a ValueError whose message names '{field}'; "
                f"the message was {got[3]!r}",
            )
    bad_value = learner.make(expr("{'type': 'set', 'key': 'k', 'value': {1, 2}}"))
    exc = raises(
        lambda: run_async(learner, service.process_operation(bad_value)),
        "ValueError",
        "a set whose value is a Python set (not JSON data)",
    )
    check("value" in exc.message, f"the message must name 'value'; it was {exc.message!r}")
    requests = b_tool(learner, "b_requests")(service)
    check(
        requests == {n: 0 for n in B_NODES},
        f"rejected operations must not contact any node; the nodes received {requests}",
    )
    model = BModel(B_NODES)
    b_run_checked(
        learner,
        service,
        model,
        [
            ["op", {"type": "set", "key": "k", "value": 1, "colour": "red"}],
            ["op", {"type": "get", "key": "k", "value": "ignored", "colour": "red"}],
        ],
        "after the rejected operations (which must use no version)",
    )


@case(
    "8.4",
    0.5,
    "process_operation() must follow the seed's pattern: a strong set returns {ok, version, "
    "acks} with versions 1, 2, 3... over the whole service, stores (version, value) on every "
    "replica, and get returns {ok, found, value, version}",
    rules=("8.4-e", "8.4-s", "8.4-t", "8.4-u", "8.4-x", "8.4-y", "8.4-z"),
)
def test_8_4_basics(learner):
    service = b_service(learner)
    data = {"account": "ACME-7", "balance_cents": 1250000, "tags": ["vip", None, 1.5]}
    seed_op = {
        "type": "set",
        "key": "critical_business_data",
        "value": data,
        "consistency": "strong",
        "replicas": 3,
    }
    pending = service.process_operation(seed_op)
    check(
        is_a(learner, pending, "coroutine"),
        "process_operation must be an async def: calling it must return a coroutine to await",
    )
    result = run_async(learner, pending)
    check(
        result == {"ok": True, "version": 1, "acks": 3},
        f"the seed's strong set returned {result!r}; expected "
        "{'ok': True, 'version': 1, 'acks': 3}",
    )
    copies = b_tool(learner, "b_copies")(service, "critical_business_data")
    replicas = b_replicas(B_NODES, "critical_business_data")
    want = {n: ([1, data] if n in replicas else None) for n in B_NODES}
    check(copies == want, f"after the set, the nodes' copies were {copies}; expected {want}")
    model = BModel(B_NODES)
    model.apply(["op", seed_op])
    steps = [
        b_get("critical_business_data"),
        b_get("critical_business_data", "eventual"),
        b_get("never-written"),
        b_get("never-written", "eventual"),
        b_set("second", [1, 2, 3]),
        b_set("critical_business_data", "replaced", "eventual"),
        b_get("critical_business_data"),
        ["op", {"type": "get", "key": "second"}],
        b_set("third", None),
        b_get("third"),
    ]
    b_run_checked(learner, service, model, steps, "strong and eventual sets and gets")


@case(
    "8.4",
    0.5,
    "A strong set or get must need a majority of the key's replicas to answer, else raise "
    "NotEnoughReplicasError; a refused set must write nothing and use no version; eventual "
    "operations need one replica; the service never marks a node down by itself",
    rules=("8.4-b", "8.4-p", "8.4-q", "8.4-r", "8.4-t", "8.4-w", "8.4-aa", "8.4-ak"),
    critical=True,
)
def test_8_4_quorum(learner):
    key = b_key_with(B_NODES, "acct:", ["n1", "n2", "n3"])
    service = b_service(learner)
    model = BModel(B_NODES)
    steps = [
        b_set(key, "v1"),
        ["fail", "n2"],
        b_set(key, "v2"),
        b_get(key),
        ["fail", "n3"],
        b_set(key, "refused"),
    ]
    b_run_checked(learner, service, model, steps, "quorum rules")
    copies = b_tool(learner, "b_copies")(service, key)
    check(
        copies == {n: model.data[n].get(key) for n in B_NODES},
        f"a strong set refused with 2 of its 3 replicas down left a trace: the nodes' copies "
        f"of the key became {copies}; a refused set must write nothing",
    )
    steps = [
        b_get(key),
        ["op", {"type": "set", "key": key, "value": "default is strong"}],
        b_set(key, "v3", "eventual"),
        b_get(key, "eventual"),
        ["fail", "n1"],
        b_set(key, "nobody", "eventual"),
        b_get(key, "eventual"),
        ["recover", "n2"],
        b_set(key, "refused again"),
        ["recover", "n3"],
        b_set(key, "v4"),
        ["recover", "n1"],
        b_get(key),
        b_set(key, "v5", replicas=1),
        ["fail", "n1"],
        b_set(key, "refused with replicas 1", replicas=1),
        b_get(key, replicas=2),
    ]
    b_run_checked(learner, service, model, steps, "quorum rules")
    copies = b_tool(learner, "b_copies")(service, key)
    check(
        copies == {n: model.data[n].get(key) for n in B_NODES},
        f"after the refused sets, the nodes' copies of the key were {copies}",
    )
    marked = learner.builtin("sorted", service.marked_down.value())
    check(
        marked == [],
        f"after nodes crashed, service.marked_down was {marked}: only failover (the monitor of "
        "exercise 8.5) marks nodes down, the service never does it itself",
    )


@case(
    "8.4",
    0.75,
    "A strong get must return the newest acknowledged write after nodes fail and come back "
    "(ask every contacted replica, keep the highest version, compared as a number) and must "
    "refuse rather than answer from a minority",
    rules=("8.4-v", "8.4-w", "8.4-x", "8.4-aj"),
    critical=True,
)
def test_8_4_read_your_writes(learner):
    key = b_key_with(B_NODES, "user:", ["n1", "n2", "n3", "n4", "n5"])
    service = b_service(learner)
    model = BModel(B_NODES)
    steps = [
        b_set(key, "v1"),
        ["fail", "n1"],
        b_set(key, "v2"),
        ["recover", "n1"],
        b_get(key),
        ["fail", "n2"],
        b_get(key),
        ["recover", "n2"],
        ["fail", "n1"],
        b_set(key, "v3"),
        ["recover", "n1"],
        ["fail", "n2"],
        ["fail", "n3"],
        ["fail", "n4"],
        b_get(key),
    ]
    b_run_checked(learner, service, model, steps, "reads after a failure")
    # Versions 9 and 10: "9" > "10" as strings.
    other = b_service(learner)
    model = BModel(B_NODES)
    steps = [b_set(f"filler{i}", i) for i in range(8)]
    steps += [
        b_set(key, "version 9"),
        ["fail", "n1"],
        b_set(key, "version 10"),
        b_set(key, "version 11"),
        ["recover", "n1"],
        ["fail", "n2"],
        b_get(key),
        ["recover", "n2"],
        ["fail", "n3"],
        b_get(key),
    ]
    b_run_checked(learner, other, model, steps, "reads across versions 9, 10 and 11")
    # The newest copy on the third replica only: a strong get that stops after a majority of
    # answers (n1, n2) misses it.
    ledger = b_key_with(B_NODES, "ledger:", ["n1", "n2", "n3"])
    steps = [
        b_set(ledger, "v1"),
        ["fail", "n1"],
        ["fail", "n2"],
        b_set(ledger, "only on n3", "eventual"),
        ["recover", "n1"],
        ["recover", "n2"],
        b_get(ledger),
    ]
    b_run_checked(
        learner,
        b_service(learner),
        BModel(B_NODES),
        steps,
        "a strong get must read every contacted replica, not stop at a majority",
    )


@case(
    "8.4",
    0.5,
    "An eventual get must return the copy of the first replica that answers; anti_entropy() "
    "must copy the newest reachable version of every key to every reachable replica and "
    "return the number of copies written; a get never writes anything",
    rules=("8.4-z", "8.4-ab", "8.4-ac", "8.4-ad", "8.4-ae", "8.4-al"),
)
def test_8_4_eventual(learner):
    key = b_key_with(B_NODES, "session:", ["n1", "n2", "n3"])
    late = b_key_with(B_NODES, "cart:", ["n1", "n2", "n3"])
    far = b_key_with(B_NODES, "other:", ["n4", "n5", "n2"])
    service = b_service(learner)
    model = BModel(B_NODES)
    steps = [
        b_set(key, "v1", "eventual"),
        b_set(far, {"f": 1}, "eventual"),
        ["fail", "n1"],
        b_set(key, "v2", "eventual"),
        b_set(late, ["first copy"], "eventual"),
        ["recover", "n1"],
        b_get(key, "eventual"),
        b_get(late, "eventual"),
        b_get(key),
    ]
    b_run_checked(learner, service, model, steps, "eventual consistency")
    for k in (key, late):
        copies = b_tool(learner, "b_copies")(service, k)
        want = {n: model.data[n].get(k) for n in B_NODES}
        check(
            copies == want,
            f"gets of {k!r} changed what the nodes hold (a get never writes anything, not even "
            f"to repair a stale replica): the copies were {copies}; expected {want}",
        )
    steps = [
        ["fail", "n1"],
        b_get(key, "eventual"),
        ["fail", "n5"],
        b_set(far, {"f": 2}, "eventual"),
        ["anti_entropy"],
        ["recover", "n1"],
        ["recover", "n5"],
        b_get(key, "eventual"),
        ["anti_entropy"],
        ["anti_entropy"],
        b_get(key, "eventual"),
        b_get(late, "eventual"),
        b_get(far, "eventual"),
    ]
    b_run_checked(learner, service, model, steps, "eventual consistency")
    for k in (key, late, far):
        copies = b_tool(learner, "b_copies")(service, k)
        want = {n: model.data[n].get(k) for n in B_NODES}
        check(copies == want, f"after anti_entropy(), the copies of {k!r} were {copies}")


@case(
    "8.4",
    0.5,
    "The service must never contact a node in marked_down (no request at all); "
    "resync_node(node_id) must copy the newest reachable versions onto that node only",
    rules=("8.4-a", "8.4-af", "8.4-ag", "8.4-ah", "8.4-ai"),
)
def test_8_4_marked_down(learner):
    keys = [b_key_with(B_NODES, f"p{j}:", ["n1", "n2"]) for j in range(4)]
    others = [b_key_with(B_NODES, f"q{j}:", ["n3", "n4", "n5"]) for j in range(2)]
    service = b_service(learner)
    model = BModel(B_NODES)
    b_run_checked(learner, service, model, [b_set(k, "old") for k in keys], "setting up")
    before = b_tool(learner, "b_requests")(service)["n1"]
    steps = [["mark_down", "n1"]]
    steps += [b_set(k, "new") for k in keys[:3]]
    steps += [b_get(k) for k in keys] + [b_get(k, "eventual") for k in keys]
    steps += [b_set(k, "x") for k in others] + [["anti_entropy"]]
    b_run_checked(learner, service, model, steps, "with n1 marked down (but up)")
    after = b_tool(learner, "b_requests")(service)["n1"]
    check(
        after == before,
        f"n1 was marked down, and still received {after - before} requests from "
        "process_operation() and anti_entropy()",
    )
    b_run_checked(learner, service, model, [["resync", "n1"]], "resync_node('n1')")
    for k in keys + others:
        copies = b_tool(learner, "b_copies")(service, k)
        want = {n: model.data[n].get(k) for n in B_NODES}
        check(copies == want, f"after resync_node('n1'), the copies of {k!r} were {copies}")
    b_run_checked(
        learner,
        service,
        model,
        [["mark_up", "n1"], ["fail", "n2"], ["fail", "n3"], b_get(keys[0], "eventual")]
        + [["resync", "n2"]],
        "after n1 was resynchronised and marked up",
    )
    raises(lambda: service.resync_node("n9"), "KeyError", "resync_node of an unknown node")


def b_chaos_steps(seed: int, length: int):
    rng = random.Random(seed)
    up = set(B_NODES)
    steps = []
    for i in range(length):
        if rng.random() < 0.12:
            down = sorted(set(B_NODES) - up)
            if down and (rng.random() < 0.45 or len(down) >= 4):
                node = rng.choice(down)
                up.add(node)
                steps.append(["recover", node])
            else:
                node = rng.choice(sorted(up))
                up.discard(node)
                steps.append(["fail", node])
        if rng.random() < 0.75:
            key = f"s{rng.randrange(8)}"
            consistency = "strong"
        else:
            key = f"e{rng.randrange(4)}"
            consistency = "eventual"
        if rng.random() < 0.45:
            steps.append(b_set(key, f"{key}@{i}", consistency))
        else:
            steps.append(b_get(key, consistency))
    steps += [["recover", n] for n in B_NODES] + [["anti_entropy"]]
    steps += [b_get(f"s{j}") for j in range(8)]
    steps += [b_get(f"e{j}", "eventual") for j in range(4)]
    return steps


@case(
    "8.4",
    0.75,
    "Chaos: with nodes crashing and restarting at random during strong and eventual "
    "operations, no acknowledged strong write may be lost, a refused write must leave no "
    "trace, and anti_entropy() after recovery must make every replica converge",
    rules=("8.4-aj", "8.4-ak", "8.4-al"),
    critical=True,
)
def test_8_4_chaos(learner):
    for seed in (84, 2024):
        steps = b_chaos_steps(seed, 350)
        service = b_service(learner)
        model = BModel(B_NODES)
        b_run_checked(learner, service, model, steps, f"chaos run (seed {seed})")
        for j in range(4):
            copies = b_tool(learner, "b_copies")(service, f"e{j}")
            want = {n: model.data[n].get(f"e{j}") for n in B_NODES}
            check(
                copies == want,
                f"after every node came back and anti_entropy() ran, the copies of 'e{j}' "
                f"were {copies}; expected {want}",
            )


@case(
    "8.4",
    0.5,
    "process_operation() must be as fast as the reference design: at least a quarter of the "
    "reference's operations per second on the same workload, in the same run",
    rules=("8.4-am",),
)
def test_8_4_throughput(learner, reference):
    # Best of B_SPEED_ROUNDS batches each, the two workers alternating, timed here.
    best = {"mine": 0.0, "ref": 0.0}
    bridges = {"mine": learner, "ref": reference}
    for round_number in range(B_SPEED_ROUNDS):
        seed = random.SystemRandom().getrandbits(48)  # the same workload for both, unforeseeable
        order = ("mine", "ref") if round_number % 2 == 0 else ("ref", "mine")
        for who in order:
            rate, problem = b_speed(bridges[who], seed)
            speed_answers_right(who, "service", problem)
            best[who] = max(best[who], rate)
    ratio = best["mine"] / best["ref"]
    check(
        ratio >= 0.25,
        f"your service ran {best['mine']:,.0f} operations/s and the reference "
        f"{best['ref']:,.0f} operations/s on the same workload in the same run (ratio "
        f"{ratio:.2f}; at least 0.25 needed). Does each operation touch only its key's replicas?",
    )


# =========================================================================== exercise 8.5


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


# =========================================================================== part C helpers
C_TOL = 1e-9

# The workload of section 6, exactly as the notebook's given cell builds it (build.py checks
# that both give the same trace). It runs here, for the grader's own LRU, and in the worker.
C_WORKLOAD = r"""
import itertools
import random
from typing import List, Optional, Tuple


def cache_workload(seed: int = 8) -> List[Tuple[str, Optional[float]]]:
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1 / rank for rank in range(1, 1001)))
    trace: List[Tuple[str, Optional[float]]] = []
    scans = 0
    for _phase in range(4):
        order = [f"item-{i:04d}" for i in range(1000)]
        rng.shuffle(order)
        for n in range(5000):
            if n % 40 == 0:
                trace.append((f"config-{rng.randrange(10)}", 0.9))
            else:
                trace.append((rng.choices(order, cum_weights=cumulative)[0], None))
            if n % 500 == 499:
                trace.extend((f"scan-{scans}-{j}", 0.0) for j in range(150))
                scans += 1
    return trace
"""

C_STATS_KEYS = {"hits", "misses", "hit_rate", "evictions", "size", "capacity"}
C_SUMMARY_KEYS = {"count", "errors", "error_rate", "throughput", "p50", "p95", "p99"}
C_SNAPSHOT_KEYS = C_SUMMARY_KEYS | {"time", "window_seconds", "tenants", "operations"}
C_MARGIN = 0.03
C_UNSEEN_SEED = 20240

C_TOOLS = r'''
def c_replay(cache, workload_source, seed):
    import hashlib
    import json

    namespace = {}
    exec(workload_source, namespace)
    trace = namespace["cache_workload"](seed)
    missing = object()
    wrong = biggest = 0
    hits = []  # "1" for a request that hit, "0" for a miss
    for key, hint in trace:
        value = cache.get(key, missing)
        if value is missing:
            cache.put(key, "value of " + key, predicted_access_probability=hint)
            hits.append("0")
        elif value == "value of " + key:
            hits.append("1")
        else:
            wrong += 1
            hits.append("0")
        biggest = max(biggest, len(cache))
    digest = hashlib.sha256(json.dumps(trace).encode()).hexdigest()
    return {"requests": len(trace), "hits": "".join(hits), "wrong": wrong,
            "max_size": biggest, "stats": cache.stats(), "digest": digest}


def c_churn(cache, ops, capacity):
    """Run puts, gets and invalidates; observe what any correct policy must guarantee."""
    log = []
    for op, key in ops:
        before_len = len(cache)
        before_in = key in cache
        before_ev = cache.stats()["evictions"]
        if op == "put":
            result = cache.put(key, "v:" + key)
            after_get_ok = key in cache
        elif op == "get":
            result = cache.get(key, "absent")
            result = result if result in ("absent", "v:" + key) else "WRONG"
            after_get_ok = None
        else:
            result = cache.invalidate(key)
            after_get_ok = key in cache
        log.append([op, key, before_len, before_in, before_ev, len(cache),
                    cache.stats()["evictions"], result, after_get_ok])
    return log


def c_recorder(log, name, fail=False):
    def callback(snap):
        log.append([name, snap["count"], snap["time"], sorted(snap)])
        if fail:
            raise RuntimeError("a broken subscriber")
    return callback


class CFakeCache:
    def __init__(self, capacity):
        self.capacity = capacity
        self.calls = []

    def stats(self):
        return {"hits": 0, "misses": 0, "hit_rate": 0.0, "evictions": 0, "size": 0,
                "capacity": self.capacity}

    def resize(self, capacity):
        self.calls.append(capacity)
        self.capacity = capacity


def c_fake_cache(capacity):
    return CFakeCache(capacity)
'''


def c_tool(learner, name):
    return worker_function(learner, C_TOOLS, name)


def c_trace(seed):
    namespace = {}
    exec(C_WORKLOAD, namespace)
    return namespace["cache_workload"](seed)


def c_lru_hits(trace, capacity):
    """The grader's own LRU, replayed here: how many requests hit."""
    cache = OrderedDict()
    hits = 0
    for key, _hint in trace:
        if key in cache:
            cache.move_to_end(key)
            hits += 1
            continue
        if len(cache) >= capacity:
            cache.popitem(last=False)
        cache[key] = True
    return hits


def c_overfull(trace, hits, capacity):
    """The first request at which a cache of ``capacity`` entries could not have held every key
    that ``hits`` says it held (a hit needs its key kept since that key's previous request), or
    None when some cache of that size could have hit exactly there. Checked here: a replay's hit
    count from the worker is only believed when a real cache could have produced it."""
    if not isinstance(hits, str) or len(hits) != len(trace) or set(hits) - {"0", "1"}:
        return 0
    kept = [0] * (len(trace) + 1)  # +1 where a key must start being kept, -1 where it may go
    last = {}
    for index, ((key, _hint), hit) in enumerate(zip(trace, hits, strict=True)):
        if hit == "1":
            if key not in last:
                return index
            kept[last[key]] += 1
            kept[index] -= 1
        last[key] = index
    held = 0
    for index in range(len(trace)):
        held += kept[index]
        if held > capacity:
            return index
    return None


def c_close(a, b):
    return (
        isinstance(a, (int, float))
        and not isinstance(a, bool)
        and abs(a - b) <= C_TOL * max(1.0, abs(b))
    )


def c_nearest_rank(values, p):
    s = sorted(values)
    return s[math.ceil(p / 100 * len(s)) - 1]


def c_in(learner, cache, key):
    return in_worker(learner, "lambda c, k: k in c", cache, key)


# =========================================================================== exercise 8.6
@case(
    "8.6",
    0.25,
    "SmartCacheManager.get() must return the very object put() stored (default for a missing "
    "key); put(key=..., value=..., predicted_access_probability=0.89) must work as the seed "
    "writes it; replacing a value must not evict; the constructor accepts a clock",
    rules=("8.6-b", "8.6-c", "8.6-g", "8.6-h", "8.6-q", "8.6-t"),
)
def test_8_6_basics(learner):
    cache = learner.SmartCacheManager(4, clock=settable_clock(learner))
    check(
        is_a(learner, cache, "SmartCacheManager"),
        "SmartCacheManager(4, clock=...) must build a cache",
    )
    config = learner.keep({"feature_flags": {"new_checkout": True}, "timeout_s": 30})
    cache.put(key="frequently_accessed_config", value=config, predicted_access_probability=0.89)
    check(
        learner.same(cache.get.live("frequently_accessed_config"), config),
        "get() did not return the very object put() stored (a copy, or another value)",
    )
    check(cache.get("missing") is None, "get() of a missing key must return None by default")
    check(cache.get("missing", 7) == 7, "get(key, default) must return default for a missing key")
    check(cache.put("a", [1]) is None, "put() must return None")
    cache.put("a", [2], predicted_access_probability=0.5)
    check(cache.get("a") == [2], "put() on an existing key must replace its value")
    check(len(cache) == 2, f"after two keys, len() was {len(cache)}")
    check(c_in(learner, cache, "a") is True, "`'a' in cache` must be True for a cached key")
    check(c_in(learner, cache, "zzz") is False, "`in` must be False for a key never put")
    stats = cache.stats()
    check(
        isinstance(stats, dict) and stats.get("evictions") == 0,
        f"replacing a value must not evict: stats() {stats}",
    )


@case(
    "8.6",
    0.5,
    "SmartCacheManager must never hold more than capacity entries; a new key in a full cache "
    "evicts exactly one other entry, a new key in a cache with room or a replaced key evicts "
    "none, and the key just put is always cached",
    rules=("8.6-h", "8.6-i", "8.6-j"),
)
def test_8_6_capacity(learner):
    rng = random.Random(86)
    keys = [f"k{i}" for i in range(25)]
    ops = []
    for _ in range(400):
        roll = rng.random()
        op = "put" if roll < 0.55 else ("get" if roll < 0.9 else "invalidate")
        ops.append([op, rng.choice(keys[:8]) if rng.random() < 0.5 else rng.choice(keys)])
    for capacity in (1, 5):
        cache = learner.SmartCacheManager(capacity)
        log = c_tool(learner, "c_churn")(cache, ops, capacity)
        for step, row in enumerate(log):
            op, key, before_len, before_in, before_ev, after_len, after_ev, result, after_in = row
            where = f"capacity {capacity}, operation {step + 1} ({op} {key!r})"
            check(after_len <= capacity, f"{where}: the cache held {after_len} entries")
            if op == "put":
                check(after_in is True, f"{where}: the key just put was not in the cache")
                if before_in:
                    want = (before_len, before_ev)
                elif before_len >= capacity:
                    want = (capacity, before_ev + 1)
                else:
                    want = (before_len + 1, before_ev)
                check(
                    (after_len, after_ev) == want,
                    f"{where}: len and evictions went from {(before_len, before_ev)} to "
                    f"{(after_len, after_ev)}; expected {want}",
                )
            elif op == "get":
                check(result != "WRONG", f"{where}: get() returned a value never put there")
                check(
                    (after_len, after_ev) == (before_len, before_ev),
                    f"{where}: get() changed len or evictions",
                )
    capacity = 300
    cache = learner.SmartCacheManager(capacity)
    ops = [["put", f"big{i}"] for i in range(capacity + 5)]
    log = c_tool(learner, "c_churn")(cache, ops, capacity)
    lens = [row[5] for row in log]
    evictions = log[-1][6]
    check(
        max(lens) == capacity and lens[-1] == capacity and evictions == 5,
        f"capacity {capacity}, {capacity + 5} new keys put: the cache held up to {max(lens)} "
        f"entries and evicted {evictions}; expected at most {capacity} and 5 evictions",
    )


@case(
    "8.6",
    0.5,
    "SmartCacheManager.stats() must count exactly: hits and misses of get() only, hit_rate = "
    "hits / (hits + misses) (0.0 before any get), evictions, size = len(), capacity",
    rules=("8.6-d", "8.6-o", "8.6-p", "8.6-q"),
)
def test_8_6_stats(learner):
    cache = learner.SmartCacheManager(10)
    fresh = cache.stats()
    want = {"hits": 0, "misses": 0, "hit_rate": 0.0, "evictions": 0, "size": 0, "capacity": 10}
    check(
        fresh == want and type(fresh.get("hit_rate")) is float,
        f"a new cache's stats() was {fresh}; expected {want} (hit_rate the float 0.0)",
    )
    for i in range(6):
        cache.put(f"k{i}", i)
    got = [cache.get(k) for k in ("k0", "k1", "x", "k2", "y", "k0", "z")]
    check(got == [0, 1, None, 2, None, 0, None], f"get() returned {got}")
    c_in(learner, cache, "k3")
    len(cache)
    cache.invalidate("k5")
    cache.put("k0", 100)
    stats = cache.stats()
    want = {"hits": 4, "misses": 3, "hit_rate": 4 / 7, "evictions": 0, "size": 5, "capacity": 10}
    check(
        isinstance(stats, dict)
        and set(stats) == C_STATS_KEYS
        and all(stats[k] == want[k] for k in C_STATS_KEYS - {"hit_rate"})
        and c_close(stats["hit_rate"], 4 / 7),
        f"after 4 hits and 3 misses (plus a put, an invalidate, `in` and len()) stats() was "
        f"{stats}; expected {want}",
    )
    small = learner.SmartCacheManager(3)
    returned = []
    for i in range(12):
        small.put(f"s{i}", i)
        returned.append(small.get(f"s{(i * 7) % (i + 1)}", "miss"))
    hits = sum(1 for r in returned if r != "miss")
    stats = small.stats()
    check(
        isinstance(stats, dict)
        and (stats.get("hits"), stats.get("misses"), stats.get("evictions"), stats.get("size"))
        == (hits, 12 - hits, 9, 3)
        and c_close(stats.get("hit_rate"), hits / 12),
        f"12 puts of new keys into a cache of 3 and 12 gets of which {hits} returned a value: "
        f"stats() was {stats}; expected hits {hits}, misses {12 - hits}, evictions 9, size 3",
    )


@case(
    "8.6",
    0.25,
    "SmartCacheManager.put() must accept None or a number in [0, 1] as "
    "predicted_access_probability and raise ValueError (changing nothing) for anything else: "
    "a bool, NaN, a str, a value outside [0, 1]",
    rules=("8.6-e", "8.6-f"),
)
def test_8_6_probability(learner):
    cache = learner.SmartCacheManager(3)
    for i, p in enumerate([None, 0, 1, 0.0, 1.0, 0.89]):
        cache.put(f"ok{i}", i, predicted_access_probability=p)
        check(cache.get(f"ok{i}") == i, f"put with predicted_access_probability={p!r} failed")
    before = (cache.stats(), len(cache), [c_in(learner, cache, f"ok{i}") for i in range(6)])
    bad_values = [-0.1, 1.5, float("nan"), float("inf"), "0.5", True, False, [0.5]]
    for bad in bad_values:
        raises(
            lambda bad=bad: cache.put("new", "x", predicted_access_probability=bad),
            "ValueError",
            f"put('new', ..., predicted_access_probability={bad!r}) into a full cache",
        )
        raises(
            lambda bad=bad: cache.put("ok5", "x", predicted_access_probability=bad),
            "ValueError",
            f"put() of a cached key with predicted_access_probability={bad!r}",
        )
    after = (cache.stats(), len(cache), [c_in(learner, cache, f"ok{i}") for i in range(6)])
    check(after == before, "a rejected put() changed the cache (entries or stats)")
    check(cache.get("ok5") == 5, "a rejected put() replaced the value")


@case(
    "8.6",
    0.25,
    "SmartCacheManager.invalidate(key) must remove the key and return True, or return False "
    "when it was not cached; it is not an eviction, a hit or a miss",
    rules=("8.6-k", "8.6-l"),
)
def test_8_6_invalidate(learner):
    cache = learner.SmartCacheManager(5)
    cache.put("a", 1)
    cache.put("b", 2)
    before = cache.stats()
    first = cache.invalidate("a")
    second = cache.invalidate("a")
    never = cache.invalidate("never")
    check(
        (first, second, never) == (True, False, False),
        f"invalidate returned {first, second, never}",
    )
    after = cache.stats()
    check(
        isinstance(after, dict)
        and {k: after.get(k) for k in ("hits", "misses", "evictions")}
        == {k: before.get(k) for k in ("hits", "misses", "evictions")}
        and after.get("size") == 1,
        f"stats() went from {before} to {after} after invalidating one of two keys",
    )
    check(cache.get("a", "gone") == "gone", "an invalidated key was still returned by get()")
    check(cache.get("b") == 2, "invalidate('a') disturbed another key")


@case(
    "8.6",
    0.25,
    "SmartCacheManager(capacity) and resize(capacity) must raise ValueError for a capacity that "
    "is not an int of at least 1; resize() must evict down to the new capacity (counting "
    "evictions) and keep every entry when growing",
    rules=("8.6-a", "8.6-m", "8.6-n", "8.6-p"),
)
def test_8_6_resize(learner):
    for bad in (0, -1, 2.5, True, "10", None):
        raises(lambda bad=bad: learner.SmartCacheManager(bad), "ValueError", f"capacity {bad!r}")
    cache = learner.SmartCacheManager(10)
    for i in range(10):
        cache.put(f"k{i}", i)
    for bad in (0, -3, 1.5, False):
        raises(lambda bad=bad: cache.resize(bad), "ValueError", f"resize({bad!r})")
    stats = cache.stats()
    check(
        (stats["capacity"], stats["size"]) == (10, 10),
        f"a rejected resize() changed the cache: {stats}",
    )
    cache.resize(4)
    stats = cache.stats()
    kept = [i for i in range(10) if c_in(learner, cache, f"k{i}")]
    check(
        (stats["capacity"], stats["size"], stats["evictions"], len(kept)) == (4, 4, 6, 4),
        f"after resize(4) of a full cache of 10: stats() {stats}, keys still cached {kept}",
    )
    check(
        all(cache.get(f"k{i}") == i for i in kept),
        "after resize() the remaining keys lost their values",
    )
    cache.resize(20)
    for i in range(100, 116):
        cache.put(f"k{i}", i)
    stats = cache.stats()
    check(
        (stats["capacity"], stats["size"], stats["evictions"]) == (20, 20, 6)
        and all(c_in(learner, cache, f"k{i}") for i in kept),
        f"after resize(20) and 16 more keys: stats() {stats} (growing must keep every entry "
        "and leave room for 16 more without evicting)",
    )


def c_beats_lru(learner, seed, which):
    trace = c_trace(seed)
    lru = c_lru_hits(trace, 100)
    cache = learner.SmartCacheManager(100)
    run = c_tool(learner, "c_replay")(cache, C_WORKLOAD, seed)
    check(
        run["digest"] == hashlib.sha256(json.dumps(trace).encode()).hexdigest(),
        "internal: the workload differs between the grader and the worker",
    )
    n = len(trace)
    size = len(cache)  # asked over the bridge, not computed by grader code in the worker
    stats = run["stats"]
    biggest = max(run["max_size"], size)
    check(
        biggest <= 100 and isinstance(stats, dict) and stats.get("size") == size,
        f"on {which}, the cache held up to {biggest} entries with capacity 100"
        if biggest > 100
        else f"on {which}, stats() says size {stats.get('size')!r} but len() is {size}",
    )
    check(run["wrong"] == 0, f"on {which}, get() returned {run['wrong']} values never stored")
    overfull = c_overfull(trace, run["hits"], 100)
    check(
        overfull is None,
        f"on {which}, the replay's hits could not come from a cache of 100 entries (at request "
        f"{overfull}, more keys had to be kept than fit)",
    )
    hits = run["hits"].count("1")
    check(
        isinstance(stats, dict) and (stats.get("hits"), stats.get("misses")) == (hits, n - hits),
        f"on {which}, stats() counted hits/misses {(stats.get('hits'), stats.get('misses'))} "
        f"but the replay saw {hits} hits in {n} reads",
    )
    mine, theirs = hits / n, lru / n
    check(
        mine >= theirs + C_MARGIN,
        f"on {which}: your hit rate {mine:.4f}, LRU's {theirs:.4f} (capacity 100, "
        f"{n:,} requests); at least {theirs + C_MARGIN:.4f} is needed",
    )


@case(
    "8.6",
    0.5,
    "SmartCacheManager(100) must beat LRU(100) by at least 0.03 in hit rate on "
    "cache_workload(8), replayed cache-aside, within capacity",
    rules=("8.6-j", "8.6-r", "8.6-s"),
    critical=True,
)
def test_8_6_beats_lru_stated(learner):
    c_beats_lru(learner, 8, "cache_workload(8)")


@case(
    "8.6",
    0.5,
    "SmartCacheManager(100) must beat LRU(100) by at least 0.03 in hit rate on the same kind "
    "of workload with a seed you have not seen",
    rules=("8.6-j", "8.6-r", "8.6-s"),
    critical=True,
)
def test_8_6_beats_lru_unseen(learner):
    c_beats_lru(learner, C_UNSEEN_SEED, "a workload with an unseen seed")


# =========================================================================== exercise 8.7
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


# =========================================================================== exercise 8.8
SEED_METRICS = {"latency_p99": 15.2, "cache_hit_rate": 0.72, "memory_usage": 0.85}


def c_action(rule, metric, value, threshold, action, old=None, new=None):
    return {
        "rule": rule,
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "action": action,
        "old_capacity": old,
        "new_capacity": new,
    }


def c_fake(learner, capacity):
    return c_tool(learner, "c_fake_cache")(capacity)


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


# =========================================================================== exercise 8.9
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
