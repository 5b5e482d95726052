"""Helpers for tests that build learner submissions from the course's own notebooks."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import yaml

from academy import manifest
from academy.build import tool_env
from academy.course.solutions import reference_submission, solution_cells
from academy.manifest import Course, Module

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = Path(__file__).parent / "mutants"


def write_tiny_course(root: Path, course_yaml: str, notebook: str) -> None:
    """The files of a one-module course in ``root`` but its suite: ``course.yaml``, an empty
    source notebook ``curriculum/module1/<notebook>`` and default Jupyter configuration."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "course.yaml").write_text(course_yaml, encoding="utf-8")
    (root / "curriculum" / "module1").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), root / "curriculum" / "module1" / notebook)
    for name in ("jupyter_config.py", "nbgrader_config.py"):
        (root / name).write_text("c = get_config()  # noqa\n", encoding="utf-8")


def one_cell_notebook(code: str) -> Any:
    """A notebook whose only cell is ``code``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    return nb


def course() -> Course:
    return manifest.load(ROOT)


# the reference solutions and submissions built from them (shared with mutation testing)
solution_sources = solution_cells
submission = reference_submission


def mutants(module: Module) -> list[dict[str, Any]]:
    """Known-wrong implementations: each a patch of the reference solution (data, not code)."""
    return yaml.safe_load((MUTANTS / f"{module.id}.yaml").read_text(encoding="utf-8"))


def apply_mutant(course: Course, module: Module, mutant: dict[str, Any]) -> Any:
    solutions = solution_sources(course, module)
    replace = {}
    for patch in mutant["patches"]:
        source = replace.get(patch["cell"], solutions[patch["cell"]])
        count = source.count(patch["old"])
        if count != 1:
            raise AssertionError(
                f"mutant {mutant['id']}: the text to replace occurs {count} "
                f"times in {patch['cell']} (the reference changed?)"
            )
        replace[patch["cell"]] = source.replace(patch["old"], patch["new"])
    return submission(course, module, replace=replace)


def run(
    command: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` with this environment's bin folder first on PATH (plus ``env``)."""
    return subprocess.run(
        command, cwd=cwd, env=tool_env(env), capture_output=True, text=True, timeout=timeout
    )


def deep_copy(nb: Any) -> Any:
    return copy.deepcopy(nb)


NEUTER_CELL = r'''
# The neutering cell: learner code that turns the grader's own code in this process off.
import builtins as _f0n_builtins
import functools as _f0n_functools
import sys as _f0n_sys
import time as _f0n_time


def _f0n_install():
    main = _f0n_sys.modules.get("__main__")
    worker_file = getattr(main, "__file__", None)
    grader_file = "<f0-grader>"  # what grader-written source is compiled as from now on
    real_eval = _f0n_builtins.eval
    real_exec = _f0n_builtins.exec
    real_compile = _f0n_builtins.compile
    frame = _f0n_sys._getframe

    def from_worker(depth):
        return worker_file is not None and frame(depth).f_code.co_filename == worker_file

    def from_grader(depth):
        return frame(depth).f_code.co_filename == grader_file

    def skipping(fn):
        """A grader lambda: skipped when the bridge calls it, genuine for the learner's code."""

        @_f0n_functools.wraps(fn)
        def lam(*args, **kwargs):
            if from_worker(2):
                return None
            return fn(*args, **kwargs)

        return lam

    def caller_namespaces(globals_, locals_):
        if globals_ is None:
            caller = frame(2)
            return caller.f_globals, caller.f_locals if locals_ is None else locals_
        return globals_, locals_

    def eval_(source, globals_=None, locals_=None, /):
        grader = isinstance(source, str) and (from_worker(2) or from_grader(2))
        globals_, locals_ = caller_namespaces(globals_, locals_)
        if not grader:
            return real_eval(source, globals_, locals_)
        value = real_eval(real_compile(source, grader_file, "eval"), globals_, locals_)
        if source.lstrip().startswith("lambda") and callable(value):
            return skipping(value)
        return value

    def exec_(source, globals_=None, locals_=None, /, **kwargs):
        if isinstance(source, str) and (from_worker(2) or from_grader(2)):
            source = real_compile(source, grader_file, "exec")
        globals_, locals_ = caller_namespaces(globals_, locals_)
        return real_exec(source, globals_, locals_, **kwargs)

    def compile_(source, filename, mode, *args, **kwargs):
        if from_grader(2):
            filename = grader_file
        return real_compile(source, filename, mode, *args, **kwargs)

    _f0n_builtins.eval, _f0n_builtins.exec, _f0n_builtins.compile = eval_, exec_, compile_

    # Builtins a grader helper counts or checks with: faked inside grader code only.
    fakes = {"len": 0, "sum": 0, "sorted": [], "any": False, "all": True}
    for name, fake in fakes.items():
        real = getattr(_f0n_builtins, name)

        def builtin(*args, _real=real, _fake=fake, **kwargs):
            if from_grader(2):
                return type(_fake)(_fake)
            return _real(*args, **kwargs)

        builtin.__name__ = name
        setattr(_f0n_builtins, name, builtin)

    # A clock that barely moves: whatever is timed in this process looks instant.
    def slow_clock(real, step, kind):
        now = [real()]

        def clock():
            now[0] += step
            return kind(now[0])

        return clock

    for name in ("perf_counter", "monotonic", "time"):
        setattr(_f0n_time, name, slow_clock(getattr(_f0n_time, name), 1e-7, float))
    for name in ("perf_counter_ns", "monotonic_ns", "time_ns"):
        setattr(_f0n_time, name, slow_clock(getattr(_f0n_time, name), 100, int))

    # The worker's request handling: grader-made objects (built by 'eval', sent by 'keep')
    # are left alone when the grader calls them, calls methods on them or sets attributes.
    worker = getattr(main, "Worker", None)
    if worker is None:
        return
    grader_ids = set()
    plain = (type(None), bool, int, float, str, list, tuple, dict)
    real_run, real_serve = worker.run, worker.serve

    def run(self, op, request):
        if op in ("call", "callmethod", "setattr") and request.get("target") is not None:
            if id(self.target(request["target"])) in grader_ids:
                return None
        value = real_run(self, op, request)
        code = getattr(value, "__code__", None)
        helper = code is not None and code.co_name != "<lambda>"  # worker_function: runs,
        if op == "eval" and not isinstance(value, plain) and not helper:  # on a fake clock
            grader_ids.add(id(value))
        return value

    def serve(self, request):
        reply = real_serve(self, request)
        handle = reply.get("value") if request.get("op") == "keep" else None
        if isinstance(handle, dict) and handle.get("id") in self.objects:
            grader_ids.add(id(self.objects[handle["id"]]))
        return reply

    worker.run, worker.serve = run, serve


_f0n_install()
del _f0n_install
'''
"""Learner code that switches off the grader's own code in the learner's process.

Appended to a submission as one more code cell, it stands for a learner who attacks the
grading rather than the exercises, without knowing the hidden tests. It patches:

* ``builtins.eval``/``exec``/``compile``: grader source (evaluated by the worker for
  ``learner.make(expr(...))``/``in_worker``, or exec'd by ``worker_function``) is compiled as
  ``<f0-grader>``; a grader lambda returns ``None`` without running when the bridge calls it
  (a grader's mutation or query is skipped) but runs for the learner's code (an input);
* ``len``, ``sum``, ``sorted``, ``any``, ``all``: inside grader code they return 0, 0, [],
  False and True (counts of errors and of live threads vanish);
* ``time.perf_counter``/``monotonic``/``time`` (and ``_ns``): a clock that advances 100 ns per
  reading, so anything timed in the worker looks instant and equal;
* ``Worker.run``/``Worker.serve`` of the worker (``sys.modules['__main__']``): calls, method
  calls and attribute writes on objects the grader built (``eval``) or sent (``keep``) are
  answered with ``None`` and not done. Named grader helpers (``worker_function``) are left to
  run, on the fake clock and the faked builtins: skipping them would only fail the case.

The learner's own functions and classes keep working, and loading the notebook does not
break: the cell only runs after the learner's cells. No check may reward it: with this
cell, a submission must score at most what it scores without it.
"""


def with_cell(nb: Any, source: str) -> Any:
    """A copy of ``nb`` with one more code cell (``source``) at the end."""

    out = copy.deepcopy(nb)
    out.cells.append(nbformat.v4.new_code_cell(source))
    return out
