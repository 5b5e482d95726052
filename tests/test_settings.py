"""Every grading path reads the course's grading settings: one source of truth."""

from __future__ import annotations

from course_tools import course, solution_sources, submission

from academy import manifest
from academy.bridge.client import Limits
from academy.build import copy_course
from academy.grading.steps import ScoreHiddenSuites, configured_limits
from academy.grading.suite_runner import SUITE_SECONDS, run_hidden_suite

COURSE = course()
MODULE = COURSE.module("module1")
# The reference answer to 1.2, made slow: 1.5 s per call.
SLOW_1_2 = solution_sources(COURSE, MODULE)["ex_1_2_solution"].replace(
    "    missing = object()", "    __import__('time').sleep(1.5)\n    missing = object()", 1
)


def test_the_step_defaults_are_the_bridge_defaults():
    step = ScoreHiddenSuites()
    assert step.limits() == Limits()
    assert step.suite_timeout == SUITE_SECONDS


def test_the_learners_check_grades_with_the_courses_configured_limits(tmp_path):
    root = copy_course(COURSE, tmp_path)
    assert configured_limits(root) == (Limits(), SUITE_SECONDS)
    with open(root / "jupyter_config.py", "a") as fh:
        fh.write(
            "\nc.ScoreHiddenSuites.call_timeout = 0.5\nc.ScoreHiddenSuites.suite_timeout = 90\n"
        )
    limits, timeout = configured_limits(root)
    assert (limits.call_seconds, timeout) == (0.5, 90)

    # The same slow answer: full marks under the default 10 s per call, not under the
    # instructor's 0.5 s; f0 check (limits=None) must see what autograde sees.
    nb = submission(COURSE, MODULE, replace={"ex_1_2_solution": SLOW_1_2})
    relaxed = run_hidden_suite(COURSE, MODULE, nb, only={"1.2"})
    strict = run_hidden_suite(manifest.load(root), MODULE, nb, only={"1.2"})
    assert relaxed.exercises["1.2"].score == 2, relaxed.to_json()
    assert strict.exercises["1.2"].score < 2
    assert any(c.kind == "timeout" for c in strict.exercises["1.2"].cases)
