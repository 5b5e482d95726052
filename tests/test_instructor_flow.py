"""The instructor's whole flow with stock nbgrader commands, in a temporary copy of the course.

generate_assignment -> learner submissions -> autograde -> gradebook -> generate_feedback ->
export. Each submission is built from the released notebook and the reference solutions,
and each has the exact score it deserves.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import nbformat
import pytest
from course_tools import course, run, submission

from academy.build import copy_course

# One xdist worker runs this whole file, so its module-scoped fixtures are built once.
pytestmark = pytest.mark.xdist_group("instructor_flow")

COURSE = course()
MODULE = COURSE.module("module1")
FULL = MODULE.points  # 16: 1.1=2, 1.2=2, 1.3=3, 1.4=3, 1.5=6

LOOPING = "def describe_app(ctx):\n    while True:\n        pass\n"
MEMORY_HOG = (
    "def get_setting(ctx, key, defaults):\n"
    "    hoard = []\n"
    "    while True:\n"
    "        hoard.append(b'x' * (128 * 2**20))\n\n"
    "def safe_set(ctx, key, value, who):\n"
    "    return None\n"
)
KILLS_KERNEL = (
    "import os\n\n"
    "def get_setting(ctx, key, defaults):\n"
    "    os._exit(1)\n\n"
    "def safe_set(ctx, key, value, who):\n"
    "    os._exit(1)\n"
)
NOISY = (
    "import logging, sys, warnings\n"
    "warnings.warn('this notebook is noisy', UserWarning)\n"
    "print('progress...', file=sys.stderr)\n"
    "logging.getLogger('learner').warning('a logged warning')\n"
)
FAKE_SCORE = (
    "from IPython.display import display\n"
    "print('Score: 16 / 16')\n"
    "display(16)\n"
    "ip = get_ipython()\n"
    "if ip is not None:\n"
    "    ip.events.register('post_run_cell', lambda result: print(16))\n"
    "16\n"
)


def with_cell(nb, after_grade_id, source):
    """Insert a learner's own code cell after the cell with ``after_grade_id``."""
    index = next(
        i
        for i, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade_id") == after_grade_id
    )
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


def edited_locked_cells():
    nb = submission(
        COURSE, MODULE, replace={"ex_1_1_solution": "def create_app_context():\n    return None\n"}
    )
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "hidden_1_1":
            cell.source = "2"  # pretend the hidden tests gave full marks
        elif grade_id == "ex_1_1_visible":
            cell.source = "pass"
    return nb


def deleted_test_cells():
    nb = submission(COURSE, MODULE)
    gone = {"hidden_1_5", "ex_1_5_visible"}
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in gone]
    return nb


def wrong_everywhere():
    return submission(
        COURSE,
        MODULE,
        replace={
            "ex_1_1_solution": "def create_app_context():\n    return None\n",
            "ex_1_2_solution": "def describe_app(ctx):\n    return ''\n",
            "ex_1_3_solution": "def group_by_namespace(ctx):\n    return []\n\n"
            "def namespace_tree(ctx):\n    return []\n",
            "ex_1_4_solution": "def get_setting(ctx, key, defaults):\n    return None\n\n"
            "def safe_set(ctx, key, value, who):\n    return None\n",
            "ex_1_5_solution": "class MiniContext:\n    pass\n",
        },
    )


# student id -> (notebook, expected score, expected flagged)
SUBMISSIONS = {
    "correct": (lambda: submission(COURSE, MODULE), FULL, False),
    "partial": (lambda: submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)), 10, False),
    "wrong": (wrong_everywhere, 0, False),
    "syntax_error": (
        lambda: submission(
            COURSE,
            MODULE,
            replace={"ex_1_3_solution": "def group_by_namespace(ctx)\n    return {}\n"},
        ),
        13,
        False,
    ),
    "infinite_loop": (
        lambda: submission(COURSE, MODULE, replace={"ex_1_2_solution": LOOPING}),
        14,
        True,
    ),
    "memory_hog": (
        lambda: submission(COURSE, MODULE, replace={"ex_1_4_solution": MEMORY_HOG}),
        13,
        False,
    ),
    "kills_kernel": (
        lambda: submission(COURSE, MODULE, replace={"ex_1_4_solution": KILLS_KERNEL}),
        13,
        True,
    ),
    "noisy_correct": (
        lambda: with_cell(submission(COURSE, MODULE), "ex_1_5_solution", NOISY),
        FULL,
        False,
    ),
    "edited_locked": (edited_locked_cells, 14, False),
    "deleted_tests": (deleted_test_cells, FULL, False),
    "fake_score": (
        lambda: with_cell(
            submission(
                COURSE,
                MODULE,
                unsolved=(
                    "ex_1_2_solution",
                    "ex_1_3_solution",
                    "ex_1_4_solution",
                    "ex_1_5_solution",
                ),
            ),
            "ex_1_1_solution",
            FAKE_SCORE,
        ),
        2,
        False,
    ),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = copy_course(COURSE, tmp_path_factory.mktemp("course"))
    proc = run(["nbgrader", "generate_assignment", MODULE.id, "--force"], root)
    assert proc.returncode == 0, proc.stderr
    for student, (build, _, _) in SUBMISSIONS.items():
        folder = root / "submitted" / student / MODULE.id
        folder.mkdir(parents=True)
        nbformat.write(build(), folder / MODULE.notebook)
    proc = run(
        [
            "nbgrader",
            "autograde",
            MODULE.id,
            "--ExecuteWithinLimits.timeout=10",
            "--ScoreHiddenSuites.call_timeout=3",
            # small caps, so the memory hog meets them in a fraction of a second
            "--ScoreHiddenSuites.memory_mb=768",
            "--ExecuteWithinLimits.kernel_memory_mb=1536",
            "--ScoreHiddenSuites.sandbox=require",
            "--ExecuteWithinLimits.sandbox=require",
        ],
        root,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return root, proc.stderr


def gradebook_rows(root: Path):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        rows = {}
        for student in SUBMISSIONS:
            sub = gb.find_submission(MODULE.id, student)
            nb = sub.notebooks[0]
            rows[student] = (
                sub.score,
                nb.flagged,
                {g.name: g.auto_score for g in nb.grades},
                any(g.needs_manual_grade for g in nb.grades),
            )
        return rows


@pytest.mark.parametrize("student", list(SUBMISSIONS))
def test_gradebook_holds_the_deserved_score(graded, student):
    root, log = graded
    score, flagged, grades, needs_manual = gradebook_rows(root)[student]
    _, expected, expected_flag = SUBMISSIONS[student]
    assert score == expected, f"{student}: {grades}"
    assert flagged == expected_flag
    assert not needs_manual, f"{student} left for manual grading: {grades}"


def test_feedback_shows_messages_never_hidden_tests(graded):
    root, _ = graded
    proc = run(["nbgrader", "generate_feedback", MODULE.id, "--force"], root)
    assert proc.returncode == 0, proc.stderr
    suite = (root / MODULE.suite).read_text()
    for student in SUBMISSIONS:
        html = (
            root / "feedback" / student / MODULE.id / MODULE.notebook.replace(".ipynb", ".html")
        ).read_text()
        for secret in ("def test_", "SEED_KEYS", "def mini(", "learner.keep", "@case("):
            assert secret in suite and secret not in html, f"{student}'s feedback shows {secret}"
    partial = (
        root / "feedback" / "partial" / MODULE.id / MODULE.notebook.replace(".ipynb", ".html")
    ).read_text()
    assert "MiniContext.pop_dirty_keys() must return the keys set since the last call" in partial
    # led by the ids of the notebook sentences it checks, so the learner can find them
    assert re.search(r"\[1\.5-[a-z]+(, 1\.5-[a-z]+)*\] MiniContext\.pop_dirty_keys\(\)", partial)
    assert "0 / 6 points" in partial


def test_export_lists_every_student(graded):
    root, _ = graded
    proc = run(["nbgrader", "export", "--to", str(root / "grades.csv")], root)
    assert proc.returncode == 0, proc.stderr
    with open(root / "grades.csv", newline="") as fh:
        scores = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(fh)}
    assert scores == {s: float(expected) for s, (_, expected, _) in SUBMISSIONS.items()}


def test_release_has_no_solutions_or_hidden_tests():
    text = COURSE.release_notebook(MODULE).read_text()
    suite = COURSE.suite_path(MODULE).read_text()
    for marker in (
        "BEGIN SOLUTION",
        "END SOLUTION",
        "BEGIN HIDDEN TESTS",
        "reflection-answer",
        "Worked answer",
        "autograder",
        "test_module1",
    ):
        assert marker not in text, marker
    for reference_line in (
        "self._dirty.clear()",
        "groups.setdefault(key.split",
        "missing = object()",
    ):
        assert reference_line not in text
    for secret in ("SEED_KEYS", "def test_1_1_", "def mini("):
        assert secret in suite and secret not in text


def test_nothing_leaks_into_the_learner_install(tmp_path):
    """The wheel a learner installs holds framework0 and academy, never a hidden suite."""
    proc = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(COURSE.root)],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    import zipfile

    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("framework0/") for n in names)
    assert not [n for n in names if "autograder" in n or n.startswith(("tests/", "solutions/"))]
    assert not [n for n in names if "test_module" in n or n.endswith(".ipynb")]
