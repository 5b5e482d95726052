"""The learner's loop: Validate tells the truth, a workspace no course command overwrites,
progress that keeps what was earned, compact output, one line and exit 2 for bad input.

Every command runs in a temporary copy of the course."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from course_tools import course, run, submission
from test_cli import course_copy

COURSE = course()
MODULE = COURSE.module("module1")
F0 = [sys.executable, "-m", "academy.cli"]
NBGRADER = str(Path(sys.executable).parent / "nbgrader")
WIDE = {"COLUMNS": "200"}
BRONZE_IS_MODULE_1 = [
    {"id": "bronze", "title": "Context Fundamentals", "modules": [1]},
    {"id": "silver", "title": "Advanced Context Usage", "requires": "bronze", "modules": [5]},
]


def learner_course(tmp_path: Path, levels: list[dict] | None = None) -> Path:
    """course.yaml, nbgrader's configuration, module 1's hidden suite and released folder."""
    root = course_copy(tmp_path, levels)
    for name in ("jupyter_config.py", "nbgrader_config.py"):
        shutil.copy(COURSE.root / name, root / name)
    return root


def one_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return lines[0]


# --- problem 1: Validate never reports success for work the hidden suites fail --------------


def test_nbgrader_validate_fails_an_untouched_module_and_passes_a_solved_one(tmp_path):
    root = learner_course(tmp_path)
    notebook = root / "exercises" / MODULE.id / MODULE.notebook
    untouched = run([NBGRADER, "validate", str(notebook)], root)
    output = untouched.stdout + untouched.stderr
    assert "Success" not in output, output
    assert (
        "VALIDATION FAILED" in output
        and "Exercise 1.1 is not started" in output
        and "incell.py" not in output  # the result in words, not the platform's traceback
    )
    nbformat.write(submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)), notebook)
    half = run([NBGRADER, "validate", str(notebook)], root)
    output = half.stdout + half.stderr
    assert "Success" not in output and "Exercise 1.5 is not started" in output, output
    assert "Exercise 1.1" not in output  # the solved exercises pass
    nbformat.write(submission(COURSE, MODULE), notebook)
    solved = run([NBGRADER, "validate", str(notebook)], root)
    assert "Success! Your notebook passes all the tests." in solved.stdout, solved.stdout


def test_grade_cells_do_nothing_outside_the_learners_folders(tmp_path, monkeypatch, capsys):
    from academy.learner import incell

    root = learner_course(tmp_path)
    for folder in ("solutions", "autograded/ada"):
        where = root / folder / MODULE.id
        where.mkdir(parents=True)
        shutil.copy(COURSE.release_notebook(MODULE), where / MODULE.notebook)
        assert incell.learner_notebook(MODULE.id, where) is None
    monkeypatch.chdir(tmp_path)  # no course here at all (a sandboxed autograde kernel)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    incell.check_exercise(MODULE.id, "1.1")
    assert capsys.readouterr().out == ""
    here = root / "exercises" / MODULE.id
    assert incell.learner_notebook(MODULE.id, here)[2] == here / MODULE.notebook


# --- problem 3: the learner's own workspace --------------------------------------------------


def test_start_copies_only_what_the_workspace_does_not_have(tmp_path):
    root = learner_course(tmp_path)
    first = run([*F0, "start"], root, env=WIDE)
    assert first.returncode == 0, first.stdout + first.stderr
    mine = root / "work" / MODULE.id / MODULE.notebook
    released = root / "exercises" / MODULE.id / MODULE.notebook
    assert mine.read_bytes() == released.read_bytes()
    nbformat.write(submission(COURSE, MODULE), mine)
    answers = mine.read_bytes()
    (root / "exercises" / MODULE.id / "data.json").write_text("{}")  # a course update
    released.write_text(released.read_text().replace("Context", "Kontext"))
    again = run([*F0, "start"], root, env=WIDE)
    assert again.returncode == 0 and "1 new file" in again.stdout, again.stdout
    assert mine.read_bytes() == answers  # the learner's answers are untouched
    assert (root / "work" / MODULE.id / "data.json").read_text() == "{}"


def test_check_grades_the_workspace_copy_by_default(tmp_path):
    root = learner_course(tmp_path)
    assert run([*F0, "start"], root).returncode == 0
    nbformat.write(submission(COURSE, MODULE), root / "work" / MODULE.id / MODULE.notebook)
    proc = run([*F0, "check", "module1"], root, env=WIDE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"work/{MODULE.id}/{MODULE.notebook}" in proc.stdout


def test_reset_restores_one_exercise_after_asking(tmp_path):
    root = learner_course(tmp_path)
    assert run([*F0, "start"], root).returncode == 0
    mine = root / "work" / MODULE.id / MODULE.notebook
    nbformat.write(submission(COURSE, MODULE), mine)
    asked = run([*F0, "reset", "1", "1.1"], root, env=WIDE)  # no terminal to ask on
    assert "--yes" in one_line(asked) and "1.1" in asked.stdout
    proc = run([*F0, "reset", "1", "1.1", "--yes"], root, env=WIDE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c.source
        for c in nbformat.read(mine, as_version=4).cells
    }
    stubs = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c.source
        for c in nbformat.read(COURSE.release_notebook(MODULE), as_version=4).cells
    }
    assert cells["ex_1_1_solution"] == stubs["ex_1_1_solution"]
    assert cells["ex_1_2_solution"] != stubs["ex_1_2_solution"]  # the others are kept
    assert "already at its starting code" in run([*F0, "reset", "1", "1.1"], root).stdout
    assert "no exercise" in one_line(run([*F0, "reset", "1", "9.9", "--yes"], root, env=WIDE))


def test_generation_is_deterministic(tmp_path):
    from academy import manifest
    from academy.build import copy_course, generate

    copy = manifest.load(copy_course(COURSE, tmp_path))
    module = copy.module(MODULE.id)
    generate(copy, [module.id])
    first = [
        p.read_bytes() for p in (copy.release_notebook(module), copy.solution_notebook(module))
    ]
    generate(copy, [module.id])
    second = [
        p.read_bytes() for p in (copy.release_notebook(module), copy.solution_notebook(module))
    ]
    assert first == second
    assert first[0] == COURSE.release_notebook(MODULE).read_bytes()


# --- problem 4: progress states what it graded and keeps what was earned ---------------------


def test_a_check_of_another_modules_notebook_is_refused(tmp_path):
    root = learner_course(tmp_path)
    other = tmp_path / "module2.ipynb"
    shutil.copy(COURSE.release_notebook(COURSE.module("module2")), other)
    line = one_line(run([*F0, "check", "module1", str(other)], root, env=WIDE))
    assert "module2's notebook, not module1's" in line
    assert not (root / ".f0" / "progress.json").exists()


def test_a_level_once_reached_is_not_taken_away(tmp_path):
    root = learner_course(tmp_path, BRONZE_IS_MODULE_1)
    notebook = tmp_path / "mine.ipynb"
    nbformat.write(submission(COURSE, MODULE), notebook)
    assert run([*F0, "check", "1", str(notebook)], root).returncode == 0
    nbformat.write(submission(COURSE, MODULE, unsolved=("ex_1_5_solution",)), notebook)
    worse = run([*F0, "check", "1", str(notebook)], root, env=WIDE)
    assert worse.returncode == 1 and "16 / 16" in worse.stdout  # says the best is kept
    progress = run([*F0, "progress"], root, env=WIDE).stdout
    assert "Level reached: Bronze" in progress, progress
    stored = json.loads((root / ".f0" / "progress.json").read_text())["modules"]["module1"]
    assert stored["latest"]["score"] == 10 and stored["best"]["score"] == 16
    assert stored["best_exercises"]["1.5"] == 6


# --- problems 6 and 8: compact output, one line for bad input ---------------------------------


def test_an_untouched_module_is_a_short_summary(tmp_path):
    root = learner_course(tmp_path)
    proc = run([*F0, "check", "module1"], root, env=WIDE)
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert len(lines) <= 10, proc.stdout
    assert sum("(not started)" in line for line in lines) == 5
    assert "Next: start exercise 1.1" in proc.stdout
    assert proc.stdout.count("NotImplementedError") == 0
    verbose = run([*F0, "check", "module1", "--verbose"], root, env=WIDE)
    assert verbose.stdout.count("NotImplementedError") > 5


def test_check_json_is_only_json(tmp_path):
    root = learner_course(tmp_path)
    proc = run([*F0, "check", "module1", "--json"], root)
    report = json.loads(proc.stdout)
    assert report["module"] == "module1" and report["score"] == 0


def test_keygen_and_issue_name_the_bad_input(tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert "a-file is not a folder" in one_line(run([*F0, "keygen", "--out", str(afile)], tmp_path))
    root = learner_course(tmp_path)
    gradebook = root / "gradebook.db"
    gradebook.write_bytes(b"")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "empty-config"), **WIDE}
    line = one_line(run([*F0, "issue", "--gradebook", str(gradebook)], root, env=env))
    assert "f0 keygen" in line and "--key" in line
    missing = tmp_path / "nope.pem"
    line = one_line(run([*F0, "issue", "--key", str(missing)], root, env=env))
    assert "nope.pem" in line


@pytest.mark.parametrize("command", [["check", "module1", "missing.ipynb"], ["hint", "1", "7.7"]])
def test_bad_names_are_one_line(tmp_path, command):
    root = learner_course(tmp_path)
    one_line(run([*F0, *command], root, env=WIDE))
