"""The suite fork server (academy/grading/forkserver.py): a run forked from a process with
pytest imported grades exactly as a fresh interpreter, in a process of its own that no other
student's run has touched, within the same time limit; a server that dies costs no grade,
and a server never outlives the grading process that started it.

The tiny course here has one exercise and a suite whose cases also look at the process they
run in: they fail if an earlier run left anything behind in it, if the grading process's
environment reached it, or if the course or the current folder is on its import path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from course_tools import one_cell_notebook, write_tiny_course

from academy import manifest
from academy.bridge.client import Limits
from academy.grading import forkserver, suite_runner
from academy.grading.forkserver import SuiteForkServer, shared_fork_server
from academy.grading.suite_runner import _suite_env, run_hidden_suite

COURSE_YAML = """\
course_id: forkserver-course
title: A course whose suite inspects its own process
modules:
  - id: module1
    number: 1
    title: Greetings
    notebook: module1_greetings.ipynb
    suite: autograder/test_module1.py
    exercises:
      - {id: "1.1", title: Greet, grade_cell: hidden_1_1, points: 5, hints: [one]}
levels: []
"""

SUITE = """
import builtins
import os
import sys
import time

from academy.grading.cases import case, check

RUNS = getattr(builtins, "_f0_suite_runs", 0)  # > 0: this process graded before
builtins._f0_suite_runs = RUNS + 1


@case("1.1", 1, "greet(name) must return 'Hello, <name>!'")
def test_greets(learner):
    check(learner.greet("Ada") == "Hello, Ada!")


@case("1.1", 1, "greet() must keep the name as given")
def test_keeps_the_name(learner):
    check(learner.greet("mcCarthy") == "Hello, mcCarthy!")


@case("1.1", 1, "the suite runs in a process no earlier run touched")
def test_fresh_process(learner):
    check(RUNS == 0, f"this process graded {RUNS} time(s) before")


@case("1.1", 1, "the suite sees only its own environment and folder")
def test_own_environment(learner):
    check("F0_GRADER_SECRET" not in os.environ, "the grading process's environment leaked")
    check(os.environ.get("HOME") == os.getcwd(), "HOME is not the run's own folder")
    check(os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") == "1", "plugin autoload is on")
    check(os.getsid(0) == os.getpid(), "the run is not a session of its own")


@case("1.1", 1, "nothing of the course or the current folder is importable")
def test_import_path(learner):
    check("" not in sys.path and os.getcwd() not in sys.path, f"sys.path: {sys.path}")
    check(not any(p.startswith(os.environ["F0_TEST_COURSE"]) for p in sys.path), "course")
    if os.path.exists("hang"):  # the notebook asked for a hang of the trusted suite
        time.sleep(120)
"""

RIGHT = 'def greet(name):\n    return f"Hello, {name}!"\n'
WRONG = 'def greet(name):\n    return f"Hello, {name.title()}!"\n'


@pytest.fixture
def course(tmp_path, monkeypatch):
    root = tmp_path / "a course"
    write_tiny_course(root, COURSE_YAML, "module1_greetings.ipynb")
    suite = textwrap.dedent(SUITE).replace('os.environ["F0_TEST_COURSE"]', repr(str(root)))
    (root / "autograder").mkdir()
    (root / "autograder" / "test_module1.py").write_text(suite, encoding="utf-8")
    monkeypatch.setenv("F0_GRADER_SECRET", "the grader's own")
    loaded = manifest.load(root)
    return loaded, loaded.module("module1")


def grade(course, code, preload=True, timeout=120.0):
    loaded, module = course
    return run_hidden_suite(
        loaded, module, one_cell_notebook(code), Limits(), timeout, preload=preload
    )


def scores(report):
    return {c.name: c.passed for r in report.exercises.values() for c in r.cases}


def gone(pid: int, seconds: float) -> bool:
    """The process ended (an unreaped zombie counts as ended) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_a_forked_run_grades_exactly_as_a_fresh_interpreter(course):
    for code, expected in ((RIGHT, 5), (WRONG, 4)):
        fresh = grade(course, code, preload=False)
        forked = grade(course, code, preload=True)
        assert forked.score == expected, forked.to_json()
        assert forked.to_json() == fresh.to_json()
    # The second and later runs of one server: each still in a process of its own.
    again = grade(course, RIGHT)
    assert scores(again)["test_fresh_process"] is True, again.to_json()


def test_a_suite_that_uses_hypothesis_grades_the_same_forked():
    """Module 3's suite draws examples with hypothesis, which the server imports ahead."""
    from course_tools import course as real_course
    from course_tools import submission

    loaded = real_course()
    module = loaded.module("module3")
    nb = submission(loaded, module)
    forked = run_hidden_suite(loaded, module, nb, preload=True)
    fresh = run_hidden_suite(loaded, module, nb, preload=False)
    assert forked.to_json() == fresh.to_json()
    assert forked.score == sum(e.points for e in module.exercises), forked.to_json()


def test_runs_at_once_each_get_their_own_process(course):
    reports: list = []
    threads = [
        threading.Thread(target=lambda c=c: reports.append(grade(course, c)))
        for c in (RIGHT, WRONG, RIGHT, WRONG)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(r.score for r in reports) == [4, 4, 5, 5]
    assert all(scores(r)["test_fresh_process"] for r in reports)


def test_a_hanging_suite_is_killed_at_the_time_limit(course):
    original = forkserver.SuiteForkServer.run

    def hanging(self, args, cwd, log, env, timeout):
        Path(cwd, "hang").touch()  # the suite's last case then sleeps for two minutes
        return original(self, args, cwd, log, env, timeout)

    forkserver.SuiteForkServer.run = hanging  # type: ignore[method-assign]
    try:
        start = time.monotonic()
        report = grade(course, RIGHT, timeout=3.0)
        took = time.monotonic() - start
    finally:
        forkserver.SuiteForkServer.run = original  # type: ignore[method-assign]
    assert report.score == 0 and report.flagged
    assert any("did not finish within 3 s" in p for p in report.exercises["1.1"].problems)
    assert took < 30, f"the hang cost {took:.0f} s"
    assert grade(course, RIGHT).score == 5  # the server is still there for the next student


def test_a_server_that_dies_during_a_run_costs_no_grade(course):
    server = shared_fork_server(_suite_env(os.getcwd()))
    original = forkserver.SuiteForkServer.run
    killed = threading.Event()

    def kill_when_running(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(r.pid for r in self._runs.values()):
            time.sleep(0.01)
        os.kill(self.pid, signal.SIGKILL)
        killed.set()

    def run_and_kill(self, args, cwd, log, env, timeout):
        threading.Thread(target=kill_when_running, args=(self,), daemon=True).start()
        return original(self, args, cwd, log, env, timeout)

    forkserver.SuiteForkServer.run = run_and_kill  # type: ignore[method-assign]
    try:
        report = grade(course, RIGHT)
    finally:
        forkserver.SuiteForkServer.run = original  # type: ignore[method-assign]
    assert killed.is_set()
    assert report.score == 5 and not report.flagged, report.to_json()
    assert gone(server.pid, 10)
    replacement = shared_fork_server(_suite_env(os.getcwd()))
    assert replacement.pid != server.pid and replacement.alive
    assert grade(course, WRONG).score == 4


def test_the_server_ends_with_the_process_that_started_it(tmp_path):
    script = (
        "import sys, time\n"
        "from academy.grading.forkserver import SuiteForkServer\n"
        "from academy.grading.suite_runner import _suite_env\n"
        f"server = SuiteForkServer(_suite_env({str(tmp_path)!r}))\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        os.kill(pid, 0)  # running
        parent.kill()  # SIGKILL: no clean-up code runs in the parent
        parent.wait()
        assert gone(pid, 10), "the fork server outlived the grading process"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_server_that_cannot_start_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(forkserver, "START_SECONDS", 0.01)
    with pytest.raises(forkserver.ForkServerGone, match="did not start"):
        SuiteForkServer(_suite_env(str(tmp_path)))


@pytest.mark.parametrize(("died_after", "expected"), [(60.0, 60.0), (115.0, 30.0), (0.0, 120.0)])
def test_a_rerun_after_the_server_died_gets_what_is_left_of_the_limit(
    course, monkeypatch, died_after, expected
):
    """The fresh-interpreter rerun gets the time limit minus what the dead server's run took,
    at least RERUN_MIN_SECONDS: a server's end never gives one student a second full limit."""
    real = time.monotonic
    shift = [0.0]
    monkeypatch.setattr(suite_runner.time, "monotonic", lambda: real() + shift[0])

    def dies_late(self, args, cwd, log, env, timeout):
        shift[0] += died_after  # the server died this many seconds into the run
        raise forkserver.ForkServerGone("the suite fork server ended during a run")

    waits: list[float] = []
    wait = subprocess.Popen.wait

    def recorded(self, timeout=None):
        if timeout is not None:
            waits.append(timeout)
        return wait(self, timeout)

    monkeypatch.setattr(forkserver.SuiteForkServer, "run", dies_late)
    monkeypatch.setattr(subprocess.Popen, "wait", recorded)
    report = grade(course, RIGHT, timeout=120.0)
    assert report.score == 5 and not report.flagged, report.to_json()
    assert waits and expected - 5 < waits[0] <= expected, waits
