"""A hidden suite may be a folder: one test file per exercise and ``_support.py`` for what they
share (docs/authoring.md, section 4). Every consumer takes both forms: the manifest's listing,
the rules reader, the grader's pytest run, the bundle sent to grading workers, the copy of the
course that generation makes, and the in-notebook check.

The folder suite here belongs to a tiny course written into a temporary folder: kept as files
under tests/, its ``test_*.py`` would be collected by this test run itself.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from course_tools import one_cell_notebook, write_tiny_course

from academy import manifest
from academy.bridge.client import Limits
from academy.build import copy_course
from academy.course.rules import suite_cases
from academy.errors import ManifestError
from academy.grading.suite_runner import _suite_command, run_hidden_suite
from academy.learner.incell import learner_notebook
from academy.service.bundle import course_bundle, materialise

COURSE_YAML = """\
course_id: folder-course
title: A course with a folder suite
modules:
  - id: module1
    number: 1
    title: Greetings
    notebook: module1_greetings.ipynb
    suite: autograder/module1
    exercises:
      - {id: "1.1", title: Greet, grade_cell: hidden_1_1, points: 2, hints: [one]}
      - {id: "1.2", title: Shout, grade_cell: hidden_1_2, points: 1, hints: [one]}
levels: []
"""

SUITE = {
    "_support.py": '''
        """What both exercises use: a helper, the names read from data/names.txt, and a
        session fixture that counts how often it is set up."""

        from pathlib import Path

        import pytest

        NAMES = (Path(__file__).parent / "data" / "names.txt").read_text().split()
        STARTS = []


        @pytest.fixture(scope="session")
        def names():
            STARTS.append("names")
            return list(NAMES)


        def greeting(learner, name):
            return learner.greet(name)
        ''',
    "test_1_1_greet.py": """
        from _support import greeting

        from academy.grading.cases import case, check


        @case("1.1", 1, "greet(name) must return 'Hello, <name>!'", rules=("1.1-a",))
        def test_1_1_hello(learner, names):
            check(greeting(learner, names[0]) == f"Hello, {names[0]}!")


        @case("1.1", 1, "greet() must keep the name as given", rules=("1.1-b",), critical=True)
        def test_1_1_as_given(learner, names):
            check(greeting(learner, names[1]) == f"Hello, {names[1]}!")
        """,
    "test_1_2_shout.py": """
        from _support import STARTS, greeting

        from academy.grading.cases import case, check


        @case("1.2", 1, "shout(name) must return the greeting in capitals", rules=("1.2-a",))
        def test_1_2_shout(learner, names):
            check(learner.shout(names[0]) == greeting(learner, names[0]).upper())
            check(STARTS == ["names"], f"the shared fixture was set up {len(STARTS)} times")
        """,
    "data/names.txt": "Ada mcCarthy\n",  # title() changes the second
}

RIGHT = """
def greet(name):
    return f"Hello, {name}!"

def shout(name):
    return greet(name).upper()
"""
WRONG = """
def greet(name):
    return f"Hello, {name.title()}!"

def shout(name):
    return name
"""


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def folder_course(tmp_path):
    root = tmp_path / "a course"  # a space in the path: every command must quote it
    write_tiny_course(root, COURSE_YAML, "module1_greetings.ipynb")
    write(root / "autograder" / "module1", SUITE)
    write(root / "autograder", {"test_other_module.py": "OTHER = 1\n"})  # not this suite's
    cache = root / "autograder" / "module1" / "__pycache__"
    cache.mkdir()
    (cache / "_support.cpython-311.pyc").write_bytes(b"\0")
    course = manifest.load(root)
    return course, course.module("module1")


notebook = one_cell_notebook


def grade(course, module, code, **kwargs):
    return run_hidden_suite(course, module, notebook(code), Limits(), 120, **kwargs)


# --------------------------------------------------------------------------- the listing
def test_the_manifest_lists_a_folder_suites_files_and_tests_in_notebook_order(folder_course):
    course, module = folder_course
    folder = course.suite_path(module)
    assert folder.is_dir()
    assert [p.relative_to(folder).as_posix() for p in course.suite_files(module)] == [
        "_support.py",
        "test_1_1_greet.py",
        "test_1_2_shout.py",
        "data/names.txt",
    ]  # no cache, nothing of the folder's neighbours
    assert [p.name for p in course.suite_tests(module)] == [
        "test_1_1_greet.py",
        "test_1_2_shout.py",
    ]
    (folder / "test_1_10_last.py").write_text("", encoding="utf-8")
    assert [p.name for p in course.suite_tests(module)][-1] == "test_1_10_last.py"  # 10 after 2


def test_a_single_file_suite_is_its_own_listing():
    course = manifest.load(Path(__file__).resolve().parents[1])
    module = next(m for m in course.modules if course.suite_path(m).is_file())
    assert course.suite_files(module) == course.suite_tests(module) == [course.suite_path(module)]


def test_a_conftest_in_a_folder_suite_is_refused(folder_course):
    """The grader runs suites with --noconftest: its fixtures would silently be missing."""
    course, module = folder_course
    (course.suite_path(module) / "conftest.py").write_text("", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"conftest\.py is never loaded.*_support\.py"):
        course.suite_tests(module)


# --------------------------------------------------------------------------- rules
def test_the_rules_reader_finds_the_cases_of_every_file(folder_course):
    course, module = folder_course
    sys.modules["_support"] = marker = type(sys)("_support")  # someone else's _support
    try:
        cases = suite_cases(course.suite_path(module))
        assert sys.modules["_support"] is marker, "the reader must give the name back"
    finally:
        sys.modules.pop("_support", None)
    assert [(c.name, c.exercise, c.points, c.rules, c.critical, c.file) for c in cases] == [
        ("test_1_1_hello", "1.1", 1.0, ("1.1-a",), False, "test_1_1_greet.py"),
        ("test_1_1_as_given", "1.1", 1.0, ("1.1-b",), True, "test_1_1_greet.py"),
        ("test_1_2_shout", "1.2", 1.0, ("1.2-a",), False, "test_1_2_shout.py"),
    ]


def test_the_rules_reader_refuses_a_case_name_used_in_two_files(folder_course):
    course, module = folder_course
    folder = course.suite_path(module)
    text = (folder / "test_1_2_shout.py").read_text(encoding="utf-8")
    (folder / "test_1_2_shout.py").write_text(text.replace("test_1_2_shout", "test_1_1_hello"))
    with pytest.raises(ManifestError, match="used more than once: test_1_1_hello"):
        suite_cases(folder)


# --------------------------------------------------------------------------- grading
def test_the_grader_runs_every_file_in_the_same_isolated_way(folder_course, tmp_path):
    course, module = folder_course
    folder = course.suite_path(module)
    command = _suite_command(folder, tmp_path, Limits(), None, False)
    tests = [str(folder / "test_1_1_greet.py"), str(folder / "test_1_2_shout.py")]
    assert command[1:6] == ["-I", "-B", "-m", "pytest", *tests[:1]]
    assert command[6] == tests[1]
    for flag in ("--noconftest", "--import-mode=importlib", "no:cacheprovider", "--rootdir"):
        assert flag in command
    assert command[command.index("--f0-support") + 1] == str(folder / "_support.py")
    assert not [part for part in command if "pythonpath" in part], "the folder is not on sys.path"
    single = _suite_command(folder / "test_1_1_greet.py", tmp_path, Limits(), None, False)
    assert "--f0-support" not in single and single[5] == tests[0]


def test_a_folder_suite_grades_the_reference_and_a_wrong_version(folder_course):
    course, module = folder_course
    right = grade(course, module, RIGHT)
    assert right.score == 3 and not right.flagged, right.to_json()
    assert [c.name for r in right.exercises.values() for c in r.cases] == [
        "test_1_1_hello",
        "test_1_1_as_given",
        "test_1_2_shout",  # passes only when both files shared one set-up of the fixture
    ]
    wrong = grade(course, module, WRONG)
    assert {k: r.score for k, r in wrong.exercises.items()} == {"1.1": 1, "1.2": 0}
    assert [c.name for c in wrong.critical_failures] == ["test_1_1_as_given"]


def test_one_exercise_and_the_first_failure_grade_only_what_was_asked(folder_course):
    course, module = folder_course
    only = grade(course, module, WRONG, only={"1.2"})
    assert list(only.exercises) == ["1.2"] and only.score == 0
    assert [c.name for c in only.exercises["1.2"].cases] == ["test_1_2_shout"]
    first = grade(course, module, WRONG, first_failure=True)
    ran = [c.name for r in first.exercises.values() for c in r.cases]
    assert ran == ["test_1_1_hello", "test_1_1_as_given"]  # -x: stops at the first failure


# --------------------------------------------------------------------------- copies
def test_the_bundle_holds_exactly_the_suites_files_and_grades_as_the_course(
    folder_course, tmp_path
):
    course, module = folder_course
    files = course_bundle(course, module)
    assert sorted(files) == [
        "autograder/module1/_support.py",
        "autograder/module1/data/names.txt",
        "autograder/module1/test_1_1_greet.py",
        "autograder/module1/test_1_2_shout.py",
        "course.yaml",
        "curriculum/module1/module1_greetings.ipynb",
        "jupyter_config.py",
        "nbgrader_config.py",
    ]
    for path in course.suite_files(module):
        assert files[path.relative_to(course.root).as_posix()] == path.read_bytes()
    worker = manifest.load(materialise(files, tmp_path / "worker"))  # as on a Dask worker
    report = grade(worker, worker.module("module1"), WRONG)
    assert report.to_json()["exercises"] == grade(course, module, WRONG).to_json()["exercises"]


def test_a_missing_suite_cannot_travel(folder_course):
    course, module = folder_course
    shutil.rmtree(course.suite_path(module))
    with pytest.raises(ValueError, match="does not exist"):
        course_bundle(course, module)


def test_the_instructors_copy_of_the_course_keeps_the_folder(folder_course, tmp_path):
    course, module = folder_course
    (tmp_path / "copy").mkdir()
    copy = manifest.load(copy_course(course, tmp_path / "copy"))
    assert [p.relative_to(copy.root) for p in copy.suite_files(copy.module("module1"))] == [
        p.relative_to(course.root) for p in course.suite_files(module)
    ]


def test_the_in_notebook_check_applies_with_a_folder_suite(folder_course):
    course, module = folder_course
    work = course.root / "work" / "module1"
    work.mkdir(parents=True)
    nbformat.write(notebook(RIGHT), work / module.notebook)
    found = learner_notebook("module1", cwd=work)
    assert found is not None and found[2] == work / module.notebook
    shutil.rmtree(course.suite_path(module))
    assert learner_notebook("module1", cwd=work) is None
