"""course.yaml: the manifest is validated, and the course agrees with it."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from course_tools import course

from academy import manifest
from academy.manifest import ManifestError

COURSE = course()


def write_manifest(tmp_path: Path, text: str) -> Path:
    (tmp_path / "course.yaml").write_text(text)
    return tmp_path


def test_the_course_manifest_loads():
    assert COURSE.course_id == "framework0-academy"
    assert [m.number for m in COURSE.modules] == sorted(m.number for m in COURSE.modules)
    assert COURSE.module(1) is COURSE.module("module1") is COURSE.module("1")


def test_schema_errors_name_the_place(tmp_path):
    text = (COURSE.root / "course.yaml").read_text().replace("points: 2\n", "points: two\n", 1)
    with pytest.raises(ManifestError, match=r"modules/0/exercises/0/points: 'two' is not"):
        manifest.load(write_manifest(tmp_path, text))


def test_duplicates_are_refused(tmp_path):
    text = (COURSE.root / "course.yaml").read_text().replace('id: "1.2"', 'id: "1.1"', 1)
    with pytest.raises(ManifestError, match=r"duplicate exercise id: 1\.1"):
        manifest.load(write_manifest(tmp_path, text))


def test_unknown_module_names_the_known_ones():
    with pytest.raises(ManifestError, match="module1"):
        COURSE.module("module99")


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="no course.yaml"):
        manifest.find_course_root(tmp_path)


@pytest.mark.parametrize("module", COURSE.modules, ids=lambda m: m.id)
def test_every_module_has_its_files_and_grade_cells(module):
    assert COURSE.source_notebook(module).is_file()
    assert COURSE.suite_tests(module), f"{module.suite}: no hidden suite (file or folder)"
    nb = nbformat.read(COURSE.source_notebook(module), as_version=4)
    graded = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert graded == {e.grade_cell: e.points for e in module.exercises}
    assert all(e.hints for e in module.exercises), "every exercise needs at least one hint"


def test_levels_are_the_seed_certification(tmp_path):
    assert [(lv.id, lv.modules, lv.requires) for lv in COURSE.levels] == [
        ("bronze", (1, 2, 3, 4), None),
        ("silver", (5, 6, 7), "bronze"),
        ("gold", (8,), "silver"),
    ]
    shutil.copy(COURSE.root / "course.yaml", tmp_path / "course.yaml")
    text = (tmp_path / "course.yaml").read_text().replace("requires: silver", "requires: platinum")
    with pytest.raises(ManifestError, match="unknown level 'platinum'"):
        manifest.load(write_manifest(tmp_path, text))
