"""f0 autograde: parallel workers, one gradebook writer, the same grades as nbgrader alone."""

from __future__ import annotations

import sys

import nbformat
import pytest
from course_tools import course, run, submission

from academy.build import copy_course

pytestmark = pytest.mark.xdist_group("parallel_grading")

COURSE = course()
MODULE = COURSE.module("module1")
F0 = [sys.executable, "-m", "academy.cli"]

SUBMISSIONS = {
    "ana": (lambda: submission(COURSE, MODULE), 16.0),
    "ben": (lambda: submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)), 10.0),
    "cai": (
        lambda: submission(COURSE, MODULE, unsolved=("ex_1_3_solution", "ex_1_4_solution")),
        10.0,
    ),
    "dee": (lambda: nbformat.read(COURSE.release_notebook(MODULE), as_version=4), 0.0),
}


def scores(root):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        found = {}
        for student in SUBMISSIONS:
            sub = gb.find_submission(MODULE.id, student)
            grades = [g for nb in sub.notebooks for g in nb.grades]
            assert all(g.auto_score is not None and not g.needs_manual_grade for g in grades)
            found[student] = sub.score
        return found


def course_with_submissions(tmp_path):
    """A temporary course, released, with every entry of SUBMISSIONS submitted."""
    root = copy_course(COURSE, tmp_path)
    assert run(["nbgrader", "generate_assignment", MODULE.id, "--force"], root).returncode == 0
    for student, (build, _) in SUBMISSIONS.items():
        folder = root / "submitted" / student / MODULE.id
        folder.mkdir(parents=True)
        nbformat.write(build(), folder / MODULE.notebook)
    return root


def test_parallel_grades_equal_the_deserved_scores_and_rerunning_is_idempotent(tmp_path):
    root = course_with_submissions(tmp_path)

    first = run([*F0, "autograde", MODULE.id, "--workers", "2"], root)
    assert first.returncode == 0, first.stdout + first.stderr
    assert scores(root) == {s: expected for s, (_, expected) in SUBMISSIONS.items()}
    for student in SUBMISSIONS:
        assert (root / "autograded" / student / MODULE.id / MODULE.notebook).is_file()

    again = run([*F0, "autograde", MODULE.id, "--workers", "2"], root)
    assert again.returncode == 0
    assert again.stdout.count("skipped") == len(SUBMISSIONS)
    assert scores(root) == {s: expected for s, (_, expected) in SUBMISSIONS.items()}


def test_missing_gradebook_is_a_clear_error(tmp_path):
    root = copy_course(COURSE, tmp_path)
    folder = root / "submitted" / "ana" / MODULE.id
    folder.mkdir(parents=True)
    nbformat.write(submission(COURSE, MODULE), folder / MODULE.notebook)
    proc = run([*F0, "autograde", MODULE.id], root)
    assert proc.returncode == 2
    assert "generate_assignment" in proc.stdout and "Traceback" not in proc.stderr


def test_an_interrupted_run_keeps_finished_grades_and_resumes(tmp_path):
    import signal
    import subprocess
    import time

    root = course_with_submissions(tmp_path)
    proc = subprocess.Popen(
        [*F0, "autograde", MODULE.id, "--workers", "1"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not saved_students(root):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    finished = saved_students(root)
    assert finished and len(finished) < len(SUBMISSIONS), finished
    resumed = run([*F0, "autograde", MODULE.id, "--workers", "2"], root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.count("skipped") >= len(finished)
    assert scores(root) == {s: expected for s, (_, expected) in SUBMISSIONS.items()}


def saved_students(root):
    from nbgrader.api import Gradebook

    from academy.grading.parallel import is_saved

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return [s for s in SUBMISSIONS if is_saved(gb, MODULE.id, s)]


def test_batches_are_balanced_and_big_enough_to_amortise_start_up():
    from academy.grading.parallel import MIN_BATCH, _batches

    for n, workers, expected in ((4, 2, 2), (30, 2, 2), (60, 2, 6), (600, 2, 6), (5, 8, 5)):
        students = [f"s{i}" for i in range(n)]
        batches = _batches(students, workers)
        assert [s for b in batches for s in b] == students  # each student once, in order
        assert len(batches) == expected, (n, workers)
        if n >= workers * MIN_BATCH:
            assert min(len(b) for b in batches) >= MIN_BATCH


def test_a_late_penalty_reaches_the_gradebook(tmp_path):
    """nbgrader's AssignLatePenalties decides the penalty inside each batch; the one writer
    copies it with the grades (a course with penalty_method 'zero' loses the late score)."""
    from datetime import datetime, timezone

    from nbgrader.api import Gradebook

    root = copy_course(COURSE, tmp_path)
    assert run(["nbgrader", "generate_assignment", MODULE.id, "--force"], root).returncode == 0
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(MODULE.id, duedate=datetime(2026, 1, 1, tzinfo=timezone.utc))
    for student, stamp in (("ana", "2025-12-31 12:00:00 UTC"), ("ben", "2026-01-02 12:00:00 UTC")):
        folder = root / "submitted" / student / MODULE.id
        folder.mkdir(parents=True)
        nbformat.write(submission(COURSE, MODULE), folder / MODULE.notebook)
        (folder / "timestamp.txt").write_text(stamp)
    proc = run(
        [
            *F0,
            "autograde",
            MODULE.id,
            "--workers",
            "2",
            "--",
            "--LateSubmissionPlugin.penalty_method=zero",
        ],
        root,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        ana, ben = (gb.find_submission(MODULE.id, s) for s in ("ana", "ben"))
        assert (ana.score, ana.late_submission_penalty) == (16.0, 0.0)
        assert (ben.score, ben.late_submission_penalty) == (16.0, 16.0)


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's add_submission
def test_the_poll_reads_saved_students_exactly_as_the_gradebook_api(tmp_path, monkeypatch):
    """f0 autograde polls the running batches' gradebooks with one read-only sqlite3 query
    (parallel._saved_in); it must agree with is_saved, nbgrader's API, on every state."""
    from nbgrader.api import Gradebook

    from academy.env import tool_env
    from academy.grading.parallel import _saved_in, is_saved

    monkeypatch.setenv("PATH", tool_env()["PATH"])  # nbgrader runs alembic by name
    db = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{db}") as gb:
        gb.add_assignment("module1")
        gb.add_assignment("module2")
        gb.add_notebook("nb", "module1")
        gb.add_notebook("nb", "module2")
        for name in ("c1", "c2"):
            gb.add_grade_cell(name, "nb", "module1", max_score=1, cell_type="code")
            gb.add_grade_cell(name, "nb", "module2", max_score=1, cell_type="code")
        for student in ("done", "half", "none", "other"):
            gb.add_student(student)
        for student in ("done", "half", "none"):
            gb.add_submission("module1", student)
        gb.add_submission("module2", "other")
        for student, scored in (("done", ("c1", "c2")), ("half", ("c1",)), ("other", ("c1", "c2"))):
            assignment = "module2" if student == "other" else "module1"
            for cell in scored:
                gb.find_grade(cell, "nb", assignment, student).auto_score = 1.0
        gb.db.commit()
        students = ["done", "half", "none", "other", "nobody"]
        expected = [s for s in students if is_saved(gb, "module1", s)]
    assert expected == ["done"]  # the states differ: a broken query could not agree by chance
    assert _saved_in(db, "module1", students) == expected
    assert _saved_in(db, "module2", students) == ["other"]
    assert _saved_in(tmp_path / "missing.db", "module1", students) == []
    assert not (tmp_path / "missing.db").exists(), "read-only: the poll creates nothing"
