"""Module 2's hidden suite passes the reference, fails the release, and rejects every mutant."""

from __future__ import annotations

import pytest
from course_tools import apply_mutant, course, mutants, submission

from academy.grading.suite_runner import run_hidden_suite

COURSE = course()
MODULE = COURSE.module("module2")


def grade(nb):
    return run_hidden_suite(COURSE, MODULE, nb)


def test_reference_solution_gets_full_marks():
    report = grade(submission(COURSE, MODULE))
    failed = [
        (c.name, c.detail) for r in report.exercises.values() for c in r.cases if not c.passed
    ]
    assert failed == []
    assert report.score == MODULE.points
    assert not report.flagged


def test_released_notebook_scores_zero():
    import nbformat

    report = grade(nbformat.read(COURSE.release_notebook(MODULE), as_version=4))
    assert report.score == 0, report.to_json()


def test_every_case_has_a_message_and_the_points_add_up():
    report = grade(submission(COURSE, MODULE))
    for result in report.exercises.values():
        assert sum(c.points for c in result.cases) == result.exercise.points
        assert all(len(c.message) > 20 for c in result.cases)


CATALOGUE = mutants(MODULE)


def test_the_catalogue_is_big_enough():
    assert len(CATALOGUE) >= 10
    assert len({m["id"] for m in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("mutant", CATALOGUE, ids=[m["id"] for m in CATALOGUE])
def test_mutant_loses_points(mutant):
    report = grade(apply_mutant(COURSE, MODULE, mutant))
    lost = {key for key, r in report.exercises.items() if r.score < r.exercise.points}
    assert set(mutant["loses"]) <= lost, (
        f"{mutant['id']} ({mutant['about']}) kept full marks on "
        f"{sorted(set(mutant['loses']) - lost)}"
    )
    failures = [c for r in report.exercises.values() for c in r.cases if not c.passed]
    assert all(c.message for c in failures)
