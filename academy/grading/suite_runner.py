"""Run a module's hidden suite against a notebook, in a fresh trusted process.

The same function serves the instructor (the ``ScoreHiddenSuites`` step inside ``nbgrader
autograde``) and the self-paced learner (``f0 check``), so both see the same scores.
The suite runs as ``python -I -m pytest`` from an empty folder with plugin autoloading
off, no conftest and no cache: nothing in the learner's folder can change how it runs.
The learner's code runs in yet another process (see ``academy.bridge``). A folder suite runs
the same way, its test files named one by one in the notebook's order, and its
``_support.py`` loaded by the plugin (``--f0-support``): the folder never goes on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from academy.bridge.client import Limits
from academy.bridge.sandbox import Sandbox
from academy.grading.notebook import learner_cells
from academy.manifest import Course, Exercise, ManifestError, Module, suite_support, suite_tests

__all__ = ["SUITE_SECONDS", "CaseResult", "ExerciseResult", "SuiteReport", "run_hidden_suite"]

SUITE_SECONDS = 600.0  # default wall-clock cap for one notebook's whole hidden suite
# A suite rerun after the fork server died gets what is left of its time limit, but at least
# this much (never more than the limit): the server's end is not the learner's doing.
RERUN_MIN_SECONDS = 30.0


@dataclass
class CaseResult:
    name: str
    exercise: str
    points: float
    message: str
    passed: bool
    detail: str = ""
    kind: str = ""
    critical: bool = False  # a failure blocks the module for certification (academy.levels)
    rules: list[str] = field(default_factory=list)  # the notebook sentences it checks

    @property
    def cited(self) -> str:
        """The message led by the ids of the rules it checks: ``[3.1-c] save_snapshot() ...``."""
        return (f"[{', '.join(self.rules)}] " if self.rules else "") + self.message


@dataclass
class ExerciseResult:
    exercise: Exercise
    cases: list[CaseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why this could not be graded fully

    @property
    def score(self) -> float:
        if self.problems and not self.cases:
            return 0.0
        earned = sum(c.points for c in self.cases if c.passed)
        return round(min(max(earned, 0.0), self.exercise.points), 6)

    @property
    def flagged(self) -> bool:
        """Graded as 0 for a reason a person should look at (a hang, a crash, a grader fault)."""
        return bool(self.problems) or any(c.kind in ("timeout", "crashed") for c in self.cases)

    @property
    def critical_failures(self) -> list[CaseResult]:
        """The failed critical cases: each blocks the module for certification."""
        return [c for c in self.cases if c.critical and not c.passed]


@dataclass
class SuiteReport:
    module: Module
    exercises: dict[str, ExerciseResult]
    load_problems: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    sandboxed: bool = False

    @property
    def score(self) -> float:
        return round(sum(r.score for r in self.exercises.values()), 6)

    @property
    def max_points(self) -> float:
        return self.module.points

    @property
    def flagged(self) -> bool:
        return any(r.flagged for r in self.exercises.values())

    @property
    def critical_failures(self) -> list[CaseResult]:
        """Every failed critical case, in exercise order."""
        return [c for r in self.exercises.values() for c in r.critical_failures]

    def critical_failed(self) -> list[str]:
        """The failed critical cases in words ("<exercise>: <message>"), as progress and
        certificates record them."""
        return [f"{c.exercise}: {c.cited}" for c in self.critical_failures]

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.module.id,
            "score": self.score,
            "max_points": self.max_points,
            "flagged": self.flagged,
            "critical_failed": self.critical_failed(),
            "sandboxed": self.sandboxed,
            "load_problems": self.load_problems,
            "exercises": {
                key: {
                    "score": r.score,
                    "points": r.exercise.points,
                    "flagged": r.flagged,
                    "problems": r.problems,
                    "cases": [asdict(c) for c in r.cases],
                }
                for key, r in self.exercises.items()
            },
        }


def run_hidden_suite(
    course: Course,
    module: Module,
    notebook: Any,
    limits: Limits | None = None,
    suite_timeout: float | None = None,
    only: set[str] | None = None,
    first_failure: bool = False,
    preload: bool = False,
) -> SuiteReport:
    """Grade ``notebook`` (a parsed notebook) with ``module``'s hidden suite.

    ``limits`` and ``suite_timeout`` default to what the course's nbgrader configuration sets
    (``ScoreHiddenSuites``), so every caller grades as the instructor's ``autograde`` does.
    ``only`` limits grading to some exercises (the report then holds just those); the
    instructor's and the learner's grading always run everything. ``first_failure`` stops at
    the first failed case (mutation testing asks only "does anything fail?"); the report is
    then partial, and its exercises lose points. ``preload`` forks the suite process from
    this process's fork server (``academy.grading.forkserver``), for callers that grade many
    notebooks; the run and its results are the same.
    """
    limits, suite_timeout = _limits_or_configured(course, limits, suite_timeout)
    sandbox = Sandbox(limits.sandbox)
    sandbox.check()  # mode "require" without bubblewrap: refuse before running anything
    results = {e.id: ExerciseResult(e) for e in module.exercises if not only or e.id in only}
    report = SuiteReport(module, results, sandboxed=sandbox.active)
    with tempfile.TemporaryDirectory(prefix="f0-grade-") as tmp:
        work = Path(tmp)
        (work / "cells.json").write_text(json.dumps(learner_cells(notebook)), encoding="utf-8")
        (work / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        command = _suite_command(course.suite_path(module), work, limits, only, first_failure)
        returncode = _run_suite(command, work, _suite_env(tmp), suite_timeout, preload)
        report.log = _tail(work / "log.txt")
        raw = _read_report(work / "report.json")
    if raw is None:
        why = (
            f"grading did not finish within {suite_timeout:g} s"
            if returncode == -signal.SIGKILL
            else "the grader failed before reporting"
        )
        for result in results.values():
            result.problems.append(why)
        return report
    report.load_problems = raw.get("load_problems", [])
    _add_cases(module, results, raw["cases"])
    _check_points(results)
    return report


def _limits_or_configured(
    course: Course, limits: Limits | None, suite_timeout: float | None
) -> tuple[Limits, float]:
    """``limits`` and ``suite_timeout``, each defaulting to the course's nbgrader configuration."""
    if limits is not None and suite_timeout is not None:
        return limits, suite_timeout
    from academy.grading.steps import configured_limits

    configured, configured_timeout = configured_limits(course.root)
    return limits or configured, configured_timeout if suite_timeout is None else suite_timeout


def _suite_command(
    suite: Path, work: Path, limits: Limits, only: set[str] | None, first_failure: bool
) -> list[str]:
    """The isolated pytest run of ``suite`` (a file, or a folder's test files and its
    ``_support.py``): no plugin autoloading, conftest or cache, with ``work`` as its root,
    reading the cells from and writing the report to ``work``."""
    tests = suite_tests(suite) or [suite]  # a missing suite: pytest says so, nothing is graded
    support = suite_support(suite)
    return [
        sys.executable,
        "-I",
        "-B",  # no __pycache__ in the course folder (-I ignores PYTHONDONTWRITEBYTECODE)
        "-m",
        "pytest",
        *(str(test) for test in tests),
        "-p",
        "academy.grading.plugin",
        "-p",
        "no:cacheprovider",
        "--noconftest",
        "--import-mode=importlib",
        "-c",
        str(work / "pytest.ini"),
        "--rootdir",
        str(work),
        "-q",
        "--tb=no",
        "-o",
        "console_output_style=classic",
        "--f0-cells",
        str(work / "cells.json"),
        "--f0-report",
        str(work / "report.json"),
        "--f0-limits",
        json.dumps(asdict(limits)),
        "--f0-only",
        ",".join(sorted(only or ())),
        *(["--f0-support", str(support)] if support else []),
        *(["-x"] if first_failure else []),
    ]


def _suite_env(home: str) -> dict[str, str]:
    """A minimal environment: nothing of the caller's but PATH reaches the suite."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
    }


def _run_suite(
    command: list[str], work: Path, env: dict[str, str], timeout: float, preload: bool = False
) -> int:
    """Run ``command`` in ``work``, logging to ``log.txt``; kill its whole process group after
    ``timeout`` seconds. Returns its exit code (``-SIGKILL`` when it was killed).

    With ``preload``, the process is forked from the fork server, which runs ``command``'s
    pytest arguments the same way; if the server is gone, the command runs as it is, within
    what is left of ``timeout`` (at least ``RERUN_MIN_SECONDS``, at most ``timeout``), so a
    server's end costs one student a bounded time, never a second full limit.
    """
    if preload:
        from academy.grading.forkserver import ForkServerGone, shared_fork_server

        args = command[command.index("pytest") + 1 :]
        started = time.monotonic()
        try:
            server = shared_fork_server(env)
            return server.run(args, str(work), str(work / "log.txt"), env, timeout)
        except ForkServerGone:
            left = timeout - (time.monotonic() - started)
            timeout = max(left, min(timeout, RERUN_MIN_SECONDS))
    with open(work / "log.txt", "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def _add_cases(module: Module, results: dict[str, ExerciseResult], cases: list[Any]) -> None:
    """File each reported case under its exercise; a case of an unknown exercise is a fault
    of the suite, not of the learner."""
    known = set(CaseResult.__dataclass_fields__)
    for item in cases:
        case = CaseResult(**{k: v for k, v in item.items() if k in known})
        if case.exercise not in results:
            raise ManifestError(
                f"{module.suite}: case {case.name} grades unknown exercise "
                f"{case.exercise!r}; course.yaml lists {', '.join(results)}"
            )
        results[case.exercise].cases.append(case)


def _check_points(results: dict[str, ExerciseResult]) -> None:
    """Flag an exercise whose cases are not worth its points: some checks did not run."""
    for result in results.values():
        total = sum(c.points for c in result.cases)
        if abs(total - result.exercise.points) > 1e-9:
            result.problems.append(
                f"the hidden suite gave {total:g} of {result.exercise.points:g} points' worth "
                "of checks for this exercise (grading incomplete)"
            )


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _tail(path: Path, limit: int = 8000) -> str:
    data = path.read_bytes()
    return data[-limit:].decode("utf-8", "replace")
