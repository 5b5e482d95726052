"""Module 8's hidden suite (the master challenge, ContextMaster): what several exercises share.
Instructor-only: never released to learners.

The suite is this folder: one file per exercise, in the notebook's order
(``test_8_1_tenants.py`` to ``test_8_9_master.py``), each with the helpers only it uses, and
this module, which the grader loads as ``_support`` before them (``academy.grading.plugin``):
the exercise files import its helpers, and its ``reference`` fixture is theirs as the
``learner`` fixture is.

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
against what the suite computes; a helper that runs in the worker returns what it observed,
and the verdict is reached here. Exercise 8.5's monitor watches a grader-written test double
of the service (``GraderCluster``), not the reference.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from academy.bridge.client import Learner, Remote, expr
from academy.grading.cases import check, in_worker, worker_function

SOURCE_NOTEBOOK = Path(__file__).resolve().parents[2] / "curriculum/module8/module8_master.ipynb"


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


# =========================================================================== part A: 8.1 to 8.5
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


def a_said(outcome):
    """How the learner's code answered, in words, for a check's detail."""
    if "returned" in outcome:
        return f"it returned {outcome['returned']!r}"
    return f"it raised {outcome['raised']}: {outcome['message'][:160]}"


def a_sec(learner, user, tenant, roles):
    return learner.SecurityContext(user, tenant, tuple(roles))


# =========================================================================== part B: 8.4, 8.5

B_NODES = ["n1", "n2", "n3", "n4", "n5"]


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


# =========================================================================== part C: 8.6 to 8.9
C_TOL = 1e-9

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


def c_close(a, b):
    return (
        isinstance(a, (int, float))
        and not isinstance(a, bool)
        and abs(a - b) <= C_TOL * max(1.0, abs(b))
    )


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
