"""Notebooks nbgrader cannot grade as they are: each fails (or is repaired) alone.

In stock nbgrader a cell copied in Jupyter (it keeps its grade id) ends the whole ``autograde``
run: ``DeduplicateIds`` empties the copy's metadata and the schema check raises an error that
stops every student sorted after it. ``GuardSubmission`` (academy/grading/sanitize.py) runs
first: an innocent copy, a cell with an id this notebook does not have, or edited nbgrader
settings are repaired and graded, flagged, with a note; a notebook that cannot be graded
(damaged JSON, another module's notebook, too many cells) fails alone, flagged, with a
one-line reason. Every hostile notebook here is followed, in sort order, by an honest
student who must keep full marks, through the real commands: sequential ``nbgrader
autograde`` and ``f0 autograde --workers 2``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from course_tools import course, run, submission

from academy.build import copy_course

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ungradable")]

COURSE = course()
MODULE = COURSE.module("module1")
MODULE2 = COURSE.module("module2")
FULL = MODULE.points  # 16
F0 = [sys.executable, "-m", "academy.cli"]
NOTEBOOK = MODULE.notebook
NB_NAME = NOTEBOOK.removesuffix(".ipynb")


def honest() -> nbformat.NotebookNode:
    return submission(COURSE, MODULE)


def index_of(nb: nbformat.NotebookNode, grade_id: str) -> int:
    return next(
        i
        for i, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    )


def copied_in_jupyter(grade_id: str) -> nbformat.NotebookNode:
    """Copy + paste below, as Jupyter does: same metadata, a new cell id."""
    nb = honest()
    i = index_of(nb, grade_id)
    pasted = copy.deepcopy(nb.cells[i])
    pasted["id"] = "pasted-" + grade_id.replace("_", "-")
    nb.cells.insert(i + 1, pasted)
    return nb


def copied_verbatim(grade_id: str) -> str:
    """The cell's JSON duplicated as is (same cell id too), as a text editor would."""
    data = json.loads(nbformat.writes(honest()))
    i = index_of(nbformat.from_dict(data), grade_id)
    data["cells"].insert(i + 1, copy.deepcopy(data["cells"][i]))
    return json.dumps(data, indent=1)


def unknown_grade_id() -> nbformat.NotebookNode:
    nb = honest()
    meta = {
        "grade": True,
        "grade_id": "my_bonus_points",
        "locked": True,
        "points": 100,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb.cells.append(nbformat.v4.new_code_cell("bonus = 1\n", metadata={"nbgrader": meta}))
    return nb


def edited_schema() -> nbformat.NotebookNode:
    """Settings typed into the metadata editor: nbgrader alone would stop the run on these."""
    nb = honest()
    nb.cells[index_of(nb, "ex_1_1_solution")].metadata["nbgrader"]["schema_version"] = 99
    nb.cells[index_of(nb, "hidden_1_2")].metadata["nbgrader"]["grade"] = False
    return nb


def damaged() -> str:
    text = nbformat.writes(honest())
    return text[: len(text) // 2]  # an interrupted upload


def module2_saved_as_module1() -> nbformat.NotebookNode:
    return submission(COURSE, MODULE2)


def too_many_cells() -> nbformat.NotebookNode:
    nb = honest()
    nb.cells += [nbformat.v4.new_code_cell(f"n{i} = {i}\n") for i in range(600)]  # cap: 500
    return nb


# student -> (notebook or file text, expected score, words the reason must contain or None)
REPAIRED = {
    "a1_copied_solution": (lambda: copied_in_jupyter("ex_1_2_solution"), "repeats the grade id"),
    "b1_copied_grade": (lambda: copied_verbatim("hidden_1_3"), "repeats the grade id"),
    "c1_unknown_id": (unknown_grade_id, "which this notebook does not have"),
    "d1_edited_settings": (edited_schema, "nbgrader settings edited"),
}
SET_ASIDE = {
    "e1_damaged_json": (damaged, "not valid JSON"),
    "f1_module2": (module2_saved_as_module1, "graded cells of module2"),
    "g1_too_many_cells": (too_many_cells, "645 cells"),
}
HOSTILE = {**REPAIRED, **SET_ASIDE}
# An honest student right after each hostile one in sort order ("a1_..." < "a2_honest").
HONEST = [f"{name[0]}2_honest" for name in HOSTILE]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """module1 and module2 released (the gradebook knows both), every submission written."""
    root = copy_course(COURSE, tmp_path_factory.mktemp("ungradable-course"))
    for module in (MODULE, MODULE2):
        proc = run(["nbgrader", "generate_assignment", module.id, "--force"], root)
        assert proc.returncode == 0, proc.stderr[-3000:]
    students = {name: build for name, (build, _) in HOSTILE.items()}
    students.update({name: honest for name in HONEST})
    for student, build in students.items():
        folder = root / "submitted" / student / MODULE.id
        folder.mkdir(parents=True)
        made = build()
        if isinstance(made, str):
            (folder / NOTEBOOK).write_text(made, encoding="utf-8")
        else:
            nbformat.write(made, folder / NOTEBOOK)
    assert sorted(students) == [s for pair in zip(HOSTILE, HONEST, strict=True) for s in pair]
    return root


@pytest.fixture(scope="module", params=["nbgrader", "f0"])
def graded(request, released, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"ungradable-{request.param}") / "course"
    shutil.copytree(released, root)
    if request.param == "nbgrader":
        proc = run(["nbgrader", "autograde", MODULE.id], root, timeout=1500)
    else:
        proc = run([*F0, "autograde", MODULE.id, "--workers", "2"], root, timeout=1500)
    return request.param, root, proc


def gradebook(root: Path) -> dict[str, dict]:
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in [*HOSTILE, *HONEST]:
            nb = gb.find_submission_notebook(NB_NAME, MODULE.id, student)
            found[student] = {
                "score": nb.score,
                "auto": [g.auto_score for g in nb.grades],
                "flagged": nb.flagged,
                "comments": {c.auto_comment for c in nb.comments},
            }
    return found


def test_every_honest_student_after_a_hostile_one_keeps_full_marks(graded):
    _, root, proc = graded
    got = gradebook(root)
    for student in HONEST:
        assert got[student]["score"] == FULL, (student, got[student], proc.stdout[-3000:])
        assert not got[student]["flagged"], student
        assert (root / "autograded" / student / MODULE.id / NOTEBOOK).is_file()


def test_copied_and_foreign_cell_metadata_is_repaired_graded_and_flagged(graded):
    """An innocent copy costs nothing: full marks, flagged, and a note saying what changed."""
    _, root, proc = graded
    got = gradebook(root)
    for student, (_, words) in REPAIRED.items():
        assert got[student]["score"] == FULL, (student, got[student], proc.stdout[-3000:])
        assert got[student]["flagged"], student
        nb = nbformat.read(root / "autograded" / student / MODULE.id / NOTEBOOK, as_version=4)
        note = nb.cells[-1].source
        assert note.startswith("**Grader's note**") and words in note, (student, note)
    # The unknown "grade" cell worth 100 points earned nothing and is no grade cell any more.
    assert got["c1_unknown_id"]["score"] == FULL


def test_ungradable_notebooks_fail_alone_flagged_with_a_one_line_reason(graded):
    kind, root, proc = graded
    got = gradebook(root)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0  # the instructor is told something was not graded
    for student, (_, words) in SET_ASIDE.items():
        entry = got[student]
        assert entry["flagged"], student
        reasons = [c for c in entry["comments"] if c and c.startswith("Not graded: ")]
        assert len(reasons) == 1 and words in reasons[0], (student, entry["comments"])
        assert "\n" not in reasons[0]
        reason = reasons[0].removeprefix("Not graded: ")
        if kind == "nbgrader":
            assert f"{student}/{MODULE.id}/{NOTEBOOK} NOT GRADED: {reason}" in output
        else:  # f0's summary: the row says failed, the reason follows the table
            row = next(line for line in proc.stdout.splitlines() if f" {student} " in line)
            assert "failed" in row and "yes" in row, row
            assert f"{NOTEBOOK} not graded: {reason}" in " ".join(proc.stdout.split()), student
    # Damaged JSON cannot be read at all: no grades, so every later run tries it again.
    assert got["e1_damaged_json"]["auto"] == [None] * len(MODULE.exercises)
    # The others were graded as a stand-in holding the reason: 0 points, listed in formgrader.
    for student in ("f1_module2", "g1_too_many_cells"):
        assert got[student]["auto"] == [0.0] * len(MODULE.exercises), student
        nb = nbformat.read(root / "autograded" / student / MODULE.id / NOTEBOOK, as_version=4)
        assert nb.cells[0].source.startswith("**Not graded:**"), student
        assert SET_ASIDE[student][1] in nb.cells[0].source


def test_formgrader_lists_the_set_aside_notebooks_flagged(graded):
    _, root, _ = graded
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    api = NbGraderAPI(coursedir=CourseDirectory(root=str(root)))
    listed = {s["student"]: s for s in api.get_notebook_submissions(MODULE.id, NB_NAME)}
    for student in ("f1_module2", "g1_too_many_cells", *REPAIRED):
        assert listed[student]["flagged"], student
    assert not any(listed[s]["flagged"] for s in HONEST)
    assert "e1_damaged_json" not in listed  # formgrader lists only notebooks with a graded file


def test_a_student_that_stops_nbgrader_costs_only_itself_under_f0(released, tmp_path):
    """Without the guard (stock sanitize steps), a copied cell ends the nbgrader process of its
    batch; f0 grades the batch-mates left without grades once more, each alone."""
    root = tmp_path / "course"
    shutil.copytree(released, root)
    stock = [
        f"--Autograde.sanitize_preprocessors=nbgrader.preprocessors.{name}"
        for name in (
            "ClearOutput",
            "DeduplicateIds",
            "OverwriteKernelspec",
            "OverwriteCells",
            "CheckCellMetadata",
        )
    ]
    batch = ["a1_copied_solution", "a2_honest", "b2_honest"]
    students = [arg for s in batch for arg in ("--student", s)]
    proc = run([*F0, "autograde", MODULE.id, *students, "--workers", "1", "--", *stock], root)
    got = gradebook_scores(root, batch)
    assert got["a2_honest"] == FULL and got["b2_honest"] == FULL, (got, proc.stdout[-3000:])
    assert got["a1_copied_solution"] is None  # stock nbgrader cannot grade it
    assert proc.returncode == 1


def gradebook_scores(root: Path, students: list[str]) -> dict[str, float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    from academy.grading.parallel import is_saved

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        out: dict[str, float | None] = {}
        for student in students:
            try:
                out[student] = (
                    gb.find_submission(MODULE.id, student).score
                    if is_saved(gb, MODULE.id, student)
                    else None
                )
            except MissingEntry:
                out[student] = None
        return out


# ---------------------------------------------------------------- the file checks, directly
def test_files_nbgrader_cannot_read_are_named_before_it_reads_them(tmp_path):
    from academy.grading.sanitize import file_problem

    good = tmp_path / "good.ipynb"
    nbformat.write(honest(), good)
    assert file_problem(str(good), 20) is None
    assert "MB" in file_problem(str(good), 0.001)  # over the cap: never read
    (tmp_path / "latin1.ipynb").write_bytes(b'{"cells": "\xe9"}')
    assert "UTF-8" in file_problem(str(tmp_path / "latin1.ipynb"), 20)
    (tmp_path / "deep.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    assert file_problem(str(tmp_path / "deep.ipynb"), 20) is not None
    (tmp_path / "list.ipynb").write_text("[1, 2]")
    assert "nbformat" in file_problem(str(tmp_path / "list.ipynb"), 20)
    os.mkfifo(tmp_path / "fifo.ipynb")  # reading it would block nbgrader forever
    assert "regular file" in file_problem(str(tmp_path / "fifo.ipynb"), 20)
    (tmp_path / "link.ipynb").symlink_to(good)
    assert "link" in file_problem(str(tmp_path / "link.ipynb"), 20)


def test_no_metadata_a_learner_can_type_reaches_nbgraders_checks(released):
    """Whatever is in the nbgrader metadata, the notebook leaves the guard valid for nbgrader's
    schema check (the error that used to end the run) and keeps its released grade cells."""
    from nbgrader.nbgraderformat import MetadataValidator

    from academy.grading.sanitize import GuardSubmission

    nb = honest()
    cells = nb.cells
    cells[index_of(nb, "ex_1_3_solution")].metadata["nbgrader"]["schema_version"] = 0
    cells[index_of(nb, "hidden_1_4")].metadata["nbgrader"]["points"] = 1000
    cells[index_of(nb, "hidden_1_5")].metadata["nbgrader"]["solution"] = True
    extra = [
        {"nbgrader": {}},  # what DeduplicateIds leaves on a copy
        {"nbgrader": ["not", "a", "dict"]},
        {"nbgrader": {"grade": True, "points": 5, "schema_version": 3}},  # no grade id
        {"nbgrader": {"grade_id": "hidden_1_1", "grade": True, "points": 2}},  # a second copy
        {"nbgrader": {"grade_id": "x y\n[red]z", "locked": True, "schema_version": 99}},
    ]
    nb.cells += [nbformat.v4.new_code_cell("pass\n", metadata=m) for m in extra]
    resources = {
        "nbgrader": {
            "student": "nobody",
            "assignment": MODULE.id,
            "notebook": NB_NAME,
            "db_url": f"sqlite:///{released / 'gradebook.db'}",
        }
    }
    nb, _ = GuardSubmission().preprocess(nb, resources)
    MetadataValidator().validate_nb(nb)  # raised SchemaTooOld/TooNew/ValidationError before
    grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(grade_ids) == len(set(grade_ids))
    hidden = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert set(hidden) == {e.grade_cell for e in MODULE.exercises}
    assert hidden["hidden_1_4"]["points"] == 3 and not hidden["hidden_1_5"]["solution"]
    note = nb.cells[-1].source
    assert note.startswith("**Grader's note**") and "\n- " in note
    assert "[red]" not in note and "x y" not in note  # learner text is shown defused
