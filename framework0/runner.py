"""Run a recipe: validate it all, plan the order, then run each step's scriptlet.

Nothing runs until the whole recipe is valid and the plan is sound, so a mistake in
step 9 never leaves steps 1-8 half done.

Selecting steps
    ``only=[names]`` runs those steps plus everything they depend on, transitively.
    ``skip=[names]`` leaves steps out; if a step that would still run depends on a
    skipped one, the run is refused before anything starts (``StepNotRunError`` naming
    every step that could not run) rather than quietly dropping work. Unknown names
    raise ``UnknownTaskError``.

Context keys the runner writes (``who="runner"``)
    ``run.recipe``, ``run.plan`` (step names in run order), ``run.steps.<name>.status``
    (``running`` / ``ok`` / ``failed`` / ``not_run`` / ``skipped``),
    ``run.steps.<name>.attempts`` and, on failure, ``run.error`` =
    ``{"step", "type", "message", "phase"}`` with ``phase`` ``"plan"`` (refused before
    running) or ``"run"``. A ``RunError`` raised by ``run_recipe`` carries the context
    as ``exc.ctx``.

Scriptlet params
    Each step's ``args`` plus ``_step`` (the step name, for ``ctx.set(..., who=...)``)
    and ``_recipe_dir`` (the recipe's absolute folder; relative paths in ``args``
    resolve against it via ``BaseScriptlet.resolve_path``).

Scriptlets defined in a notebook
    A class written in a notebook or a test has no importable module. A step whose
    ``module`` is ``notebook`` (``NOTEBOOK_MODULE``) takes its class from the
    ``scriptlets`` mapping given to ``run_recipe`` (``{"Loader": Loader}``), by its
    ``function`` name, instead of importing anything. The caller hands the classes
    over, so a recipe still cannot make the runner load arbitrary code; a name the
    mapping lacks refuses the run before anything starts, and a class that is not a
    ``BaseScriptlet`` makes the step ``not_run``, exactly as for imported classes.

Timeouts
    A step with ``timeout`` runs in a daemon thread; after ``timeout`` seconds the
    runner stops waiting and fails the attempt. Python cannot kill a thread, so the
    abandoned ``run()`` may keep going (and writing to the context) in the background.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from framework0.context import Context
from framework0.dependency_graph import DependencyGraph
from framework0.errors import (
    Framework0Error,
    RecipeValidationError,
    RunError,
    StepFailedError,
    StepNotRunError,
    UnknownTaskError,
)
from framework0.logger import get_logger
from framework0.recipe_parser import load_recipe, parse_recipe
from framework0.scriptlets.base import BaseScriptlet

__all__ = [
    "DEFAULT_ALLOWED_PACKAGES",
    "ENV_ALLOWED_PACKAGES",
    "NOTEBOOK_MODULE",
    "main",
    "run_recipe",
]

DEFAULT_ALLOWED_PACKAGES: tuple[str, ...] = ("framework0.scriptlets",)
ENV_ALLOWED_PACKAGES = "FRAMEWORK0_ALLOWED_PACKAGES"
NOTEBOOK_MODULE = "notebook"
"""A step's ``module`` that means: take ``function`` from ``run_recipe(scriptlets=...)``."""
_WHO = "runner"


def run_recipe(
    recipe_path: str | os.PathLike[str],
    debug: bool = False,
    only: Iterable[str] | str | None = None,
    skip: Iterable[str] | str | None = None,
    dry_run: bool = False,
    ctx: Context | None = None,
    allowed_packages: Iterable[str] | str | None = None,
    scriptlets: Mapping[str, type[BaseScriptlet]] | None = None,
) -> Context:
    """Run the recipe at ``recipe_path`` and return the context its steps filled.

    ``ctx`` lets a run continue from existing state. ``dry_run=True`` plans and checks
    the allow-list but imports and runs nothing; the plan is in ``run.plan``.
    Scriptlet modules must live in ``framework0.scriptlets``, a package listed in the
    ``FRAMEWORK0_ALLOWED_PACKAGES`` environment variable (comma-separated) or one in
    ``allowed_packages``; a recipe cannot make the runner import arbitrary code.
    ``scriptlets`` maps class names to classes for steps whose ``module`` is
    ``notebook``: scriptlets defined in a notebook or a test, which cannot be imported.
    """
    log = get_logger("framework0.runner", debug)
    recipe = load_recipe(recipe_path)
    steps = {step["name"]: step for step in parse_recipe(recipe)}  # idx order
    recipe_dir = Path(recipe_path).resolve().parent
    ctx = Context() if ctx is None else ctx
    allowed = _allowed_packages(allowed_packages)
    given = dict(scriptlets or {})  # a copy: the classes are fixed when the run starts

    graph = DependencyGraph()
    for name, step in steps.items():
        graph.add_task(name, step["depends_on"])
    only_names = _names(only, "only", graph)
    skip_names = _names(skip, "skip", graph)

    ctx.set("run.recipe", os.fspath(recipe_path), who=_WHO)
    try:
        plan = _plan(graph, only_names, skip_names)
        for name in plan:
            if steps[name]["module"] == NOTEBOOK_MODULE:
                _check_given(steps[name], given)
            else:
                _check_allowed(steps[name], allowed)
    except RunError as exc:
        _fail(ctx, exc, "plan", log)
    ctx.set("run.plan", plan, who=_WHO)
    for name in skip_names:
        ctx.set(f"run.steps.{name}.status", "skipped", who=_WHO)
    log.info("recipe %s: %d step(s) planned: %s", recipe_path, len(plan), ", ".join(plan))
    if dry_run:
        log.info("dry run: nothing executed")
        return ctx

    started = time.monotonic()
    for number, name in enumerate(plan, start=1):
        log.info(
            "[%d/%d] %s: %s.%s",
            number,
            len(plan),
            name,
            steps[name]["module"],
            steps[name]["function"],
        )
        try:
            _run_step(steps[name], ctx, recipe_dir, log, given)
        except RunError as exc:
            _fail(ctx, exc, "run", log)
    log.info(
        "recipe %s: %d step(s) ok in %.2fs", recipe_path, len(plan), time.monotonic() - started
    )
    return ctx


# ---------------------------------------------------------------------- planning
def _names(value: Iterable[str] | str | None, option: str, graph: DependencyGraph) -> list[str]:
    """``only``/``skip`` as a list of known step names; a bare string means one name."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    unknown = [n for n in names if n not in graph]
    if unknown:
        rest = f"; also unknown: {', '.join(map(repr, unknown[1:]))}" if unknown[1:] else ""
        raise UnknownTaskError(
            unknown[0], f" in {option}{rest} (steps in the recipe: {', '.join(graph.tasks)})"
        )
    return list(dict.fromkeys(names))


def _plan(graph: DependencyGraph, only: list[str], skip: list[str]) -> list[str]:
    """The steps to run, in order; refuses a plan where a step needs a skipped one."""
    order = graph.get_task_order()
    selected = set(order)
    if only:
        selected = {task for name in only for task in (name, *graph.ancestors(name))}
    skipped = set(skip)
    selected -= skipped
    blocked = [n for n in order if n in selected and not skipped.isdisjoint(graph.ancestors(n))]
    if blocked:
        needed = [s for s in skip if any(s in graph.get_task_dependencies(b) for b in blocked)]
        raise StepNotRunError(
            blocked[0],
            f"depends on skipped step(s) {', '.join(map(repr, needed))}; steps that cannot "
            f"run: {', '.join(blocked)} (skip them too, or stop skipping their dependencies)",
        )
    return [n for n in order if n in selected]


def _allowed_packages(extra: Iterable[str] | str | None) -> tuple[str, ...]:
    env = os.environ.get(ENV_ALLOWED_PACKAGES, "").split(",")
    given = [extra] if isinstance(extra, str) else list(extra or ())
    names = [p.strip() for p in (*DEFAULT_ALLOWED_PACKAGES, *env, *given)]
    return tuple(dict.fromkeys(p for p in names if p))


def _check_allowed(step: dict[str, Any], allowed: tuple[str, ...]) -> None:
    module = step["module"]
    if not any(module == p or module.startswith(p + ".") for p in allowed):
        raise StepNotRunError(
            step["name"],
            f"module {module!r} is not in an allowed package ({', '.join(allowed)}); "
            f"add its package to allowed_packages or ${ENV_ALLOWED_PACKAGES}",
        )


def _check_given(step: dict[str, Any], given: dict[str, Any]) -> None:
    """A notebook step needs its class in ``scriptlets``: known before anything runs."""
    if step["function"] not in given:
        names = ", ".join(sorted(map(str, given))) or "none"
        raise StepNotRunError(
            step["name"],
            f"module {NOTEBOOK_MODULE!r} takes its class from run_recipe(scriptlets=...), "
            f"which has no {step['function']!r} (given: {names})",
        )


# ---------------------------------------------------------------------- running
def _load(step: dict[str, Any], given: dict[str, Any]) -> BaseScriptlet:
    name, module_name, attr = step["name"], step["module"], step["function"]
    if module_name == NOTEBOOK_MODULE:
        cls = given.get(attr)  # present: the plan checked it
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise StepNotRunError(name, f"cannot import module {module_name!r}: {exc}") from exc
        except Exception as exc:
            raise StepNotRunError(
                name, f"importing module {module_name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        cls = getattr(module, attr, None)
        if cls is None:
            raise StepNotRunError(name, f"module {module_name!r} has no {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, BaseScriptlet)):
        raise StepNotRunError(
            name, f"{module_name}.{attr} is not a BaseScriptlet subclass (got {cls!r})"
        )
    try:
        return cls()
    except Exception as exc:
        raise StepNotRunError(
            name, f"cannot create {module_name}.{attr}: {type(exc).__name__}: {exc}"
        ) from exc


def _run_step(
    step: dict[str, Any], ctx: Context, recipe_dir: Path, log: Any, given: dict[str, Any]
) -> None:
    name = step["name"]
    status = f"run.steps.{name}"
    ctx.set(f"{status}.status", "running", who=_WHO)
    params = {**step["args"], "_step": name, "_recipe_dir": str(recipe_dir)}
    try:
        scriptlet = _load(step, given)
        try:
            scriptlet.validate(ctx, copy.deepcopy(params))
        except Exception as exc:
            raise StepNotRunError(name, f"validate() refused: {type(exc).__name__}: {exc}") from exc
    except StepNotRunError:
        ctx.set(f"{status}.status", "not_run", who=_WHO)
        raise

    attempts = step["retry"]["max"] + 1
    for attempt in range(1, attempts + 1):
        ctx.set(f"{status}.attempts", attempt, who=_WHO)
        started = time.monotonic()
        problem, cause = _attempt(scriptlet, ctx, copy.deepcopy(params), step["timeout"])
        if problem is None:
            missing = [k for k in step["success"]["ctx_has_keys"] if k not in ctx]
            if missing:
                problem = f"finished but did not set ctx key(s) {', '.join(map(repr, missing))}"
        if problem is None:
            ctx.set(f"{status}.status", "ok", who=_WHO)
            log.info("  %s: ok in %.2fs", name, time.monotonic() - started)
            return
        if attempt < attempts:
            delay = step["retry"]["delay_sec"]
            log.warning(
                "  %s: attempt %d/%d %s; retrying in %ss", name, attempt, attempts, problem, delay
            )
            time.sleep(delay)
    ctx.set(f"{status}.status", "failed", who=_WHO)
    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
    error = StepFailedError(name, f"{problem}{tries}")
    raise error from cause


def _attempt(
    scriptlet: BaseScriptlet, ctx: Context, params: dict[str, Any], timeout: float | None
) -> tuple[str | None, BaseException | None]:
    """Call ``run`` once; returns (problem or None, exception that caused it)."""
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            result["code"] = scriptlet.run(ctx, params)
        except BaseException as exc:  # reported to the runner, not lost in the thread
            result["error"] = exc

    if timeout is None:
        call()
    else:
        worker = threading.Thread(
            target=call, name=f"framework0-step-{params['_step']}", daemon=True
        )
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            return f"timed out after {timeout}s (the run() thread was abandoned)", None
    if "error" in result:
        exc = result["error"]
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: stop the run
            raise exc
        return f"run() raised {type(exc).__name__}: {exc}", exc
    code = result.get("code")
    if type(code) is not int or code != 0:
        return f"run() returned {code!r}; 0 means success", None
    return None, None


def _fail(ctx: Context, exc: RunError, phase: str, log: Any) -> NoReturn:
    ctx.set(
        "run.error",
        {"step": exc.step, "type": type(exc).__name__, "message": str(exc), "phase": phase},
        who=_WHO,
    )
    exc.ctx = ctx  # type: ignore[attr-defined]
    log.error("%s: %s", type(exc).__name__, exc)
    raise exc


# ---------------------------------------------------------------------- CLI
class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # keep stdout a single JSON line
        raise _UsageError(f"{self.prog}: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: progress on stderr, one JSON summary line on stdout; exit 0, 1 or 2."""
    parser = _Parser(
        prog="python -m framework0.runner",
        description="Run a framework0 recipe. Progress goes to stderr; one JSON summary "
        "line goes to stdout. Exit 0: ok, 1: a step failed or could not run, "
        "2: usage or recipe error.",
    )
    parser.add_argument("--recipe", required=True, help="path to the recipe YAML file")
    parser.add_argument("--debug", action="store_true", help="debug logs and tracebacks")
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="run only these steps and what they depend on",
    )
    parser.add_argument(
        "--skip", nargs="+", action="extend", metavar="NAME", help="leave these steps out"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(parser.format_usage().rstrip(), file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return _summary({"ok": False, "error": {"type": "UsageError", "message": str(exc)}}, 2)

    log = get_logger("framework0.runner", args.debug)
    base = {"recipe": args.recipe, "dry_run": args.dry_run}
    try:
        ctx = run_recipe(
            args.recipe, debug=args.debug, only=args.only, skip=args.skip, dry_run=args.dry_run
        )
    except RunError as exc:
        failed: Context | None = getattr(exc, "ctx", None)
        error = failed.get("run.error") if failed is not None else None
        error = error or {"step": exc.step, "type": type(exc).__name__, "message": str(exc)}
        if args.debug:
            log.debug("traceback", exc_info=exc)
        code = 2 if error.get("phase") == "plan" else 1
        return _summary({"ok": False, **base, "error": error}, code)
    except Framework0Error as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        log.debug("traceback", exc_info=exc)
        error = {"type": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, RecipeValidationError):
            error["problems"] = exc.problems
        return _summary({"ok": False, **base, "error": error}, 2)
    except Exception as exc:  # a bug, not a user mistake: say how to see the traceback
        if args.debug:
            log.exception("unexpected error")
        else:
            log.error(
                "unexpected %s: %s (rerun with --debug for the traceback)", type(exc).__name__, exc
            )
        return _summary(
            {"ok": False, **base, "error": {"type": type(exc).__name__, "message": str(exc)}}, 1
        )
    plan = ctx.get("run.plan", [])
    return _summary({"ok": True, **base, "steps": plan, "keys": len(ctx)}, 0)


def _summary(summary: dict[str, Any], code: int) -> int:
    print(json.dumps(summary, default=str), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
