"""Files a learner's kernel leaves behind never reach what the instructor's commands touch.

A sandboxed kernel could once write in its own ``autograded/<student>/<module>/`` folder, and
nbgrader's later steps follow what they find there: ``generate_feedback`` copied planted links
(the hidden suite, the curriculum, the gradebook) into the learner's feedback, the permission
step chmodded their targets, and a graded notebook replaced by a link made nbgrader's final
write overwrite the suite or the gradebook.

Here one submission plants every kind of object (symbolic links, relative and absolute, to the
hidden suite, the curriculum, another student's submission, the gradebook and the grading
configuration; a FIFO; a socket; a huge sparse file; nested folders; its own notebook
replaced by links), between two honest students. The run goes through the real commands
(sequential ``nbgrader autograde``, ``f0 autograde --workers 2``, then ``nbgrader
generate_feedback``) and the test asserts: every course file's bytes and mode unchanged,
every honest student's full marks (the earlier one's grade still in the gradebook), and
feedback that holds only regular files of the student's own.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import nbformat
import pytest
from course_tools import course, run, submission

from academy.build import copy_course

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile_files")]

COURSE = course()
MODULE = COURSE.module("module1")
FULL = MODULE.points
F0 = [sys.executable, "-m", "academy.cli"]
SECRET = "first-student-secret-51a9"
# Text that must never appear in a learner's feedback: suite code, solutions, gradebook bytes,
# another student's work, the grading configuration.
# ("Worked answer." opens the curriculum's reflection answers, which only solutions keep.)
FOREIGN = ["@case(", "Worked answer.", "SQLite format 3", SECRET, "load_subconfig", "c.Autograde"]
NOTEBOOK = MODULE.notebook

TARGETS = {  # name -> path relative to the course root
    "suite": MODULE.suite,
    "curriculum": f"curriculum/{MODULE.id}/{NOTEBOOK}",
    "other": f"submitted/a_honest/{MODULE.id}/{NOTEBOOK}",
    "gradebook": "gradebook.db",
    "config": "nbgrader_config.py",
    "jupyter_config": "jupyter_config.py",
}

PLANT = """
import os, socket
targets = @TARGETS@
made = []
def attempt(label, action):
    try:
        action()
        made.append(label)
    except OSError as exc:
        made.append(label + ':' + type(exc).__name__)
for name, rel in targets.items():
    attempt('rel-' + name, lambda: os.symlink('../../../' + rel, 'rel-' + name))
    attempt('abs-' + name, lambda: os.symlink('@ROOT@/' + rel, 'abs-' + name + '.txt'))
    attempt('hard-' + name, lambda: os.link('@ROOT@/' + rel, 'hard-' + name))
os.makedirs('nested/deeper', exist_ok=True)
attempt('nested', lambda: os.symlink('@ROOT@/' + targets['suite'], 'nested/deeper/suite.py'))
attempt('dirlink', lambda: os.symlink('@ROOT@/autograder', 'nested/autograder'))
attempt('fifo', lambda: os.mkfifo('pipe.fifo'))
def make_socket():
    s = socket.socket(socket.AF_UNIX)
    s.bind('sock')
attempt('socket', make_socket)
def sparse():
    with open('sparse.bin', 'wb') as fh:
        fh.truncate(50 * 2**30)
attempt('sparse', sparse)
with open('notes.txt', 'w') as fh:
    fh.write('my own notes')
print(made)
"""


def replace_notebook(target: str) -> str:
    """A cell that swaps the graded notebook itself for a link to ``target``."""
    return (
        "import os, glob\n"
        "for name in glob.glob('*.ipynb'):\n"
        "    os.remove(name)\n"
        f"    os.symlink('../../../{target}', name)\n"
    )


def with_cell(source: str, note: str = "") -> nbformat.NotebookNode:
    nb = submission(COURSE, MODULE)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    if note:
        nb.cells.append(nbformat.v4.new_code_cell(f"note = {note!r}\n"))
    return nb


STUDENTS = {  # sorted: the hostile ones sit between two honest students
    "a_honest": lambda: with_cell("pass\n", note=SECRET),
    "m_plants": lambda: with_cell(PLANT),
    "n_nb_to_gradebook": lambda: with_cell(replace_notebook("gradebook.db")),
    "o_nb_to_suite": lambda: with_cell(replace_notebook(MODULE.suite)),
    "p_nb_to_other": lambda: with_cell(replace_notebook(TARGETS["other"])),
    "z_honest": lambda: with_cell("pass\n"),
}
HONEST = ("a_honest", "z_honest")
# Submissions that arrive with objects in them (an exchange inbox a learner can write to):
# links beside an honest notebook, and a notebook that is itself a link to someone else's.
ARRIVES_WITH_LINKS = "q_submits_links"
ARRIVES_AS_LINK = "r_submits_a_link"


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    """Hash and mode of every course file outside the folders nbgrader writes per student."""
    out = {}
    skip = {"autograded", "feedback", ".f0"}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or rel.name.startswith("gradebook.db"):
            continue
        if path.is_dir() and not path.is_symlink():
            continue
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):  # planted by the test in a submission: the link itself
            content = os.readlink(path).encode()
        elif stat.S_ISREG(info.st_mode):
            content = path.read_bytes()
        else:  # a FIFO the test planted: never opened
            content = b""
        out[str(rel)] = (hashlib.sha256(content).hexdigest(), stat.S_IMODE(info.st_mode))
    return out


def build(root: Path) -> None:
    assert run(["nbgrader", "generate_assignment", MODULE.id, "--force"], root).returncode == 0
    targets = repr(TARGETS)
    for student, make in STUDENTS.items():
        folder = root / "submitted" / student / MODULE.id
        folder.mkdir(parents=True)
        nb = make()
        for cell in nb.cells:
            cell.source = cell.source.replace("@TARGETS@", targets).replace("@ROOT@", str(root))
        nbformat.write(nb, folder / NOTEBOOK)
    folder = root / "submitted" / ARRIVES_WITH_LINKS / MODULE.id
    folder.mkdir(parents=True)
    nbformat.write(submission(COURSE, MODULE), folder / NOTEBOOK)
    for name, rel in TARGETS.items():
        os.symlink(root / rel, folder / f"{name}.txt")
    os.symlink(root / "autograder", folder / "suites")
    os.mkfifo(folder / "pipe.fifo")
    folder = root / "submitted" / ARRIVES_AS_LINK / MODULE.id
    folder.mkdir(parents=True)
    os.symlink(root / TARGETS["other"], folder / NOTEBOOK)


SANDBOX = [
    "--ExecuteWithinLimits.sandbox=require",
    "--ScoreHiddenSuites.sandbox=require",
    "--ExecuteWithinLimits.timeout=30",
]


@pytest.fixture(scope="module", params=["nbgrader", "f0"])
def graded(request, tmp_path_factory):
    root = copy_course(COURSE, tmp_path_factory.mktemp(f"hostile-{request.param}"))
    build(root)
    if request.param == "nbgrader":
        # The first honest student is graded alone first: its grade must survive the rest.
        first = run(["nbgrader", "autograde", MODULE.id, "--student=a_honest", *SANDBOX], root)
        assert first.returncode == 0, first.stderr[-3000:]
        before = fingerprint(root)
        gb_mode = stat.S_IMODE((root / "gradebook.db").stat().st_mode)
        grading = run(["nbgrader", "autograde", MODULE.id, *SANDBOX], root, timeout=1200)
    else:
        before = fingerprint(root)
        gb_mode = None
        grading = run(
            [*F0, "autograde", MODULE.id, "--workers", "2", "--", *SANDBOX], root, timeout=1200
        )
    after_grading = fingerprint(root)
    feedback = run(["nbgrader", "generate_feedback", MODULE.id], root, timeout=600)
    after_feedback = fingerprint(root)
    return {
        "root": root,
        "grading": grading,
        "feedback": feedback,
        "before": before,
        "after_grading": after_grading,
        "after_feedback": after_feedback,
        "gradebook_mode": gb_mode,
    }


def scores(root: Path) -> dict[str, float | None]:
    """Each student's saved score; None where no grade was saved."""
    from nbgrader.api import Gradebook, MissingEntry

    out: dict[str, float | None] = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in (*STUDENTS, ARRIVES_WITH_LINKS, ARRIVES_AS_LINK):
            try:
                out[student] = gb.find_submission(MODULE.id, student).score
            except MissingEntry:
                out[student] = None
    return out


def test_course_files_keep_their_bytes_and_modes(graded):
    assert graded["after_grading"] == graded["before"], "grading changed a course file"
    assert graded["after_feedback"] == graded["before"], "generate_feedback changed a course file"
    if graded["gradebook_mode"] is not None:
        mode = stat.S_IMODE((graded["root"] / "gradebook.db").stat().st_mode)
        assert mode == graded["gradebook_mode"], "the gradebook's mode was changed"
        assert os.access(graded["root"] / "gradebook.db", os.W_OK)


def test_honest_students_keep_full_marks_and_earlier_grades_survive(graded):
    got = scores(graded["root"])
    for student in HONEST:
        assert got[student] == FULL, (got, graded["grading"].stderr[-3000:])


def test_hostile_students_are_graded_on_their_own_work(graded):
    """The planted objects cost nothing and earn nothing: the code is the reference's."""
    got = scores(graded["root"])
    assert got["m_plants"] == FULL, got
    for student in ("n_nb_to_gradebook", "o_nb_to_suite", "p_nb_to_other", ARRIVES_WITH_LINKS):
        assert got[student] == FULL, got
    # A notebook that arrives as a link is not read: that student alone is not graded, and
    # the run says so (f0 saves nothing for it; nbgrader keeps an empty submission).
    assert got[ARRIVES_AS_LINK] in (0, None), got
    assert ARRIVES_AS_LINK in graded["grading"].stdout + graded["grading"].stderr


def test_graded_folders_hold_only_regular_files_of_their_own(graded):
    root = graded["root"]
    for student in (*STUDENTS, ARRIVES_WITH_LINKS):
        folder = root / "autograded" / student / MODULE.id
        for path in folder.rglob("*"):
            info = path.lstat()
            assert stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode), path
        nb = nbformat.read(folder / NOTEBOOK, as_version=4)  # a notebook, not the suite
        assert nb.cells


def test_feedback_holds_no_link_and_no_foreign_byte(graded):
    root = graded["root"]
    assert graded["feedback"].returncode == 0, graded["feedback"].stderr[-3000:]
    for student in (*STUDENTS, ARRIVES_WITH_LINKS):
        folder = root / "feedback" / student / MODULE.id
        assert (folder / NOTEBOOK.replace(".ipynb", ".html")).is_file(), student
        for path in folder.rglob("*"):
            info = path.lstat()
            assert not stat.S_ISLNK(info.st_mode), f"{path} is a link"
            if stat.S_ISDIR(info.st_mode):
                continue
            assert stat.S_ISREG(info.st_mode), f"{path} is not a regular file"
            assert info.st_size < 20 * 2**20, f"{path} is huge"
            text = path.read_bytes().decode("utf-8", "replace")
            foreign = [
                m for m in FOREIGN if m in text and not (m == SECRET and student == "a_honest")
            ]
            assert foreign == [], f"{path} holds {foreign}"
