"""Rule traceability: every labelled sentence of a notebook has a case, every case names one.

The course-wide checks read each module's source notebook and hidden suite
(``academy.course.rules``); the small ones pin down how markers are read.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from course_tools import course

from academy.course.rules import CaseInfo, coverage, notebook_rules, suite_cases
from academy.errors import ManifestError

COURSE = course()


def notebook(tmp_path, *markdown: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text) for text in markdown]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_markers_are_read_with_the_sentence_they_end(tmp_path):
    path = notebook(
        tmp_path,
        "Intro. `save()` writes **one** file. [2.1-a] It returns its id. [2.1-b]\n\n"
        "* raises `KeyError` for a missing key [2.1-c]",
        "A link [like this](x) is not a rule; nor is [2.1].",
    )
    rules = notebook_rules(path)
    assert list(rules) == ["2.1-a", "2.1-b", "2.1-c"]
    assert rules["2.1-a"].text == "save() writes one file."
    assert rules["2.1-b"].text == "It returns its id."
    assert rules["2.1-c"].text == "raises KeyError for a missing key"
    assert rules["2.1-c"].exercise == "2.1"


def test_a_rule_labelled_twice_is_refused(tmp_path):
    path = notebook(tmp_path, "One. [1.1-a]", "Two. [1.1-a]")
    with pytest.raises(ManifestError, match=r"\[1\.1-a\] is labelled twice"):
        notebook_rules(path)


def test_coverage_names_every_break(tmp_path):
    rules = notebook_rules(notebook(tmp_path, "A. [1.1-a] B. [1.1-b] C. [1.2-a]"))
    cases = [
        CaseInfo("test_a", "1.1", 1, "m", ("1.1-a",)),
        CaseInfo("test_none", "1.1", 1, "m", ()),
        CaseInfo("test_ghost", "1.1", 1, "m", ("1.1-z",)),
        CaseInfo("test_other", "1.1", 1, "m", ("1.2-a",)),
    ]
    assert coverage(rules, cases).problems() == [
        "rule 1.1-b has no case",
        "case test_none names no rule",
        "case test_ghost: 1.1-z is not a rule of the notebook",
        "case test_other: 1.2-a belongs to another exercise",
    ]


@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_every_rule_has_a_case_and_every_case_a_rule(module):
    rules = notebook_rules(COURSE.source_notebook(module))
    table = coverage(rules, suite_cases(COURSE.suite_path(module)))
    assert table.problems() == []
    exercises = {e.id for e in module.exercises}
    assert {r.exercise for r in rules.values()} == exercises, "an exercise states no rule"


@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_released_notebook_shows_every_rule(module):
    source = notebook_rules(COURSE.source_notebook(module))
    released = notebook_rules(COURSE.release_notebook(module))
    assert list(released) == list(source)


FOLDER_SUITES = [m for m in COURSE.modules if COURSE.suite_path(m).is_dir()]


@pytest.mark.parametrize("module", FOLDER_SUITES, ids=lambda m: m.id)
def test_a_folder_suite_reads_like_its_notebook(module):
    """One ``test_<exercise>_<name>.py`` per exercise, in the notebook's order, each holding
    the cases of its exercise only."""
    tests = COURSE.suite_tests(module)
    named = [re.fullmatch(r"test_(\d+)_(\d+)_[a-z0-9_]+\.py", p.name) for p in tests]
    assert all(named), [p.name for p in tests]
    assert [f"{m[1]}.{m[2]}" for m in named if m] == [e.id for e in module.exercises]
    for case in suite_cases(COURSE.suite_path(module)):
        own = f"test_{case.exercise.replace('.', '_')}_"
        assert case.file.startswith(own), f"{case.name} ({case.exercise}) is in {case.file}"


LONGEST = 1_500  # lines: a longer suite is a folder, one file per exercise


@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_no_suite_file_is_too_long_to_read(module):
    for path in COURSE.suite_files(module):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= LONGEST, (
            f"{path.name} has {lines} lines: make the suite a folder, one file per exercise "
            "(docs/authoring.md, section 4)"
        )
