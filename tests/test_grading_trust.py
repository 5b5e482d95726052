"""No hidden check may trust grader code that runs in the learner's process.

Some checks run grader-written code inside the learner's worker (``in_worker``,
``worker_function``, ``learner.make(expr(...))``). The learner's code shares that process and
can patch anything in it, so a verdict may rest on that code only when this side can confirm
what it did. ``NEUTER_CELL`` (tests/course_tools.py) is such a learner: appended to a
notebook, it skips or fakes the grader's code there while the learner's own code keeps
working. No submission may gain a point from it (the mutant catalogues are graded with it
in tests/test_grading.py).
"""

from __future__ import annotations

import sys

import nbformat
import pytest
from course_tools import NEUTER_CELL, submission, with_cell
from test_grading import COURSE, MODULES, grade

from academy.bridge.client import Learner, expr
from academy.grading.cases import in_worker, worker_function

LEARNER = """
import time


class Box:
    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)
        return len(self.items), sum(self.items), sorted(self.items)


def call(function, *args):
    return function(*args)


def clock():
    return time.perf_counter()
"""

HELPER = """
def measure(values):
    import time

    start = time.perf_counter()
    total = sum(values)
    return [total, len(values), sorted(values), time.perf_counter() - start]
"""


def neutered_learner() -> Learner:
    return Learner(
        [
            {"index": 0, "label": "cell 1", "source": LEARNER},
            {"index": 1, "label": "cell 2", "source": NEUTER_CELL},
        ]
    )


def test_the_neutering_cell_switches_off_grader_code_and_keeps_the_learners():
    """The cell the tests below rely on really attacks: without this, they would prove nothing."""
    with neutered_learner() as learner:
        box = learner.Box()
        assert learner.load_problems == []
        assert box.add(3) == (1, 3, [3])
        assert box.add(1) == (2, 4, [1, 3]), "the learner's own builtins must keep working"

        kept = learner.keep([1])
        assert in_worker(learner, "lambda v: (v.append(2), 'done')[1]", kept) is None
        kept.append(3)
        assert learner.builtin("list", kept) == [1], "grader mutations must be skipped"

        plus_one = learner.make(expr("lambda v: v + 1"))
        assert learner.call(plus_one, 1) == 2, "a grader lambda handed to the learner runs"
        assert plus_one(1) is None, "a grader lambda the grader calls is skipped"

        measure = worker_function(learner, HELPER, "measure")
        total, count, ordered, seconds = measure([3, 1, 2])
        assert (total, count, ordered) == (0, 0, []), "builtins in grader code must be faked"
        assert 0 < seconds < 1e-5, "time in the worker must barely move"
        first, second = learner.clock(), learner.clock()
        assert 0 < second - first < 1e-5

        assert learner.builtin("sorted", learner.make(expr("{3, 1}"))) == [1, 3]


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.id)
def test_the_neutering_cell_earns_the_released_stubs_nothing(module):
    released = nbformat.read(COURSE.release_notebook(module), as_version=4)
    report = grade(module, with_cell(released, NEUTER_CELL))
    passed = [c.name for r in report.exercises.values() for c in r.cases if c.passed]
    assert report.score == 0, f"the stubs passed {passed}"


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.id)
def test_the_reference_solution_with_the_neutering_cell(module, record_property):
    """The cell may cost the reference points (it breaks things); it must load, and grade."""
    report = grade(module, with_cell(submission(COURSE, module), NEUTER_CELL))
    last = len(submission(COURSE, module).cells)
    assert [p for p in report.load_problems if p["cell"] == last] == []
    lost = sorted(c.name for r in report.exercises.values() for c in r.cases if not c.passed)
    record_property("neutered_reference_score", f"{report.score:g}/{module.points:g}")
    print(
        f"\n{module.id}: the reference with the neutering cell scored "
        f"{report.score:g} of {module.points:g}; failed {lost}",
        file=sys.stderr,
    )
