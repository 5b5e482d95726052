"""Module 6's hidden suite, exercise 6.2: Roll back and recover. Instructor-only: never released to
learners. What several exercises share is in ``_support.py``.
"""

from __future__ import annotations

import json
import re

from _support import (
    CLEAN_ARGS,
    KEPT,
    LOAD,
    ORDERS,
    PIPELINE,
    entry,
    run,
    run_fails,
    status,
    step,
    user_data,
    write_recipe,
    writers,
)

from academy.bridge.client import LearnerException, expr
from academy.grading.cases import case, check, raises

# A scriptlet built in the worker (not the learner's): it writes params['writes'] into the
# context, then fails by returning 3. What a crash in the middle of a step leaves behind.
CORRUPT = expr(
    "type('Corrupt', (__import__('framework0').BaseScriptlet,), {'run': "
    "lambda self, ctx, params: [ctx.set(k, v, who=params['_step']) "
    "for k, v in params['writes'].items()] and 3})"
)


# =========================================================================== exercise 6.2
@case(
    "6.2",
    0.75,
    "rollback_plan() must find the last entry that sets a run.steps.<name>.status key to 'ok' "
    "and return (its step, the before of each non-bookkeeping key's first entry after it)",
    rules=("6.2-a", "6.2-c", "6.2-d", "6.2-e", "6.2-f"),
)
def test_6_2_rollback_plan(learner):
    history = [
        entry("a", "x", None, 1),
        status("a", "ok"),
        entry("b", "y", None, "b1"),
        entry("b", "x", 1, 2),
        status("b", "ok"),
        entry("c", "x", 2, 3),
        entry("c", "z", None, [1]),
        entry("c", "job.status", "queued", "ok"),  # 'ok', but not a step's status key
        entry("runner", "run.steps.c.note", None, "ok"),  # nor is this one
        entry("c", "x", 3, 4),
        entry("runner", "run.error", None, {"step": "c"}),
        entry("c", "rollback.restored", None, ["q"]),
        entry("c", "error.type", None, "boom"),
        entry("c", "y", "b1", "c1"),
        status("c", "failed"),
        entry("c", "run_log", None, "not bookkeeping: the prefix is 'run.'"),
    ]
    got = learner.rollback_plan(history)
    check(
        isinstance(got, tuple) and len(got) == 2, f"it must return a (step, values) tuple: {got!r}"
    )
    good, values = got
    check(good == "b", f"the good step was {good!r}; b is the last step that finished ok")
    expected = {"x": 2, "z": None, "job.status": "queued", "y": "b1", "run_log": None}
    check(values == expected, f"the values were {values!r}")
    check(
        list(values) == ["x", "z", "job.status", "y", "run_log"],
        f"the keys must follow their first entries: {list(values)}",
    )


@case(
    "6.2",
    0.5,
    "rollback_plan() must honour to_step, roll back everything when no step finished ok, and "
    "raise ValueError naming a to_step that never finished ok",
    rules=("6.2-b", "6.2-g", "6.2-h"),
)
def test_6_2_rollback_plan_to_step_and_start(learner):
    history = [
        entry("a", "x", None, 1),
        status("a", "ok"),
        entry("b", "x", 1, 2),
        status("b", "ok"),
        entry("c", "x", 2, 3),
        entry("a", "x", 3, 5),  # a runs again (a second run on the same context) ...
        status("a", "ok"),  # ... and finishes ok again: its last 'ok' is the good point
        entry("c", "x", 5, 6),
    ]
    for to_step, expected in (("a", ("a", {"x": 5})), ("b", ("b", {"x": 2}))):
        got = learner.rollback_plan(history, to_step)
        check(got == expected, f"rollback_plan(history, {to_step!r}) returned {got!r}")
    start = [entry("prüfen", "x", None, 1), status("prüfen", "failed"), entry("prüfen", "y", 5, 6)]
    got = learner.rollback_plan(start)
    check(got == (None, {"x": None, "y": 5}), f"with no good point it returned {got!r}")
    cases = [
        (start, "prüfen"),  # it ran, but failed
        ([status("load_more", "ok"), entry("t", "x", 1, 2)], "load"),  # only 'load_more' did
        (history, "zz"),  # never ran
    ]
    for steps, to_step in cases:
        exc = raises(
            lambda steps=steps, to_step=to_step: learner.rollback_plan(steps, to_step),
            "ValueError",
            f"to_step {to_step!r} never finished ok",
        )
        check(
            re.search(rf"(?<!\w){re.escape(to_step)}(?!\w)", exc.message) is not None,
            f"to_step {to_step!r} never finished ok: the message must name it: {exc.message!r}",
        )


@case(
    "6.2",
    1.0,
    "RollbackScriptlet, run on the context of a failed run, must restore each key to its value "
    "at the last good step (sorted order, who = its step) and set rollback.restored and "
    "rollback.to_step",
    rules=("6.2-c", "6.2-i", "6.2-k", "6.2-l", "6.2-m"),
    critical=True,
)
def test_6_2_rollback_after_failed_run(learner, orders):
    path = write_recipe(
        orders,
        [
            LOAD,
            step("clean", "DataCleanerScriptlet", depends_on=["load"], args=CLEAN_ARGS),
            step(
                "crash",
                "Corrupt",
                depends_on=["clean"],
                args={"writes": {"data.clean": [], "zeta.partial": 1, "data.count": -1}},
            ),
        ],
    )
    ctx, exc = run_fails(learner, path, "StepFailedError", extra={"Corrupt": learner.make(CORRUPT)})
    check(ctx.get("data.clean") == [], "the test's failing step did not run as expected")
    undo = write_recipe(orders, [step("undo", "RollbackScriptlet")], "undo.yaml")
    run(learner, undo, ("RollbackScriptlet",), ctx=ctx)
    data = user_data(ctx)
    check(data.get("data.clean") == KEPT, f"data.clean was {data.get('data.clean')!r}")
    check(data.get("data.count") == 9, f"data.count was {data.get('data.count')!r}")
    check(
        "zeta.partial" in data and data["zeta.partial"] is None,
        "a key new after the good point must be set to None",
    )
    check(
        data.get("rollback.restored") == ["data.clean", "data.count", "zeta.partial"],
        f"rollback.restored was {data.get('rollback.restored')!r}",
    )
    check(
        data.get("rollback.to_step") == "clean",
        f"rollback.to_step was {data.get('rollback.to_step')!r}",
    )
    seen = [e["key"] for e in ctx.get_history() if e["step"] == "undo"]
    check(
        seen
        == ["data.clean", "data.count", "zeta.partial", "rollback.restored", "rollback.to_step"],
        f"the undo step set {seen!r}",
    )
    check(ctx.get("run.error", {}).get("step") == "crash", "run.* keys must never be rolled back")


@case(
    "6.2",
    0.5,
    "RollbackScriptlet must roll back to to_step within a run, and refuse to run "
    "(StepNotRunError) when to_step never finished ok",
    rules=("6.2-b", "6.2-j", "6.2-k", "6.2-l"),
)
def test_6_2_rollback_to_step(learner, orders):
    path = write_recipe(
        orders,
        [
            LOAD,
            step("clean", "DataCleanerScriptlet", depends_on=["load"], args=CLEAN_ARGS),
            step("undo", "RollbackScriptlet", depends_on=["clean"], args={"to_step": "load"}),
        ],
    )
    ctx = run(learner, path, PIPELINE + ("RollbackScriptlet",))
    data = user_data(ctx)
    check(
        data.get("data.raw") == ORDERS
        and all(
            data.get(k, "absent") is None
            for k in ("data.clean", "data.removed_count", "clean.stats")
        ),
        "after rolling back to 'load', clean's three keys must be None and data.raw unchanged",
    )
    check(
        data.get("rollback.to_step") == "load",
        f"rollback.to_step was {data.get('rollback.to_step')!r}",
    )
    path = write_recipe(
        orders,
        [LOAD, step("undo", "RollbackScriptlet", depends_on=["load"], args={"to_step": "clean"})],
        "never.yaml",
    )
    ctx, _ = run_fails(learner, path, "StepNotRunError", PIPELINE + ("RollbackScriptlet",))
    check(ctx.get("run.steps.undo.status") == "not_run", "the rollback step must be not_run")


def error_keys(ctx):
    return {k: v for k, v in ctx.to_dict().items() if k.startswith("error.")}


@case(
    "6.2",
    0.5,
    "ErrorRecoveryManager.handle_error() must return False for an unknown error type and "
    "record error.type, error.details, error.recovery_method, error.recovered and error.log "
    "(who='recovery')",
    rules=("6.2-n", "6.2-r", "6.2-s", "6.2-t", "6.2-u"),
)
def test_6_2_manager_records(learner):
    manager = learner.ErrorRecoveryManager()
    ctx = learner.Context()
    got = manager.handle_error(ctx, "disk_on_fire", {"where": "rack 3"})
    check(got is False, f"handle_error returned {got!r}")
    expected = {
        "error.type": "disk_on_fire",
        "error.details": {"where": "rack 3"},
        "error.recovery_method": None,
        "error.recovered": False,
        "error.log": [{"type": "disk_on_fire", "method": None, "recovered": False}],
    }
    check(error_keys(ctx) == expected, f"the error keys were {error_keys(ctx)!r}")
    seen = [(e["step"], e["key"]) for e in ctx.get_history()]
    check(
        seen == [("recovery", k) for k in expected],
        f"the history recorded (who, key) = {seen!r}",
    )
    got = manager.handle_error(ctx, "validation_failure", {"key": "app.port", "default": 80})
    check(got is True, "validation_failure with key and default must recover")
    log = ctx.get("error.log")
    check(
        log
        == [
            expected["error.log"][0],
            {"type": "validation_failure", "method": "use_default", "recovered": True},
        ],
        f"error.log was {log!r}",
    )


@case(
    "6.2",
    0.75,
    "the data_load_failure strategy must load the fallback file into data.raw, data.count, "
    "data.columns and data.source, and report False (without raising) when it cannot",
    rules=("6.2-n", "6.2-v", "6.2-w"),
)
def test_6_2_manager_data_load(learner, scratch):
    backup = [{"id": 1, "v": "a"}, {"id": 2, "w": 2.5}]
    (scratch / "backup.json").write_text(json.dumps(backup), encoding="utf-8")
    manager = learner.ErrorRecoveryManager()
    ctx = learner.Context()
    fallback = str(scratch / "backup.json")
    check(
        manager.handle_error(ctx, "data_load_failure", {"fallback": fallback}) is True,
        "loading an existing fallback must recover",
    )
    data = ctx.to_dict()
    check(
        data.get("data.raw") == backup and data.get("data.count") == 2,
        f"data.raw was {data.get('data.raw')!r}",
    )
    check(
        data.get("data.columns") == ["id", "v", "w"],
        f"data.columns was {data.get('data.columns')!r}",
    )
    check(
        data.get("data.source") == {"path": fallback, "format": "json"},
        f"data.source was {data.get('data.source')!r}",
    )
    check(data.get("error.recovery_method") == "fallback_source", "error.recovery_method")
    who = writers(ctx.get_history())
    check(who.get("data.raw") == {"recovery"}, f"data.raw was written by {who.get('data.raw')}")

    (scratch / "rows.txt").write_text("a,b\n1,x\n", encoding="utf-8")
    other = learner.Context()
    details = {"fallback": str(scratch / "rows.txt"), "format": "csv"}
    check(
        manager.handle_error(other, "data_load_failure", details) is True,
        "a format given in the details",
    )
    check(
        other.get("data.raw") == [{"a": 1, "b": "x"}],
        "the fallback's format must come from the details",
    )
    for details in ({"fallback": str(scratch / "absent.json")}, {}):
        ctx = learner.Context()
        got = manager.handle_error(ctx, "data_load_failure", details)
        check(
            got is False and ctx.get("error.recovered") is False,
            f"with details {details!r} it returned {got!r}",
        )
        check("data.raw" not in ctx.keys(), f"with details {details!r} data.raw must not be set")


@case(
    "6.2",
    0.75,
    "the processing_error strategy must roll back (True when it restored a key), "
    "validation_failure needs key and default, and a strategy that raises or returns "
    "anything but True has not recovered",
    rules=("6.2-o", "6.2-p", "6.2-q", "6.2-x", "6.2-y", "6.2-z", "6.2-aa"),
)
def test_6_2_manager_processing_and_validation(learner, orders):
    path = write_recipe(
        orders,
        [LOAD, step("crash", "Corrupt", depends_on=["load"], args={"writes": {"data.raw": []}})],
    )
    ctx, _ = run_fails(learner, path, "StepFailedError", extra={"Corrupt": learner.make(CORRUPT)})
    manager = learner.ErrorRecoveryManager()
    check(
        manager.handle_error(ctx, "processing_error", {}) is True, "processing_error must recover"
    )
    check(ctx.get("data.raw") == ORDERS, "processing_error must restore data.raw")
    check(
        ctx.get("error.recovery_method") == "rollback", "error.recovery_method must be 'rollback'"
    )
    check(
        writers(ctx.get_history()).get("data.raw") == {"load", "crash", "recovery"},
        "the restore must be written with who='recovery'",
    )
    clean = learner.Context()
    clean.set("run.steps.a.status", "ok", who="runner")
    check(
        manager.handle_error(clean, "processing_error", {}) is False, "nothing to roll back: False"
    )

    ctx = learner.Context()
    check(
        manager.handle_error(ctx, "validation_failure", {"key": "k"}) is False, "no default: False"
    )
    check("k" not in ctx.keys(), "without a default, nothing may be set")
    try:  # the strategy itself, as the notebook states it: False, not an error
        got = manager._recover_validation(ctx, {"default": 5})
    except LearnerException as exc:
        got = f"an exception ({exc.type})"
    check(
        got is False,
        f"_recover_validation with a default but no key must return False; it gave {got!r}",
    )
    check(
        manager.handle_error(ctx, "validation_failure", {"key": "k", "default": None}) is True,
        "a default of None is still a default",
    )
    check("k" in ctx.keys() and ctx.get("k") is None, "key k must be set to None")

    strategies = manager.recovery_strategies.value()
    check(
        isinstance(strategies, dict)
        and set(strategies) == {"data_load_failure", "processing_error", "validation_failure"},
        "recovery_strategies must hold exactly the three strategies",
    )
    manager.recovery_strategies = {
        **strategies,
        "processing_error": learner.make(expr("lambda ctx, details: 1 / 0")),
        "validation_failure": learner.make(expr("lambda ctx, details: 'yes'")),
    }
    ctx = learner.Context()
    got = manager.handle_error(ctx, "processing_error", {})
    check(
        got is False
        and ctx.get("error.recovery_method") == "rollback"
        and ctx.get("error.recovered") is False,
        "a strategy that raises has not recovered (and handle_error must not raise)",
    )
    check(manager.handle_error(ctx, "validation_failure", {}) is False, "'yes' is not True")


@case(
    "6.2",
    0.25,
    "handle_error() must call whatever recovery_strategies holds for the error type, count "
    "only exactly True as recovered, record error.recovery_method as METHODS.get(error_type) "
    "(None for a type METHODS does not list), and set the error.* keys after the strategy ran",
    rules=("6.2-o", "6.2-p", "6.2-s"),
)
def test_6_2_manager_custom_strategy(learner):
    manager = learner.ErrorRecoveryManager()
    strategies = manager.recovery_strategies.value()
    check(isinstance(strategies, dict), "recovery_strategies must be a dict")
    manager.recovery_strategies = {
        **strategies,
        "disk_full": learner.make(
            expr(
                "lambda ctx, details: "
                "(ctx.set('disk.freed_mb', details['mb'], who='recovery'), True)[1]"
            )
        ),
        "data_load_failure": learner.make(expr("lambda ctx, details: 1")),
    }
    ctx = learner.Context()
    got = manager.handle_error(ctx, "disk_full", {"mb": 512})
    check(got is True, f"a strategy that returned True: handle_error returned {got!r}")
    check(ctx.get("disk.freed_mb") == 512, "the strategy for 'disk_full' was not called")
    check(
        ctx.get("error.recovery_method") is None and ctx.get("error.recovered") is True,
        "for 'disk_full', which METHODS does not list, error.recovery_method must be None and "
        f"error.recovered True; they were {ctx.get('error.recovery_method')!r} and "
        f"{ctx.get('error.recovered')!r}",
    )
    keys = [e["key"] for e in ctx.get_history()]
    expected = ["disk.freed_mb", "error.type", "error.details", "error.recovery_method"]
    expected += ["error.recovered", "error.log"]
    check(
        keys == expected,
        f"the history's keys were {keys!r}: the strategy runs first, then the error.* keys",
    )
    got = manager.handle_error(ctx, "data_load_failure", {"fallback": "nowhere.json"})
    check(
        got is False and ctx.get("error.recovered") is False,
        f"a strategy that returned 1 (not exactly True) has not recovered; it returned {got!r}",
    )
    log = ctx.get("error.log")
    check(
        log
        == [
            {"type": "disk_full", "method": None, "recovered": True},
            {"type": "data_load_failure", "method": "fallback_source", "recovered": False},
        ],
        f"error.log was {log!r}",
    )
